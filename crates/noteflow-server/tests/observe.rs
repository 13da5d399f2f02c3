//! The one layer every gRPC call passes through: calls no handler counts itself (health, an unknown
//! path, errors, streams) show up in the RPC metrics with the code the client saw. (Its tracing span
//! is tested in `log_spans.rs`.)

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use noteflow_proto::v1 as pb;
use noteflow_server::testing::ControlledDiarizer;
use support::*;

const WAIT: Duration = Duration::from_secs(10);

fn rpc_count(metrics: &str, method: &str, code: &str) -> Option<f64> {
    metric_value(
        metrics,
        &format!(r#"noteflow_rpc_requests_total{{method="{method}",code="{code}"}}"#),
    )
}

fn rpc_duration(metrics: &str, method: &str, code: &str, part: &str) -> Option<f64> {
    metric_value(
        metrics,
        &format!(r#"noteflow_rpc_duration_seconds_{part}{{method="{method}",code="{code}"}}"#),
    )
}

#[tokio::test]
async fn calls_no_handler_counts_are_counted_with_the_code_the_client_saw() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let server = TestServer::start(Arc::new(ControlledDiarizer::completing()), |_| {}).await;

    // Health: served by tonic-health, not by NoteFlow's handlers.
    let mut health = HealthClient::new(server.channel().await);
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    let e = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);

    // A path nobody serves: counted, under a fixed name.
    let mut raw = tonic::client::Grpc::new(server.channel().await);
    raw.ready().await.unwrap();
    let e = raw
        .unary(
            tonic::Request::new(()),
            "/noteflow.v1.DiarizationService/NoSuchMethod"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unimplemented);

    // Failing and succeeding calls of NoteFlow's own.
    let mut meetings = server.meetings().await;
    let e = meetings
        .get_meeting(pb::GetMeetingRequest {
            meeting_id: "not-an-id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    meeting_with_audio(&mut meetings, 0.5).await;

    // A unary call is counted before its answer reaches the client, so no waiting is needed.
    let metrics = server.metrics().await;
    assert_eq!(rpc_count(&metrics, "Check", "Ok"), Some(1.0), "{metrics}");
    assert_eq!(rpc_count(&metrics, "Check", "NotFound"), Some(1.0));
    assert_eq!(rpc_count(&metrics, "unknown", "Unimplemented"), Some(1.0));
    assert_eq!(
        rpc_count(&metrics, "GetMeeting", "InvalidArgument"),
        Some(1.0)
    );
    assert_eq!(rpc_count(&metrics, "CreateMeeting", "Ok"), Some(1.0));
    assert_eq!(rpc_count(&metrics, "UploadAudio", "Ok"), Some(1.0));
    assert_eq!(
        rpc_duration(&metrics, "UploadAudio", "Ok", "count"),
        Some(1.0)
    );
    assert!(
        !metrics.contains("NoSuchMethod"),
        "a made-up path became a label:\n{metrics}"
    );
    server.stop().await;
}

/// A watch that has sent its first update, on a new job of a new meeting.
struct Watched {
    meeting: String,
    stream: tonic::Streaming<pb::DiarizationJob>,
    /// From just before the call until the first update arrived.
    until_first_update: Duration,
}

async fn watched_job(meetings: &mut Meetings, jobs: &mut Jobs) -> Watched {
    let meeting = meeting_with_audio(meetings, 1.0).await;
    let job_id = jobs
        .refine_speaker_diarization(refine(&meeting))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let asked = Instant::now();
    let mut stream = jobs
        .watch_diarization_job(pb::WatchDiarizationJobRequest { job_id })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    Watched {
        meeting,
        stream,
        until_first_update: asked.elapsed(),
    }
}

#[tokio::test]
async fn a_watch_is_counted_when_it_ends_with_its_final_code_and_timed_to_its_set_up() {
    let diarizer = Arc::new(ControlledDiarizer::blocking());
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);

    // Followed to its end: OK, and timed until the stream was set up, not while it stayed open.
    let mut followed = watched_job(&mut meetings, &mut jobs).await;
    assert!(diarizer.wait_for_runs(1, WAIT).await);
    let open = server.metrics().await;
    assert_eq!(
        rpc_count(&open, "WatchDiarizationJob", "Ok"),
        None,
        "counted before it ended:\n{open}"
    );
    diarizer.release();
    while within(WAIT, "the watch to end", followed.stream.message())
        .await
        .unwrap()
        .is_some()
    {}
    let metrics = server.metrics().await;
    assert_eq!(
        rpc_count(&metrics, "WatchDiarizationJob", "Ok"),
        Some(1.0),
        "{metrics}"
    );
    let set_up = rpc_duration(&metrics, "WatchDiarizationJob", "Ok", "sum").unwrap();
    assert!(
        set_up <= followed.until_first_update.as_secs_f64(),
        "the duration ({set_up} s) is longer than the wait for the first update ({:?})",
        followed.until_first_update
    );

    // Ended by the server with an error in the trailers: the meeting (and its job) is deleted.
    diarizer.block_again();
    let mut deleted = watched_job(&mut meetings, &mut jobs).await;
    assert!(diarizer.wait_for_runs(2, WAIT).await);
    meetings
        .delete_meeting(pb::DeleteMeetingRequest {
            meeting_id: deleted.meeting,
        })
        .await
        .unwrap();
    let end = loop {
        match within(
            WAIT,
            "the deleted job's watch to end",
            deleted.stream.message(),
        )
        .await
        {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert_eq!(end.unwrap_err().code(), tonic::Code::NotFound);
    let metrics = server.metrics().await;
    assert_eq!(
        rpc_count(&metrics, "WatchDiarizationJob", "NotFound"),
        Some(1.0),
        "{metrics}"
    );

    // Refused at once (trailers-only), and given up by the client.
    let e = jobs
        .watch_diarization_job(pb::WatchDiarizationJobRequest {
            job_id: "123e4567-e89b-12d3-a456-426614174000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    drop(watched_job(&mut meetings, &mut jobs).await);
    let series = r#"noteflow_rpc_requests_total{method="WatchDiarizationJob",code="Cancelled"}"#;
    let metrics = server.wait_for_metric(series, 1.0, WAIT).await;
    assert_eq!(metric_value(&metrics, series), Some(1.0), "{metrics}");
    assert_eq!(
        rpc_count(&metrics, "WatchDiarizationJob", "NotFound"),
        Some(2.0)
    );
    diarizer.release();
    server.stop().await;
}
