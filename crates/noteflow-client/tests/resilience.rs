//! The client against the real server over real sockets, with a fault-injecting TCP proxy between
//! them: outages short and long, broken streams, deleted and stuck jobs, cancels, memory mode, and
//! no follow outliving its handle or client.

mod support;

use std::sync::Arc;
use std::time::Duration;

use noteflow_client::proto as pb;
use noteflow_client::{
    CancelOutcome, Client, ClientError, JobEvent, JobHandle, JobOutcome, SpeakerRequest,
};
use noteflow_server::testing::ControlledDiarizer;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// Uploads a second of audio as a new meeting and starts a job on it: (meeting, job).
async fn start_in_meeting(client: &Client) -> (String, String) {
    let meeting = client.create_meeting("test").await.unwrap();
    client
        .upload_audio(&meeting, tone_wav(1.0), "wav")
        .await
        .unwrap();
    let job = client
        .start_job(&meeting, SpeakerRequest::default())
        .await
        .unwrap()
        .job_id;
    (meeting, job)
}

async fn start(client: &Client) -> String {
    start_in_meeting(client).await.1
}

/// Follows `job` until it is seen running: the handle, and the events so far.
async fn follow_until_running(client: &Client, job: &str) -> (JobHandle, Vec<JobEvent>) {
    let mut handle = client.follow(job);
    let events = events_until(&mut handle, is_running).await;
    (handle, events)
}

/// A blocked job on the real server, followed through a fault proxy until it runs.
struct BehindProxy {
    diarizer: Arc<ControlledDiarizer>,
    server: TestServer,
    proxy: FaultProxy,
    /// Kept: dropping the last client stops its follows.
    _client: Client,
    job: String,
    handle: JobHandle,
    events: Vec<JobEvent>,
}

impl BehindProxy {
    async fn start(use_watch: bool) -> Self {
        let diarizer = blocking();
        let server = TestServer::start(diarizer.clone()).await;
        let proxy = FaultProxy::start(server.addr).await;
        let client = Client::new(&proxy.url(), fast_config(use_watch)).unwrap();
        let job = start(&client).await;
        let (handle, events) = follow_until_running(&client, &job).await;
        Self {
            diarizer,
            server,
            proxy,
            _client: client,
            job,
            handle,
            events,
        }
    }
}

/// Reads events until `stop(event)`; returns them all.
async fn events_until(handle: &mut JobHandle, stop: impl Fn(&JobEvent) -> bool) -> Vec<JobEvent> {
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

async fn rest(mut handle: JobHandle) -> (Vec<JobEvent>, Result<JobOutcome, ClientError>) {
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
    let BehindProxy {
        diarizer,
        server,
        proxy,
        mut handle,
        mut events,
        _client,
        ..
    } = BehindProxy::start(true).await;

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
    let BehindProxy {
        server,
        proxy,
        job,
        handle,
        _client,
        ..
    } = BehindProxy::start(false).await;

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
    let BehindProxy {
        diarizer,
        server,
        proxy,
        mut handle,
        _client,
        ..
    } = BehindProxy::start(true).await;

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
        let (meeting, job) = start_in_meeting(&client).await;
        let (handle, _) = follow_until_running(&client, &job).await;

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
    let (handle, _) = follow_until_running(&client, &job).await;

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
    let (handle, mut events) = follow_until_running(&client, &job).await;
    if !use_watch {
        // Many unchanged polls, each response carrying the warning. (The watch stream carries it
        // on every change it sends: at least the running and the completed job.)
        let seen = server.status_calls().await;
        server.wait_for_status_calls(seen + 10.0).await;
    }
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

    // The first start reaches the server but its answer never comes back; once the server has
    // made the job, the blackholed connection is cut and the retry goes through.
    proxy.set_mode(ProxyMode::Blackhole);
    proxy.drop_connections();
    let direct = Client::new(&server.url(), fast_config(false)).unwrap();
    let jobs_of_meeting = || async {
        direct
            .list(pb::ListDiarizationJobsRequest {
                meeting_id: meeting.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .jobs
    };
    let heal = async {
        eventually("the first start to make its job", || async {
            !jobs_of_meeting().await.is_empty()
        })
        .await;
        proxy.heal();
    };
    let (started, ()) = tokio::join!(client.start_job(&meeting, SpeakerRequest::default()), heal);
    let started = started.unwrap();
    assert!(
        !started.created,
        "the retry should have found the first attempt's job"
    );
    let listed = jobs_of_meeting().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].job_id, started.job_id);
    server.stop().await;
}

/// Asserts that nothing but a reference follow polls `job` while that one makes its 11 polls (one
/// that sees the job, then ten unchanged ones until it gives up): a follow that outlived its
/// handle or client would poll as often in the same time.
async fn no_one_else_polls(server: &TestServer, job: &str) {
    let before = server.status_calls().await;
    let mut config = fast_config(false);
    config.follow.max_unchanged_polls = 10;
    let reference = Client::new(&server.url(), config).unwrap();
    let outcome = reference.follow(job).finish().await;
    assert!(
        matches!(outcome, Err(ClientError::Stalled { .. })),
        "{outcome:?}"
    );
    let others = server.status_calls().await - before - 11.0;
    // One call the stopped follow had already sent may still be answered in the window.
    assert!(
        others <= 1.0,
        "{others} other polls while the reference made 11"
    );
}

#[tokio::test]
async fn dropping_the_handle_or_the_client_stops_the_follow() {
    let server = TestServer::start(blocking()).await;
    let client = Client::new(&server.url(), fast_config(false)).unwrap();
    let job = start(&client).await;

    // The handle.
    let (handle, _) = follow_until_running(&client, &job).await;
    assert_eq!(client.active_follows(), 1);
    drop(handle);
    eventually("the dropped handle's follow to stop", || async {
        client.active_follows() == 0
    })
    .await;
    no_one_else_polls(&server, &job).await;

    // An abandoned wait for the end (a UI closing its window mid-wait) drops the handle with it.
    let handle = client.follow(&job);
    let polled = server.status_calls().await + 2.0;
    tokio::select! {
        outcome = handle.finish() => panic!("the blocked job cannot end: {outcome:?}"),
        () = server.wait_for_status_calls(polled) => {}
    }
    eventually("the abandoned finish()'s follow to stop", || async {
        client.active_follows() == 0
    })
    .await;
    no_one_else_polls(&server, &job).await;

    // The client, with the handle kept: the follow ends with `Dropped`.
    let (handle, _) = follow_until_running(&client, &job).await;
    drop(client);
    let outcome = tokio::time::timeout(WAIT, handle.finish()).await.unwrap();
    assert!(matches!(outcome, Err(ClientError::Dropped)), "{outcome:?}");
    no_one_else_polls(&server, &job).await;
    server.stop().await;
}
