//! Test support: `noteflow serve` as a real process, and helpers around it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use noteflow_proto::v1 as pb;
use noteflow_proto::v1::diarization_service_client::DiarizationServiceClient;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use tonic::transport::Channel;

/// A 150 s meeting: long enough that a run on one thread is still going when the test kills it.
pub const MEETING: &str = "synth/synth-5spk-hard.wav";

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

/// A loopback address with a port free right now.
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Runs `noteflow ARGS` to completion.
pub fn noteflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_noteflow"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Starts `noteflow ARGS` with stdout piped; its lines arrive on the returned receiver.
pub fn spawn_noteflow(args: &[&str]) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_noteflow"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    (child, lines)
}

/// The lines of a child's output, as they come, on a channel.
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The gRPC address from `noteflow serve`'s first stdout line ("noteflow serving gRPC on ADDR ...").
pub fn serving_address(stdout: &std::sync::mpsc::Receiver<String>) -> String {
    let line = stdout
        .recv_timeout(Duration::from_secs(60))
        .expect("the server says where it listens");
    line.strip_prefix("noteflow serving gRPC on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string()
}

/// RTTM of the bundled sample: every line names the file, and there are two speakers.
pub fn assert_two_speaker_sample_rttm(rttm: &str) {
    let speakers: std::collections::BTreeSet<&str> = rttm
        .lines()
        .map(|l| l.split_whitespace().nth(7).unwrap())
        .collect();
    assert_eq!(speakers.len(), 2, "{rttm}");
    assert!(rttm
        .lines()
        .all(|l| l.starts_with("SPEAKER pyannote-sample 1 ")));
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// Starts `noteflow serve` on free ports and waits for its "serving" line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_on("127.0.0.1:0", data_dir, extra)
    }

    /// Starts `noteflow serve` listening on `listen` (so a restart can take the same address).
    pub fn start_on(listen: &str, data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_noteflow"))
            .args([
                "serve",
                "--listen",
                listen,
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
        let addr = serving_address(&lines_of(child.stdout.take().unwrap()));
        Server { child, addr }
    }

    pub async fn clients(
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
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// SIGTERM: the graceful path; the process must exit cleanly and promptly. (Async so this
    /// test's own connections keep being served while the server closes them.)
    pub async fn terminate(mut self) {
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

pub async fn start_job(server: &Server) -> String {
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

pub async fn wait_for(
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

pub fn running_with_progress(attempt: u32) -> impl Fn(&pb::DiarizationJob) -> bool {
    move |job| {
        job.status == pb::JobStatus::Running as i32
            && job.attempt == attempt
            && job.progress_percent > 0.0
    }
}

pub async fn running_jobs(server: &Server) -> usize {
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
