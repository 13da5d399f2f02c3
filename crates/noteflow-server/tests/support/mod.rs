//! Test support: a real server on an ephemeral port with a fresh data directory, real gRPC clients,
//! and a few helpers. Shared by the integration tests of this crate.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use noteflow_proto::v1 as pb;
use noteflow_proto::v1::diarization_service_client::DiarizationServiceClient;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use noteflow_server::{Application, DatabaseConfig, ServerConfig, SpeakerDiarizer};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub type Meetings = MeetingServiceClient<Channel>;
pub type Jobs = DiarizationServiceClient<Channel>;

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    /// Kept alive for the server's lifetime; `None` in memory mode.
    pub data_dir: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

/// Settings for tests: fast heartbeats and polls so state changes are seen quickly.
pub fn test_config(database: DatabaseConfig) -> ServerConfig {
    let mut config = ServerConfig::ephemeral(database);
    config.runner.concurrency = 1;
    config.runner.heartbeat_interval = Duration::from_millis(20);
    config.runner.poll_interval = Duration::from_millis(50);
    config.cancel_wait = Duration::from_secs(3);
    config.shutdown_grace = Duration::from_secs(3);
    config
}

impl TestServer {
    /// SQLite in a fresh temporary directory.
    pub async fn start(
        diarizer: Arc<dyn SpeakerDiarizer>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, diarizer, tweak).await
    }

    /// SQLite in `dir` (e.g. one a previous server used).
    pub async fn start_in(
        dir: TempDir,
        diarizer: Arc<dyn SpeakerDiarizer>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut config = test_config(DatabaseConfig::Sqlite {
            data_dir: dir.path().join("data"),
        });
        tweak(&mut config);
        Self::launch(config, diarizer, Some(dir)).await
    }

    pub async fn start_memory(
        diarizer: Arc<dyn SpeakerDiarizer>,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut config = test_config(DatabaseConfig::Memory);
        tweak(&mut config);
        Self::launch(config, diarizer, None).await
    }

    async fn launch(
        config: ServerConfig,
        diarizer: Arc<dyn SpeakerDiarizer>,
        data_dir: Option<TempDir>,
    ) -> Self {
        let app = Application::build(config, diarizer)
            .await
            .expect("server builds");
        let addr = app.grpc_addr();
        let metrics_addr = app.metrics_addr().expect("metrics enabled");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run_until(async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            addr,
            metrics_addr,
            data_dir,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    pub async fn meetings(&self) -> Meetings {
        MeetingServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    pub async fn jobs(&self) -> Jobs {
        DiarizationServiceClient::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Graceful stop; returns the data directory so a new server can use it.
    pub async fn stop(mut self) -> Option<TempDir> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.handle.take().unwrap())
            .await
            .expect("server stops within 10 s")
            .unwrap();
        self.data_dir.take()
    }

    /// Reads the metrics until `series` has `value` or `timeout` passes (each read is a whole HTTP
    /// request); returns the last text read, for the caller's assertion to show.
    pub async fn wait_for_metric(&self, series: &str, value: f64, timeout: Duration) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let text = self.metrics().await;
            if metric_value(&text, series) == Some(value) || tokio::time::Instant::now() > deadline
            {
                return text;
            }
        }
    }

    /// The Prometheus text from GET /metrics, over a plain socket.
    pub async fn metrics(&self) -> String {
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }
}

/// The value of one sample line (`name{labels} value`) in Prometheus text, if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

pub use noteflow_server::testing::tone_wav;

/// Streams `audio` to the meeting in 64 KiB chunks.
pub async fn upload(
    meetings: &mut Meetings,
    meeting_id: &str,
    audio: &[u8],
    hint: &str,
) -> Result<pb::UploadAudioResponse, tonic::Status> {
    let mut messages: Vec<pb::UploadAudioRequest> = audio
        .chunks(64 * 1024)
        .map(|chunk| pb::UploadAudioRequest {
            meeting_id: String::new(),
            format_hint: String::new(),
            chunk: chunk.to_vec(),
            total_bytes: None,
        })
        .collect();
    if messages.is_empty() {
        messages.push(pb::UploadAudioRequest::default());
    }
    messages[0].meeting_id = meeting_id.to_string();
    messages[0].format_hint = hint.to_string();
    meetings
        .upload_audio(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

/// A new meeting with `seconds` of tone as its audio; returns its id.
pub async fn meeting_with_audio(meetings: &mut Meetings, seconds: f64) -> String {
    let id = meetings
        .create_meeting(pb::CreateMeetingRequest {
            title: "test".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    upload(meetings, &id, &tone_wav(seconds), "wav")
        .await
        .unwrap();
    id
}

pub fn refine(meeting_id: &str) -> pb::RefineSpeakerDiarizationRequest {
    pb::RefineSpeakerDiarizationRequest {
        meeting_id: meeting_id.to_string(),
        ..Default::default()
    }
}

pub async fn status(jobs: &mut Jobs, job_id: &str) -> pb::DiarizationJob {
    jobs.get_diarization_job_status(pb::GetDiarizationJobStatusRequest {
        job_id: job_id.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

/// Follows the job on WatchDiarizationJob (which sends it now and on every change) until
/// `done(job)`, and returns that state. If the stream ends first (the job ended) or `timeout` passes,
/// returns the job's status as it then is, for the caller's assertion to show.
pub async fn wait_until(
    jobs: &mut Jobs,
    job_id: &str,
    timeout: Duration,
    done: impl Fn(&pb::DiarizationJob) -> bool,
) -> pb::DiarizationJob {
    let deadline = tokio::time::Instant::now() + timeout;
    let request = pb::WatchDiarizationJobRequest {
        job_id: job_id.into(),
    };
    let mut updates = jobs
        .watch_diarization_job(request)
        .await
        .unwrap()
        .into_inner();
    while let Ok(Ok(Some(job))) = tokio::time::timeout_at(deadline, updates.message()).await {
        if done(&job) {
            return job;
        }
    }
    status(jobs, job_id).await
}

pub fn is_status(job: &pb::DiarizationJob, status: pb::JobStatus) -> bool {
    job.status == status as i32
}

pub fn is_terminal(job: &pb::DiarizationJob) -> bool {
    [
        pb::JobStatus::Completed,
        pb::JobStatus::Failed,
        pb::JobStatus::Cancelled,
    ]
    .iter()
    .any(|s| job.status == *s as i32)
}

/// Runs `f` with a time limit, failing the test with `what` when it is exceeded.
pub async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
}
