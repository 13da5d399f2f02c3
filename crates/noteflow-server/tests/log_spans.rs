//! Log lines carry the fields of the spans they run in: the gRPC call's (method, peer, request id)
//! and the job run's (job, attempt, worker), each once.
//!
//! The only test in its binary, on purpose: `tracing` remembers per log statement whether anyone
//! wants it, and while a single subscriber exists it asks only the thread that reaches the statement
//! first. Another test's thread (which has no subscriber) would make the statement silent for this
//! one too.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use noteflow_proto::v1 as pb;
use noteflow_server::testing::ControlledDiarizer;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

/// Log output kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(needle))
            .map(String::from)
            .collect()
    }
}

#[tokio::test]
async fn log_lines_carry_the_call_and_the_job_they_belong_to() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The test's runtime has one thread, so the server's tasks log through this subscriber too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::start(Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let meeting = meeting_with_audio(&mut meetings, 0.5).await;
    let job = jobs
        .refine_speaker_diarization(pb::RefineSpeakerDiarizationRequest {
            request_id: "req-7".into(),
            ..refine(&meeting)
        })
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let done = wait_until(&mut jobs, &job, WAIT, is_terminal).await;
    assert!(is_status(&done, pb::JobStatus::Completed), "{done:?}");
    let worker = {
        let line = logs.lines_with("serving").pop().expect("a serving line");
        let (_, rest) = line
            .split_once("worker=")
            .expect("the worker in the serving line");
        rest.split_whitespace().next().unwrap().to_string()
    };
    server.stop().await;

    let queued = logs.lines_with("job queued");
    assert_eq!(queued.len(), 1, "{}", logs.lines_with("").join("\n"));
    for field in [
        "rpc{method=RefineSpeakerDiarization ",
        "peer=127.0.0.1:",
        r#"request_id="req-7""#,
    ] {
        assert!(queued[0].contains(field), "{field} missing: {}", queued[0]);
    }

    let finished = logs.lines_with("job finished");
    assert_eq!(finished.len(), 1, "{finished:?}");
    let line = &finished[0];
    assert!(
        line.contains(&format!("job{{job={job} attempt=1 worker={worker}}}")),
        "{line}"
    );
    assert_eq!(line.matches(&job).count(), 1, "the job named twice: {line}");
}
