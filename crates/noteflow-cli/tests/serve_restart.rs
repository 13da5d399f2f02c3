//! `noteflow serve` as a real process with the real engine, killed with real signals mid-job and
//! started again on the same data directory: the interrupted job is re-queued and completes, no job
//! is left RUNNING, and a job interrupted more often than allowed ends FAILED with its message.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use noteflow_proto::v1 as pb;
use noteflow_proto::v1::diarization_service_client::DiarizationServiceClient;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use tonic::transport::Channel;

/// A 150 s meeting: long enough that a run on one thread is still going when the test kills it.
const MEETING: &str = "synth/synth-5spk-hard.wav";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Starts `noteflow serve` on free ports and waits for its "serving" line.
    fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_noteflow"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
                "--threads",
                "1",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("noteflow serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server says where it listens");
        let addr = line
            .strip_prefix("noteflow serving gRPC on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        Server { child, addr }
    }

    async fn clients(
        &self,
    ) -> (
        MeetingServiceClient<Channel>,
        DiarizationServiceClient<Channel>,
    ) {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        (
            MeetingServiceClient::new(channel.clone()),
            DiarizationServiceClient::new(channel),
        )
    }

    /// SIGKILL: no chance to clean up, exactly like a crash or an OOM kill.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// SIGTERM: the graceful path; the process must exit cleanly and promptly. (Async so this
    /// test's own connections keep being served while the server closes them.)
    async fn terminate(mut self) {
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit after SIGTERM: {status:?}");
                return;
            }
            assert!(Instant::now() < deadline, "no exit within 20 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_job(server: &Server) -> String {
    let (mut meetings, mut jobs) = server.clients().await;
    let meeting = meetings
        .create_meeting(pb::CreateMeetingRequest {
            title: "restart".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let audio = std::fs::read(testdata(MEETING)).unwrap();
    let chunks: Vec<pb::UploadAudioRequest> = audio
        .chunks(1 << 20)
        .enumerate()
        .map(|(i, chunk)| pb::UploadAudioRequest {
            meeting_id: if i == 0 {
                meeting.clone()
            } else {
                String::new()
            },
            format_hint: "wav".into(),
            chunk: chunk.to_vec(),
        })
        .collect();
    meetings
        .upload_audio(tokio_stream::iter(chunks))
        .await
        .unwrap();
    jobs.refine_speaker_diarization(pb::RefineSpeakerDiarizationRequest {
        meeting_id: meeting,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .job_id
}

async fn wait_for(
    server: &Server,
    job: &str,
    limit: Duration,
    done: impl Fn(&pb::DiarizationJob) -> bool,
) -> pb::DiarizationJob {
    let (_, mut jobs) = server.clients().await;
    let deadline = Instant::now() + limit;
    loop {
        let status = jobs
            .get_diarization_job_status(pb::GetDiarizationJobStatusRequest { job_id: job.into() })
            .await
            .unwrap()
            .into_inner();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "job never reached the expected state; last: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn running_with_progress(attempt: u32) -> impl Fn(&pb::DiarizationJob) -> bool {
    move |job| {
        job.status == pb::JobStatus::Running as i32
            && job.attempt == attempt
            && job.progress_percent > 0.0
    }
}

async fn running_jobs(server: &Server) -> usize {
    let (_, mut jobs) = server.clients().await;
    jobs.list_diarization_jobs(pb::ListDiarizationJobsRequest {
        status: pb::JobStatus::Running as i32,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .jobs
    .len()
}

#[tokio::test]
async fn a_killed_server_requeues_the_running_job_on_restart_and_it_completes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let job = start_job(&server).await;
    let before = wait_for(
        &server,
        &job,
        Duration::from_secs(60),
        running_with_progress(1),
    )
    .await;
    assert!(before.progress_percent < 100.0);
    server.kill();

    let server = Server::start(dir.path(), &[]);
    let done = wait_for(&server, &job, Duration::from_secs(180), |j| {
        j.status != pb::JobStatus::Queued as i32 && j.status != pb::JobStatus::Running as i32
    })
    .await;
    assert_eq!(done.status, pb::JobStatus::Completed as i32, "{done:?}");
    assert_eq!(done.attempt, 2);
    assert!(done.speaker_ids.len() >= 2, "{done:?}");
    assert_eq!(running_jobs(&server).await, 0);
    server.terminate().await;
}

#[tokio::test]
async fn a_job_interrupted_more_than_the_maximum_fails_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let max = ["--max-attempts", "2"];
    let server = Server::start(dir.path(), &max);
    let job = start_job(&server).await;
    wait_for(
        &server,
        &job,
        Duration::from_secs(60),
        running_with_progress(1),
    )
    .await;
    server.kill();

    let server = Server::start(dir.path(), &max);
    wait_for(
        &server,
        &job,
        Duration::from_secs(60),
        running_with_progress(2),
    )
    .await;
    // A graceful stop gives the job back without using up an attempt ...
    server.terminate().await;
    let server = Server::start(dir.path(), &max);
    wait_for(
        &server,
        &job,
        Duration::from_secs(60),
        running_with_progress(2),
    )
    .await;
    // ... a crash does.
    server.kill();

    let server = Server::start(dir.path(), &max);
    let failed = wait_for(&server, &job, Duration::from_secs(10), |j| {
        j.status != pb::JobStatus::Running as i32
    })
    .await;
    assert_eq!(failed.status, pb::JobStatus::Failed as i32, "{failed:?}");
    assert_eq!(
        failed.error_message,
        "interrupted 2 times (the server stopped while it ran); gave up after 2 attempts"
    );
    assert_eq!(running_jobs(&server).await, 0);
    server.kill();
}
