//! The client against the real server over real sockets, with a fault-injecting TCP proxy between
//! them: outages short and long, broken streams, deleted and stuck jobs, cancels, memory mode, and
//! no follow outliving its handle or client.

mod support;

use std::sync::Arc;
use std::time::Duration;

use noteflow_client::proto as pb;
use noteflow_client::{CancelOutcome, Client, ClientError, JobEvent, JobOutcome, SpeakerRequest};
use noteflow_server::testing::ControlledDiarizer;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

async fn start(client: &Client) -> String {
    let meeting = client.create_meeting("test").await.unwrap();
    client
        .upload_audio(&meeting, tone_wav(1.0), "wav")
        .await
        .unwrap();
    client
        .start_job(&meeting, SpeakerRequest::default())
        .await
        .unwrap()
        .job_id
}

/// Reads events until `stop(event)`; returns them all.
async fn events_until(
    handle: &mut noteflow_client::JobHandle,
    stop: impl Fn(&JobEvent) -> bool,
) -> Vec<JobEvent> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, handle.next_event())
            .await
            .expect("an event in time")
            .expect("the follow is still going");
        let done = stop(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

async fn rest(
    handle: noteflow_client::JobHandle,
) -> (Vec<JobEvent>, Result<JobOutcome, ClientError>) {
    let mut handle = handle;
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(WAIT, handle.next_event())
        .await
        .expect("the follow ends")
    {
        seen.push(event);
    }
    (seen, handle.finish().await)
}

fn is_running(event: &JobEvent) -> bool {
    matches!(
        event,
        JobEvent::Progress {
            status: pb::JobStatus::Running,
            ..
        }
    )
}

fn retries(events: &[JobEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, JobEvent::Retrying { .. }))
        .count()
}

