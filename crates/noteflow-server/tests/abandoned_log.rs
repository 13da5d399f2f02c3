//! A run whose meeting is deleted under it still logs how it ended, so every "job started" line has
//! an end line (before, an abandoned run ended silently).
//!
//! The only test in its binary, for the reason log_spans.rs gives: `tracing` caches per log
//! statement whether anyone listens, and another test's thread without a subscriber would silence it.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use noteflow_proto::v1 as pb;
use noteflow_server::testing::ControlledDiarizer;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

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

#[tokio::test]
async fn a_run_abandoned_because_its_meeting_was_deleted_logs_its_end() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let diarizer = Arc::new(ControlledDiarizer::blocking());
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let meeting = meeting_with_audio(&mut meetings, 1.0).await;
    let job = jobs
        .refine_speaker_diarization(refine(&meeting))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    assert!(diarizer.wait_for_runs(1, WAIT).await);
    meetings
        .delete_meeting(pb::DeleteMeetingRequest {
            meeting_id: meeting.clone(),
        })
        .await
        .unwrap();
    // The run's end is counted right after its end line is written.
    let text = server
        .wait_for_metric(
            "noteflow_job_duration_seconds_count{outcome=\"abandoned\"}",
            1.0,
            WAIT,
        )
        .await;
    assert_eq!(
        metric_value(
            &text,
            "noteflow_job_duration_seconds_count{outcome=\"abandoned\"}"
        ),
        Some(1.0),
        "{text}"
    );
    server.stop().await;
    let all = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    let ends: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("job run abandoned") && l.contains(&job))
        .collect();
    assert_eq!(ends.len(), 1, "{all}");
    assert!(
        ends[0].contains("outcome=\"abandoned\"") || ends[0].contains("outcome=abandoned"),
        "{}",
        ends[0]
    );
}