#[tokio::test]
async fn a_short_outage_mid_job_is_ridden_out_and_the_job_completes() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let client = Client::new(&proxy.url(), fast_config(true)).unwrap();
    let job = start(&client).await;
    let mut handle = client.follow(&job);
    let mut events = events_until(&mut handle, is_running).await;

    // The server vanishes: open connections cut, new ones refused.
    proxy.set_mode(ProxyMode::Refuse);
    proxy.drop_connections();
    events.extend(events_until(&mut handle, |e| matches!(e, JobEvent::Retrying { .. })).await);
    proxy.set_mode(ProxyMode::Pass);
    diarizer.release();

    let (rest, outcome) = rest(handle).await;
    events.extend(rest);
    let outcome = outcome.expect("the job is followed to its end");
    assert!(
        matches!(outcome, JobOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert!(retries(&events) >= 1, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, JobEvent::SwitchedToPolling { .. })),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(JobEvent::Completed(_))),
        "{events:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_long_outage_ends_with_the_unreachable_error_after_three_retries() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let client = Client::new(&proxy.url(), fast_config(false)).unwrap();
    let job = start(&client).await;
    let mut handle = client.follow(&job);
    events_until(&mut handle, is_running).await;

    proxy.set_mode(ProxyMode::Refuse);
    proxy.drop_connections();
    let (events, outcome) = rest(handle).await;
    match outcome {
        Err(ClientError::Unreachable {
            job_id, retries, ..
        }) => {
            assert_eq!(job_id.as_deref(), Some(job.as_str()));
            assert_eq!(retries, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(retries(&events), 3, "{events:?}");
    let message = match events.last() {
        Some(JobEvent::GaveUp { error }) => error.clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        message.contains("unreachable")
            && message.contains(&job)
            && message.contains("may still be running"),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_broken_watch_stream_falls_back_to_polling_and_follows_to_the_end() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let client = Client::new(&proxy.url(), fast_config(true)).unwrap();
    let job = start(&client).await;
    let mut handle = client.follow(&job);
    events_until(&mut handle, is_running).await;

    proxy.drop_connections();
    let switched = events_until(&mut handle, |e| {
        matches!(e, JobEvent::SwitchedToPolling { .. })
    })
    .await;
    assert!(!switched
        .iter()
        .any(|e| matches!(e, JobEvent::GaveUp { .. })));
    diarizer.release();
    let (_, outcome) = rest(handle).await;
    assert!(
        matches!(outcome, Ok(JobOutcome::Completed { .. })),
        "{outcome:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_job_stops_the_follow_at_once_with_not_found() {
    for use_watch in [true, false] {
        let diarizer = blocking();
        let server = TestServer::start(diarizer.clone()).await;
        let client = Client::new(&server.url(), fast_config(use_watch)).unwrap();
        let meeting = client.create_meeting("doomed").await.unwrap();
        client
            .upload_audio(&meeting, tone_wav(1.0), "wav")
            .await
            .unwrap();
        let job = client
            .start_job(&meeting, SpeakerRequest::default())
            .await
            .unwrap()
            .job_id;
        let mut handle = client.follow(&job);
        events_until(&mut handle, is_running).await;

        client.delete_meeting(&meeting).await.unwrap();
        let (events, outcome) = rest(handle).await;
        let error = outcome.unwrap_err();
        assert_eq!(
            error.code(),
            Some(tonic::Code::NotFound),
            "watch {use_watch}: {error:?}"
        );
        assert_eq!(retries(&events), 0, "{events:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_job_that_never_progresses_is_given_up_after_the_unchanged_polls() {
    for use_watch in [false, true] {
        let server = TestServer::start(blocking()).await;
        let mut config = fast_config(use_watch);
        config.follow.max_unchanged_polls = 10;
        let client = Client::new(&server.url(), config).unwrap();
        let job = start(&client).await;
        let (events, outcome) = rest(client.follow(&job)).await;
        match outcome {
            Err(ClientError::Stalled {
                job_id,
                unchanged_polls,
                waited,
            }) => {
                assert_eq!(job_id, job);
                assert_eq!(unchanged_polls, 10);
                assert!(
                    waited >= Duration::from_millis(150),
                    "gave up after only {waited:?}"
                );
            }
            other => panic!("watch {use_watch}: {other:?}"),
        }
        let Some(JobEvent::TimedOut { message }) = events.last() else {
            panic!("{events:?}")
        };
        assert!(message.contains(&job), "{message}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_long_job_that_keeps_progressing_is_not_a_zombie() {
    // Progress every 50 ms for 3 s, against a budget of 25 unchanged 20 ms polls (500 ms).
    struct Steady;
    impl noteflow_server::SpeakerDiarizer for Steady {
        fn diarize(
            &self,
            audio: &noteflow_diarize::Audio16k,
            constraints: noteflow_diarize::SpeakerConstraints,
            progress: &mut dyn FnMut(f32),
            cancel: &std::sync::atomic::AtomicBool,
        ) -> Result<noteflow_diarize::Diarization, noteflow_server::RunError> {
            for step in 1..=60 {
                std::thread::sleep(Duration::from_millis(50));
                progress(step as f32 / 60.0);
            }
            ControlledDiarizer::completing().diarize(audio, constraints, &mut |_| {}, cancel)
        }
    }
    let server = TestServer::start(Arc::new(Steady)).await;
    let mut config = fast_config(false);
    config.follow.max_unchanged_polls = 25;
    let client = Client::new(&server.url(), config).unwrap();
    let job = start(&client).await;
    let began = std::time::Instant::now();
    let (_, outcome) = rest(client.follow(&job)).await;
    assert!(
        began.elapsed() > Duration::from_millis(2500),
        "the job should outlast the no-change budget many times over"
    );
    assert!(
        matches!(outcome, Ok(JobOutcome::Completed { .. })),
        "{outcome:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn cancelling_an_active_job_returns_the_confirmed_cancelled_state() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone()).await;
    let client = Client::new(&server.url(), fast_config(true)).unwrap();
    let job = start(&client).await;
    let mut handle = client.follow(&job);
    events_until(&mut handle, is_running).await;

    let outcome = client.cancel(&job).await.unwrap();
    let CancelOutcome::Cancelled(confirmed) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(confirmed.status, pb::JobStatus::Cancelled as i32);
    assert_eq!(
        client.status(&job).await.unwrap().status,
        pb::JobStatus::Cancelled as i32
    );
    let (events, followed) = rest(handle).await;
    assert!(
        matches!(followed, Ok(JobOutcome::Cancelled { .. })),
        "{followed:?}"
    );
    assert_eq!(events.last(), Some(&JobEvent::Cancelled));

    // A cancel that loses the race reports the state that won.
    diarizer.release();
    let finished = start(&client).await;
    let (_, done) = rest(client.follow(&finished)).await;
    assert!(matches!(done, Ok(JobOutcome::Completed { .. })));
    let late = client.cancel(&finished).await.unwrap();
    assert!(
        matches!(&late, CancelOutcome::AlreadyEnded(job) if job.status == pb::JobStatus::Completed as i32),
        "{late:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_memory_mode_server_gives_exactly_one_warning() {
    for use_watch in [false, true] {
        memory_mode_warns_once(use_watch).await;
    }
}

async fn memory_mode_warns_once(use_watch: bool) {
    let diarizer = blocking();
    let server = TestServer::start_memory(diarizer.clone()).await;
    let client = Client::new(&server.url(), fast_config(use_watch)).unwrap();
    let job = start(&client).await;
    let mut handle = client.follow(&job);
    let mut events = events_until(&mut handle, is_running).await;
    // Many unchanged polls, each response carrying the warning.
    tokio::time::sleep(Duration::from_millis(200)).await;
    diarizer.release();
    let (rest, outcome) = rest(handle).await;
    events.extend(rest);
    assert!(matches!(outcome, Ok(JobOutcome::Completed { .. })));
    let warnings: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, JobEvent::Warning(_)))
        .collect();
    assert_eq!(warnings.len(), 1, "{events:?}");
    let JobEvent::Warning(text) = warnings[0] else {
        unreachable!()
    };
    assert!(text.contains("memory"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_retried_start_does_not_create_a_second_job() {
    let server = TestServer::start(blocking()).await;
    let proxy = FaultProxy::start(server.addr).await;
    let mut config = fast_config(false);
    config.call_timeout = Duration::from_millis(500);
    let client = Client::new(&proxy.url(), config).unwrap();
    let meeting = client.create_meeting("once").await.unwrap();
    client
        .upload_audio(&meeting, tone_wav(1.0), "wav")
        .await
        .unwrap();

    // The first start reaches the server but its answer never comes back; the retry goes through.
    proxy.set_mode(ProxyMode::Blackhole);
    proxy.drop_connections();
    let heal = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.set_mode(ProxyMode::Pass);
        // The blackholed connection is cut, so the retry opens a healthy one.
        proxy.drop_connections();
    };
    let (started, ()) = tokio::join!(client.start_job(&meeting, SpeakerRequest::default()), heal);
    let started = started.unwrap();
    assert!(
        !started.created,
        "the retry should have found the first attempt's job"
    );
    let listed = client
        .list(pb::ListDiarizationJobsRequest {
            meeting_id: meeting,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.jobs.len(), 1);
    assert_eq!(listed.jobs[0].job_id, started.job_id);
    server.stop().await;
}

#[tokio::test]
async fn dropping_the_handle_or_the_client_stops_the_follow() {
    let server = TestServer::start(blocking()).await;
    let client = Client::new(&server.url(), fast_config(false)).unwrap();
    let job = start(&client).await;

    // The handle.
    let mut handle = client.follow(&job);
    events_until(&mut handle, is_running).await;
    drop(handle);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = server.status_calls().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.status_calls().await,
        before,
        "a dropped handle's follow kept polling"
    );

    // An abandoned wait for the end (a UI closing its window mid-wait) drops the handle with it.
    let handle = client.follow(&job);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), handle.finish())
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = server.status_calls().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.status_calls().await,
        before,
        "an abandoned finish() left its follow polling"
    );

    // The client, with the handle kept.
    let mut handle = client.follow(&job);
    events_until(&mut handle, is_running).await;
    drop(client);
    let outcome = tokio::time::timeout(WAIT, handle.finish()).await.unwrap();
    assert!(matches!(outcome, Err(ClientError::Dropped)), "{outcome:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = server.status_calls().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.status_calls().await,
        before,
        "a dropped client's follow kept polling"
    );
    server.stop().await;
}
