//! The one test suite every [`JobStore`] must pass.
//!
//! The cases are the private async functions of this module, each taking a fresh store; the one
//! list in the `cases!` invocation names them and builds [`cases`] from them. A case left out of
//! that list is dead code, which this module refuses (`deny(dead_code)`): it does not compile, so
//! it cannot be forgotten. [`run_all`] runs every case on a fresh store and names each one that
//! fails; [`conformance_tests!`](crate::conformance_tests) wraps it in a test:
//!
//! ```ignore
//! noteflow_store::conformance_tests!(memory, async { (MemoryStore::new(), ()) });
//! noteflow_store::conformance_tests!(sqlite, async {
//!     let dir = tempfile::tempdir().unwrap();
//!     (SqliteStore::open(dir.path()).unwrap(), dir)
//! });
//! ```
//!
//! The factory yields `(store, guard)`: the guard (a temporary directory, say) is kept alive until
//! the case has finished with the store. The crate using the macro needs `tokio` (with the `macros`
//! and `rt-multi-thread` features) among its dependencies. To run only some cases, set
//! `NOTEFLOW_CONFORMANCE_CASE` to a part of their names.
//!
//! The texts checked here (cancel and recovery messages) are part of the contract, so they are spelt
//! out literally rather than taken from [`contract`](crate::contract): the suite checks the contract
//! module too.

#![deny(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    now_millis, CancelRequest, Claim, Created, Heartbeat, Job, JobFilter, JobId, JobResult,
    JobState, JobStore, MeetingCursor, MeetingId, Millis, NewJob, Outcome, Recovery, SegmentInput,
    StoreError, StoredAudio, TurnRecord, WorkerId,
};

/// Generates one `#[tokio::test]` named `$name` that runs every conformance case ([`run_all`]).
/// `$factory` is an expression evaluating to a future of `(store, guard)`; it is evaluated afresh
/// for every case.
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $factory:expr) => {
        // Several worker threads: one case checks concurrent claims on real threads.
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $crate::conformance::run_all(|| $factory).await;
        }
    };
}

/// A case's run on a store.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One conformance case: it passes when its future completes, fails when it panics.
pub struct Case<S> {
    pub name: &'static str,
    pub run: fn(S) -> CaseFuture,
}

/// The list of cases: defines [`cases`] from the case functions it names.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        /// Every case of the suite, in the order [`run_all`] runs them.
        pub fn cases<S: JobStore>() -> Vec<Case<S>> {
            vec![$(Case {
                name: stringify!($case),
                run: |store| Box::pin($case(store)),
            }),*]
        }
    };
}

cases![
    count_by_state_lists_every_state,
    meeting_create_get_and_unknown,
    list_meetings_newest_first_in_pages,
    segments_are_ordered_and_replaced,
    replace_segments_refused_while_a_job_is_active,
    replace_segments_refuses_non_finite_bounds,
    audio_round_trip_and_meeting_info,
    put_audio_refused_while_a_job_is_active,
    delete_meeting_cascades,
    delete_meeting_frees_request_ids_and_spares_other_meetings,
    create_job_new_fields,
    create_job_request_id_is_idempotent_whatever_the_state,
    create_job_request_id_conflict,
    create_job_meeting_and_audio_checks,
    create_job_returns_the_active_job,
    create_job_queue_full_counts_only_queued,
    get_job_unknown_is_none,
    list_jobs_filters_newest_first,
    list_jobs_pagination,
    claim_next_oldest_first_and_sets_fields,
    claim_next_never_claims_a_job_twice,
    heartbeat_extends_lease_and_records_progress,
    heartbeat_lost_when_claim_does_not_match,
    heartbeat_reports_cancel_requested,
    finish_completed_stores_result_and_relabels,
    finish_failed_and_cancelled,
    finish_with_stale_claim_changes_nothing,
    finish_refuses_non_finite_turns,
    release_requeues_with_the_same_attempt,
    release_with_stale_claim_changes_nothing,
    release_with_cancel_requested_cancels,
    released_job_is_not_recovered,
    terminal_jobs_never_change,
    cancel_queued_running_and_unknown,
    recover_requeues_other_workers_jobs,
    recover_leaves_own_and_unexpired_claims_alone,
    recover_fails_jobs_out_of_attempts,
    recover_cancels_jobs_with_cancel_requested,
    stale_worker_after_recovery_is_ignored,
];

/// Selects cases by a part of their names (unset: every case).
const CASE_FILTER_VAR: &str = "NOTEFLOW_CONFORMANCE_CASE";

/// Runs every case (or those `NOTEFLOW_CONFORMANCE_CASE` selects), one after the other, each on a
/// fresh store from `factory` and in its own task, so that one failing case does not hide the
/// others. Panics naming every case that failed, with its panic message. Needs a multi-threaded
/// Tokio runtime.
pub async fn run_all<S, G, F, Fut>(mut factory: F)
where
    S: JobStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = (S, G)>,
{
    let filter = std::env::var(CASE_FILTER_VAR).ok();
    let selected: Vec<Case<S>> = cases()
        .into_iter()
        .filter(|case| {
            filter
                .as_deref()
                .is_none_or(|part| case.name.contains(part))
        })
        .collect();
    assert!(
        !selected.is_empty(),
        "{CASE_FILTER_VAR}={} selects no conformance case",
        filter.as_deref().unwrap_or_default()
    );
    let mut failures = Vec::new();
    for case in &selected {
        let (store, guard) = factory().await;
        let outcome = tokio::spawn((case.run)(store)).await;
        drop(guard);
        if let Err(e) = outcome {
            let why = match e.try_into_panic() {
                // noteflow_diarize::panic_message does this, but the store must not depend on
                // the engine, so the store keeps its own three lines.
                Ok(panic) => panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into()),
                Err(e) => e.to_string(),
            };
            failures.push(format!("- {}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} conformance cases failed:\n{}",
        failures.len(),
        selected.len(),
        failures.join("\n")
    );
}

const LEASE: Duration = Duration::from_secs(60);

fn worker(name: &str) -> WorkerId {
    WorkerId::from_string(name)
}

fn audio(bytes: &[u8]) -> StoredAudio {
    StoredAudio {
        bytes: bytes.to_vec(),
        duration_secs: 12.5,
        format_hint: Some("wav".into()),
    }
}

fn new_job(meeting_id: MeetingId) -> NewJob {
    NewJob {
        meeting_id,
        min_speakers: None,
        max_speakers: None,
        request_id: None,
    }
}

fn with_request_id(meeting_id: MeetingId, request_id: &str) -> NewJob {
    NewJob {
        request_id: Some(request_id.into()),
        ..new_job(meeting_id)
    }
}

fn segment(start: f64, text: &str, speaker: Option<&str>) -> SegmentInput {
    SegmentInput {
        start,
        end: start + 1.0,
        text: text.into(),
        speaker: speaker.map(Into::into),
    }
}

fn turn(start: f64, end: f64, speaker: &str) -> TurnRecord {
    TurnRecord {
        start,
        end,
        speaker: speaker.into(),
    }
}

async fn meeting_with_audio<S: JobStore>(store: &S) -> MeetingId {
    let meeting = store.create_meeting("standup").await.unwrap();
    store
        .put_audio(meeting.id, audio(b"RIFF...."))
        .await
        .unwrap();
    meeting.id
}

/// A new meeting with audio and a QUEUED job for it.
async fn queued_job<S: JobStore>(store: &S) -> Job {
    let meeting = meeting_with_audio(store).await;
    create(store, new_job(meeting)).await
}

async fn create<S: JobStore>(store: &S, new: NewJob) -> Job {
    match store.create_job(new, 100).await.unwrap() {
        Created::New(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn claim<S: JobStore>(store: &S, worker_name: &str) -> (Job, Claim) {
    store
        .claim_next(&worker(worker_name), LEASE)
        .await
        .unwrap()
        .expect("a queued job to claim")
}

async fn job<S: JobStore>(store: &S, id: JobId) -> Job {
    store.get_job(id).await.unwrap().expect("job exists")
}

async fn counts<S: JobStore>(store: &S) -> BTreeMap<JobState, u64> {
    store.count_by_state().await.unwrap()
}

fn expect_counts(pairs: &[(JobState, u64)]) -> BTreeMap<JobState, u64> {
    let mut expected: BTreeMap<JobState, u64> = JobState::ALL.into_iter().map(|s| (s, 0)).collect();
    for (state, n) in pairs {
        expected.insert(*state, *n);
    }
    expected
}

fn completed(
    turns: Vec<TurnRecord>,
    speakers: &[&str],
    segment_speakers: &[(u32, &str)],
) -> Outcome {
    Outcome::Completed(JobResult {
        turns,
        speakers: speakers.iter().map(|s| s.to_string()).collect(),
        segment_speakers: segment_speakers
            .iter()
            .map(|(i, s)| (*i, s.to_string()))
            .collect(),
    })
}

fn assert_unclaimed(job: &Job) {
    assert_eq!(
        job.worker_id, None,
        "worker_id is set only while RUNNING: {job:?}"
    );
    assert_eq!(
        job.lease_expires_at, None,
        "the lease is set only while RUNNING: {job:?}"
    );
}

async fn count_by_state_lists_every_state<S: JobStore>(store: S) {
    assert_eq!(counts(&store).await, expect_counts(&[]));

    // One job in each state.
    let running = queued_job(&store).await;
    claim(&store, "w").await;
    let completed_job = queued_job(&store).await;
    let (_, c) = claim(&store, "w").await;
    assert!(store.finish(&c, completed(vec![], &[], &[])).await.unwrap());
    let failed = queued_job(&store).await;
    let (_, c) = claim(&store, "w").await;
    assert!(store
        .finish(&c, Outcome::Failed("boom".into()))
        .await
        .unwrap());
    let cancelled = queued_job(&store).await;
    store.cancel(cancelled.id).await.unwrap();
    let queued = queued_job(&store).await;

    let states = [
        (running.id, JobState::Running),
        (completed_job.id, JobState::Completed),
        (failed.id, JobState::Failed),
        (cancelled.id, JobState::Cancelled),
        (queued.id, JobState::Queued),
    ];
    for (id, state) in states {
        assert_eq!(job(&store, id).await.state, state);
    }
    let expected: Vec<_> = JobState::ALL.into_iter().map(|s| (s, 1)).collect();
    assert_eq!(counts(&store).await, expect_counts(&expected));
}

async fn meeting_create_get_and_unknown<S: JobStore>(store: S) {
    let before = now_millis();
    let meeting = store.create_meeting("Weekly sync").await.unwrap();
    let after = now_millis();
    assert_eq!(meeting.title, "Weekly sync");
    assert!((before..=after).contains(&meeting.created_at));
    assert_eq!(meeting.audio, None);
    assert!(meeting.segments.is_empty());

    assert_eq!(
        store.get_meeting(meeting.id).await.unwrap(),
        Some(meeting.clone())
    );

    let other = store.create_meeting("").await.unwrap();
    assert_ne!(other.id, meeting.id);
    assert_eq!(
        store.get_meeting(other.id).await.unwrap().unwrap().title,
        ""
    );

    assert_eq!(
        store.get_meeting(MeetingId::new_random()).await.unwrap(),
        None
    );
}

async fn list_meetings_newest_first_in_pages<S: JobStore>(store: S) {
    let empty = store.list_meetings(10, None).await.unwrap();
    assert!(empty.meetings.is_empty());
    assert_eq!(empty.next_after, None);

    // Seven meetings, several created within the same millisecond: ties are ordered by id, so
    // paging neither skips nor repeats one.
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(store.create_meeting(&format!("m{i}")).await.unwrap());
    }
    let with_audio = created[3].id;
    store
        .put_audio(with_audio, audio(b"RIFF...."))
        .await
        .unwrap();
    store
        .replace_segments(with_audio, vec![segment(0.0, "hello", None)])
        .await
        .unwrap();
    let mut expected: Vec<MeetingCursor> = created.iter().map(MeetingCursor::of).collect();
    expected.sort_by(|a, b| (b.created_at, b.id).cmp(&(a.created_at, a.id)));

    let all = store.list_meetings(100, None).await.unwrap();
    assert_eq!(all.next_after, None);
    let order: Vec<MeetingCursor> = all.meetings.iter().map(MeetingCursor::of).collect();
    assert_eq!(order, expected);
    let listed = all.meetings.iter().find(|m| m.id == with_audio).unwrap();
    let info = listed.audio.as_ref().expect("the audio facts are listed");
    assert_eq!((info.size_bytes, info.duration_secs), (8, 12.5));
    assert_eq!(info.format_hint.as_deref(), Some("wav"));
    assert!(listed.segments.is_empty(), "segments are not listed");
    assert!(all
        .meetings
        .iter()
        .filter(|m| m.id != with_audio)
        .all(|m| m.audio.is_none()));

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_meetings(3, after).await.unwrap();
        assert!(page.meetings.len() <= 3);
        paged.extend(page.meetings.iter().map(MeetingCursor::of));
        match page.next_after {
            Some(cursor) => {
                assert_eq!(Some(&cursor), paged.last());
                after = Some(cursor);
            }
            None => break,
        }
    }
    assert_eq!(paged, expected);

    store.delete_meeting(created[0].id).await.unwrap();
    let after_delete = store.list_meetings(100, None).await.unwrap();
    assert_eq!(after_delete.meetings.len(), 6);
    assert!(after_delete.meetings.iter().all(|m| m.id != created[0].id));
}

async fn segments_are_ordered_and_replaced<S: JobStore>(store: S) {
    let meeting = store.create_meeting("m").await.unwrap().id;
    let input = vec![
        segment(5.0, "third in time, first in list", Some("alice")),
        segment(0.0, "hello", None),
        segment(2.5, "world", Some("bob")),
    ];
    assert_eq!(
        store
            .replace_segments(meeting, input.clone())
            .await
            .unwrap(),
        3
    );

    let segments = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    assert_eq!(segments.len(), 3);
    for (i, (stored, given)) in segments.iter().zip(&input).enumerate() {
        assert_eq!(stored.index as usize, i, "indices follow the given order");
        assert_eq!(stored.start, given.start);
        assert_eq!(stored.end, given.end);
        assert_eq!(stored.text, given.text);
        assert_eq!(stored.speaker, given.speaker);
    }

    // Replacing, not appending: a retried import does not duplicate segments.
    let second = vec![
        segment(1.0, "only", None),
        segment(2.0, "two", Some("carol")),
    ];
    assert_eq!(store.replace_segments(meeting, second).await.unwrap(), 2);
    let segments = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    let texts: Vec<_> = segments
        .iter()
        .map(|s| (s.index, s.text.as_str()))
        .collect();
    assert_eq!(texts, [(0, "only"), (1, "two")]);

    assert_eq!(store.replace_segments(meeting, vec![]).await.unwrap(), 0);
    assert!(store
        .get_meeting(meeting)
        .await
        .unwrap()
        .unwrap()
        .segments
        .is_empty());

    let unknown = MeetingId::new_random();
    let err = store
        .replace_segments(unknown, vec![segment(0.0, "x", None)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::MeetingNotFound(id) if id == unknown),
        "{err:?}"
    );
}

async fn replace_segments_refused_while_a_job_is_active<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    let original = vec![segment(0.0, "a", Some("x")), segment(1.0, "b", None)];
    store
        .replace_segments(meeting, original.clone())
        .await
        .unwrap();
    let segments_before = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    let replacement = || vec![segment(9.0, "new", None)];
    let assert_busy = |result: Result<u32, StoreError>, when: &str| {
        let err = result.unwrap_err();
        assert!(
            matches!(err, StoreError::MeetingBusy(id) if id == meeting),
            "{when}: {err:?}"
        );
    };

    let queued = create(&store, new_job(meeting)).await;
    assert_busy(
        store.replace_segments(meeting, replacement()).await,
        "QUEUED",
    );
    assert_busy(
        store.replace_segments(meeting, vec![]).await,
        "QUEUED, empty",
    );
    let (_, c) = claim(&store, "w").await;
    assert_busy(
        store.replace_segments(meeting, replacement()).await,
        "RUNNING",
    );
    store.cancel(queued.id).await.unwrap();
    assert_busy(
        store.replace_segments(meeting, replacement()).await,
        "RUNNING with a cancel requested",
    );
    assert_eq!(
        store.get_meeting(meeting).await.unwrap().unwrap().segments,
        segments_before,
        "refused imports change nothing"
    );

    // The run's relabelling applies to the segments it was started for.
    let outcome = completed(vec![turn(0.0, 1.0, "S")], &["S"], &[(1, "S")]);
    assert!(store.finish(&c, outcome).await.unwrap());
    let segments = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    assert_eq!(segments[1].text, "b");
    assert_eq!(segments[1].speaker.as_deref(), Some("S"));

    // Allowed again once the job is terminal (COMPLETED, or CANCELLED while QUEUED).
    assert_eq!(
        store
            .replace_segments(meeting, replacement())
            .await
            .unwrap(),
        1
    );
    let next = create(&store, new_job(meeting)).await;
    assert_busy(
        store.replace_segments(meeting, original.clone()).await,
        "QUEUED again",
    );
    store.cancel(next.id).await.unwrap();
    assert_eq!(store.replace_segments(meeting, original).await.unwrap(), 2);

    // Other meetings are not affected by this meeting's job.
    let other = meeting_with_audio(&store).await;
    create(&store, new_job(meeting)).await;
    assert_eq!(
        store.replace_segments(other, replacement()).await.unwrap(),
        1
    );
}

async fn replace_segments_refuses_non_finite_bounds<S: JobStore>(store: S) {
    let meeting = store.create_meeting("m").await.unwrap().id;
    store
        .replace_segments(meeting, vec![segment(0.0, "kept", Some("x"))])
        .await
        .unwrap();
    let before = store.get_meeting(meeting).await.unwrap().unwrap();

    let bad_bounds = [
        (f64::NAN, 1.0),
        (0.0, f64::NAN),
        (f64::INFINITY, 1.0),
        (0.0, f64::INFINITY),
        (f64::NEG_INFINITY, 1.0),
    ];
    for (start, end) in bad_bounds {
        let mut segments = vec![
            segment(0.0, "fine", None),
            segment(1.0, "also fine", None),
            segment(2.0, "bad", None),
        ];
        segments[2].start = start;
        segments[2].end = end;
        let err = store.replace_segments(meeting, segments).await.unwrap_err();
        match &err {
            StoreError::InvalidInput(message) => {
                assert!(message.contains("segment 2"), "names the index: {message}")
            }
            other => panic!("({start}, {end}): expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(
        store.get_meeting(meeting).await.unwrap().unwrap(),
        before,
        "nothing changed"
    );

    // The input is checked first: the same error for an unknown or busy meeting.
    let nan = || {
        vec![SegmentInput {
            start: f64::NAN,
            ..segment(0.0, "x", None)
        }]
    };
    let err = store
        .replace_segments(MeetingId::new_random(), nan())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    let busy = queued_job(&store).await.meeting_id;
    let err = store.replace_segments(busy, nan()).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");

    // Finite extremes are fine.
    let extremes = vec![SegmentInput {
        start: -0.0,
        end: f64::MAX,
        text: "wide".into(),
        speaker: None,
    }];
    assert_eq!(store.replace_segments(meeting, extremes).await.unwrap(), 1);
    let stored = &store.get_meeting(meeting).await.unwrap().unwrap().segments[0];
    assert_eq!((stored.start, stored.end), (0.0, f64::MAX));
}

async fn audio_round_trip_and_meeting_info<S: JobStore>(store: S) {
    let meeting = store.create_meeting("m").await.unwrap().id;
    assert_eq!(store.get_audio(meeting).await.unwrap(), None);

    let first = audio(&[0, 1, 2, 255, 0]);
    store.put_audio(meeting, first.clone()).await.unwrap();
    assert_eq!(store.get_audio(meeting).await.unwrap(), Some(first));
    let info = store
        .get_meeting(meeting)
        .await
        .unwrap()
        .unwrap()
        .audio
        .unwrap();
    assert_eq!(info.size_bytes, 5);
    assert_eq!(info.duration_secs, 12.5);
    assert_eq!(info.format_hint.as_deref(), Some("wav"));

    let second = StoredAudio {
        bytes: vec![9; 1000],
        duration_secs: 3.0,
        format_hint: None,
    };
    store.put_audio(meeting, second.clone()).await.unwrap();
    assert_eq!(store.get_audio(meeting).await.unwrap(), Some(second));
    let info = store
        .get_meeting(meeting)
        .await
        .unwrap()
        .unwrap()
        .audio
        .unwrap();
    assert_eq!(
        (info.size_bytes, info.duration_secs, info.format_hint),
        (1000, 3.0, None)
    );

    let unknown = MeetingId::new_random();
    assert_eq!(store.get_audio(unknown).await.unwrap(), None);
    let err = store.put_audio(unknown, audio(b"x")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::MeetingNotFound(id) if id == unknown),
        "{err:?}"
    );
}

async fn put_audio_refused_while_a_job_is_active<S: JobStore>(store: S) {
    let job = queued_job(&store).await;
    let meeting = job.meeting_id;
    let original = store.get_audio(meeting).await.unwrap();

    let err = store.put_audio(meeting, audio(b"new")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::MeetingBusy(id) if id == meeting),
        "QUEUED: {err:?}"
    );

    let (_, c) = claim(&store, "w").await;
    let err = store.put_audio(meeting, audio(b"new")).await.unwrap_err();
    assert!(
        matches!(err, StoreError::MeetingBusy(id) if id == meeting),
        "RUNNING: {err:?}"
    );
    assert_eq!(
        store.get_audio(meeting).await.unwrap(),
        original,
        "refused uploads change nothing"
    );

    assert!(store.finish(&c, Outcome::Failed("x".into())).await.unwrap());
    store.put_audio(meeting, audio(b"new")).await.unwrap();
    assert_eq!(store.get_audio(meeting).await.unwrap(), Some(audio(b"new")));

    // A job cancelled while queued is terminal too.
    create(&store, new_job(meeting)).await;
    assert!(store.put_audio(meeting, audio(b"newer")).await.is_err());
    let queued = store
        .list_jobs(&JobFilter::default(), 10, None)
        .await
        .unwrap()
        .jobs[0]
        .clone();
    store.cancel(queued.id).await.unwrap();
    store.put_audio(meeting, audio(b"newer")).await.unwrap();
}

async fn delete_meeting_cascades<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    store
        .replace_segments(
            meeting,
            vec![segment(0.0, "a", None), segment(1.0, "b", None)],
        )
        .await
        .unwrap();
    let done = create(&store, new_job(meeting)).await;
    let (_, c) = claim(&store, "w").await;
    let outcome = completed(vec![turn(0.0, 1.0, "S0")], &["S0"], &[(0, "S0")]);
    assert!(store.finish(&c, outcome).await.unwrap());
    assert!(store.result_turns(done.id).await.unwrap().is_some());
    let running = create(&store, new_job(meeting)).await;
    let (_, running_claim) = claim(&store, "w").await;

    assert!(store.delete_meeting(meeting).await.unwrap());

    assert_eq!(store.get_meeting(meeting).await.unwrap(), None);
    assert_eq!(store.get_audio(meeting).await.unwrap(), None);
    for id in [done.id, running.id] {
        assert_eq!(store.get_job(id).await.unwrap(), None);
        assert_eq!(store.result_turns(id).await.unwrap(), None);
        assert_eq!(store.cancel(id).await.unwrap(), None);
    }
    assert_eq!(
        store
            .heartbeat(&running_claim, Some(0.5), LEASE)
            .await
            .unwrap(),
        Heartbeat::Lost
    );
    assert!(!store
        .finish(&running_claim, completed(vec![], &[], &[]))
        .await
        .unwrap());
    assert!(!store.release(&running_claim).await.unwrap());
    assert_eq!(counts(&store).await, expect_counts(&[]));
    let page = store
        .list_jobs(&JobFilter::default(), 10, None)
        .await
        .unwrap();
    assert!(page.jobs.is_empty());
    assert_eq!(
        store
            .recover_abandoned(&worker("other"), 3, Millis::MAX)
            .await
            .unwrap(),
        Recovery::default()
    );

    assert!(
        !store.delete_meeting(meeting).await.unwrap(),
        "already gone"
    );
    let err = store.replace_segments(meeting, vec![]).await.unwrap_err();
    assert!(matches!(err, StoreError::MeetingNotFound(_)), "{err:?}");
}

async fn delete_meeting_frees_request_ids_and_spares_other_meetings<S: JobStore>(store: S) {
    let doomed = meeting_with_audio(&store).await;
    let kept = meeting_with_audio(&store).await;
    store
        .replace_segments(kept, vec![segment(0.0, "stay", None)])
        .await
        .unwrap();
    create(&store, with_request_id(doomed, "req-1")).await;
    let kept_job = create(&store, with_request_id(kept, "req-2")).await;

    assert!(store.delete_meeting(doomed).await.unwrap());

    assert_eq!(job(&store, kept_job.id).await, kept_job);
    assert!(store.get_audio(kept).await.unwrap().is_some());
    assert_eq!(
        store
            .get_meeting(kept)
            .await
            .unwrap()
            .unwrap()
            .segments
            .len(),
        1
    );

    // The deleted job's request id no longer names a job, so another meeting may use it.
    let third = meeting_with_audio(&store).await;
    let reused = create(&store, with_request_id(third, "req-1")).await;
    assert_eq!(reused.meeting_id, third);
}

async fn create_job_new_fields<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    let before = now_millis();
    let created = store
        .create_job(
            NewJob {
                meeting_id: meeting,
                min_speakers: Some(2),
                max_speakers: Some(4),
                request_id: Some("abc".into()),
            },
            10,
        )
        .await
        .unwrap();
    let after = now_millis();
    let Created::New(job) = created else {
        panic!("expected New, got {created:?}");
    };
    assert_eq!(job.meeting_id, meeting);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.progress, 0.0);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.request_id.as_deref(), Some("abc"));
    assert_eq!((job.min_speakers, job.max_speakers), (Some(2), Some(4)));
    assert!(job.speakers.is_empty());
    assert_eq!(job.segments_updated, 0);
    assert_eq!(job.error, None);
    assert!((before..=after).contains(&job.created_at));
    assert_eq!((job.started_at, job.finished_at), (None, None));
    assert_unclaimed(&job);
    assert!(!job.cancel_requested);

    assert_eq!(store.get_job(job.id).await.unwrap(), Some(job.clone()));

    // Sequence numbers increase with insertion.
    let next = queued_job(&store).await;
    assert!(next.seq > job.seq);
    assert_ne!(next.id, job.id);
}

async fn create_job_request_id_is_idempotent_whatever_the_state<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    let first = create(&store, with_request_id(meeting, "retry-me")).await;

    let again = store
        .create_job(with_request_id(meeting, "retry-me"), 10)
        .await
        .unwrap();
    assert_eq!(again, Created::Existing(first.clone()));

    // Rule 1 comes before the queue limit.
    let full = store
        .create_job(with_request_id(meeting, "retry-me"), 0)
        .await
        .unwrap();
    assert_eq!(full, Created::Existing(first.clone()));

    // ... and holds once the job is terminal: the retry does not start a second run.
    let Some(CancelRequest::CancelledQueued(cancelled)) = store.cancel(first.id).await.unwrap()
    else {
        panic!("expected the queued job to be cancelled");
    };
    let after = store
        .create_job(with_request_id(meeting, "retry-me"), 10)
        .await
        .unwrap();
    assert_eq!(after, Created::Existing(cancelled));

    // A fresh request id starts a new job now that nothing is active.
    let second = create(&store, with_request_id(meeting, "another")).await;
    assert_ne!(second.id, first.id);
}

async fn create_job_request_id_conflict<S: JobStore>(store: S) {
    let a = meeting_with_audio(&store).await;
    let b = meeting_with_audio(&store).await;
    let job_a = create(&store, with_request_id(a, "shared")).await;

    let err = store
        .create_job(with_request_id(b, "shared"), 10)
        .await
        .unwrap_err();
    match err {
        StoreError::RequestIdConflict { request_id, other } => {
            assert_eq!(request_id, "shared");
            assert_eq!(other, a);
        }
        other => panic!("expected RequestIdConflict, got {other:?}"),
    }
    // Rule 1 comes before rule 2: even a missing meeting reports the conflict.
    let err = store
        .create_job(with_request_id(MeetingId::new_random(), "shared"), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RequestIdConflict { .. }),
        "{err:?}"
    );

    let page = store
        .list_jobs(&JobFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(page.jobs, vec![job_a], "nothing was created");
}

async fn create_job_meeting_and_audio_checks<S: JobStore>(store: S) {
    let unknown = MeetingId::new_random();
    let err = store.create_job(new_job(unknown), 10).await.unwrap_err();
    assert!(
        matches!(err, StoreError::MeetingNotFound(id) if id == unknown),
        "{err:?}"
    );
    // Rule 2 comes before the queue limit.
    let err = store.create_job(new_job(unknown), 0).await.unwrap_err();
    assert!(matches!(err, StoreError::MeetingNotFound(_)), "{err:?}");

    let silent = store.create_meeting("no audio yet").await.unwrap().id;
    let err = store
        .create_job(with_request_id(silent, "r"), 0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NoAudio(id) if id == silent),
        "{err:?}"
    );

    assert_eq!(counts(&store).await, expect_counts(&[]));
    // A refused request id was not consumed.
    store.put_audio(silent, audio(b"now")).await.unwrap();
    create(&store, with_request_id(silent, "r")).await;
}

async fn create_job_returns_the_active_job<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    let first = create(&store, new_job(meeting)).await;

    let again = store.create_job(new_job(meeting), 10).await.unwrap();
    assert_eq!(again, Created::Existing(first.clone()), "while QUEUED");
    // Rule 3 comes before the queue limit; a new request id does not make a second job either.
    let again = store
        .create_job(with_request_id(meeting, "new-key"), 1)
        .await
        .unwrap();
    assert_eq!(
        again,
        Created::Existing(first.clone()),
        "queue full but active job exists"
    );

    let (running, c) = claim(&store, "w").await;
    let again = store.create_job(new_job(meeting), 10).await.unwrap();
    assert_eq!(again, Created::Existing(running), "while RUNNING");

    assert!(store.finish(&c, completed(vec![], &[], &[])).await.unwrap());
    let second = create(&store, new_job(meeting)).await;
    assert_ne!(second.id, first.id);
    assert!(second.seq > first.seq);
    // "new-key" was not recorded by the call that returned the active job.
    let third = store
        .create_job(with_request_id(meeting, "new-key"), 10)
        .await
        .unwrap();
    assert_eq!(third, Created::Existing(second));
}

async fn create_job_queue_full_counts_only_queued<S: JobStore>(store: S) {
    let max = 2;
    let m1 = meeting_with_audio(&store).await;
    let m2 = meeting_with_audio(&store).await;
    let m3 = meeting_with_audio(&store).await;
    store.create_job(new_job(m1), max).await.unwrap();
    store.create_job(new_job(m2), max).await.unwrap();

    let err = store.create_job(new_job(m3), max).await.unwrap_err();
    assert!(
        matches!(err, StoreError::QueueFull { queued: 2 }),
        "{err:?}"
    );
    assert_eq!(
        counts(&store).await,
        expect_counts(&[(JobState::Queued, 2)])
    );

    // RUNNING jobs do not count.
    let (_, c) = claim(&store, "w").await;
    let third = store.create_job(new_job(m3), max).await.unwrap();
    assert!(matches!(third, Created::New(_)), "{third:?}");

    // Terminal jobs do not count either.
    let err = store
        .create_job(new_job(meeting_with_audio(&store).await), max)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::QueueFull { queued: 2 }),
        "{err:?}"
    );
    assert!(store.finish(&c, Outcome::Failed("x".into())).await.unwrap());
    store.cancel(third.job().id).await.unwrap();
    let m4 = meeting_with_audio(&store).await;
    assert!(matches!(
        store.create_job(new_job(m4), max).await.unwrap(),
        Created::New(_)
    ));

    let err = store.create_job(new_job(m3), 0).await.unwrap_err();
    assert!(
        matches!(err, StoreError::QueueFull { queued: 2 }),
        "{err:?}"
    );
}

async fn get_job_unknown_is_none<S: JobStore>(store: S) {
    assert_eq!(store.get_job(JobId::new_random()).await.unwrap(), None);
    queued_job(&store).await;
    assert_eq!(store.get_job(JobId::new_random()).await.unwrap(), None);
}

async fn list_jobs_filters_newest_first<S: JobStore>(store: S) {
    let a = meeting_with_audio(&store).await;
    let b = meeting_with_audio(&store).await;
    // a: CANCELLED, COMPLETED, QUEUED; b: RUNNING.
    let a1 = create(&store, new_job(a)).await;
    store.cancel(a1.id).await.unwrap();
    let a2 = create(&store, new_job(a)).await;
    let (_, c) = claim(&store, "w").await;
    assert!(store.finish(&c, completed(vec![], &[], &[])).await.unwrap());
    let b1 = create(&store, new_job(b)).await;
    claim(&store, "w").await;
    let a3 = create(&store, new_job(a)).await;

    let ids = |page: crate::JobPage| page.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let store_ref = &store;
    let list =
        |filter: JobFilter| async move { store_ref.list_jobs(&filter, 100, None).await.unwrap() };

    let all = list(JobFilter::default()).await;
    assert_eq!(all.next_after_seq, None);
    assert_eq!(ids(all.clone()), [a3.id, b1.id, a2.id, a1.id]);
    assert!(all.jobs.windows(2).all(|w| w[0].seq > w[1].seq));
    assert_eq!(
        all.jobs[0],
        job(&store, a3.id).await,
        "listed jobs are complete rows"
    );

    let by_meeting = list(JobFilter {
        meeting_id: Some(a),
        state: None,
    })
    .await;
    assert_eq!(ids(by_meeting), [a3.id, a2.id, a1.id]);

    let by_state = list(JobFilter {
        meeting_id: None,
        state: Some(JobState::Running),
    })
    .await;
    assert_eq!(ids(by_state), [b1.id]);

    let both = list(JobFilter {
        meeting_id: Some(a),
        state: Some(JobState::Completed),
    })
    .await;
    assert_eq!(ids(both), [a2.id]);

    let none = list(JobFilter {
        meeting_id: Some(b),
        state: Some(JobState::Queued),
    })
    .await;
    assert!(none.jobs.is_empty());
    assert_eq!(none.next_after_seq, None);

    let unknown = list(JobFilter {
        meeting_id: Some(MeetingId::new_random()),
        state: None,
    })
    .await;
    assert!(unknown.jobs.is_empty());
}

async fn list_jobs_pagination<S: JobStore>(store: S) {
    let a = meeting_with_audio(&store).await;
    let b = meeting_with_audio(&store).await;
    // Seven jobs alternating between two meetings; cancel each so the next can be created.
    let mut created = Vec::new();
    for i in 0..7 {
        let meeting = if i % 2 == 0 { a } else { b };
        let job = create(&store, new_job(meeting)).await;
        store.cancel(job.id).await.unwrap();
        created.push(job.id);
    }
    let newest_first: Vec<JobId> = created.iter().rev().copied().collect();

    let store_ref = &store;
    let collect_pages = |filter: JobFilter, limit: u32| {
        let store = store_ref;
        async move {
            let mut pages = Vec::new();
            let mut after = None;
            loop {
                let page = store.list_jobs(&filter, limit, after).await.unwrap();
                assert!(page.jobs.len() <= limit as usize);
                let next = page.next_after_seq;
                if let Some(next) = next {
                    assert_eq!(Some(next), page.jobs.last().map(|j| j.seq));
                }
                pages.push(page.jobs.into_iter().map(|j| j.id).collect::<Vec<_>>());
                match next {
                    Some(next) => after = Some(next),
                    None => return pages,
                }
                assert!(pages.len() < 20, "pagination does not terminate");
            }
        }
    };

    let pages = collect_pages(JobFilter::default(), 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), newest_first, "no duplicates, no gaps");

    // A last page that is exactly full still says it is the last.
    let pages = collect_pages(JobFilter::default(), 7).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0], newest_first);
    let pages = collect_pages(JobFilter::default(), 1).await;
    assert_eq!(pages.len(), 7);
    assert_eq!(pages.concat(), newest_first);

    // Pagination composes with filters.
    let only_a = JobFilter {
        meeting_id: Some(a),
        state: Some(JobState::Cancelled),
    };
    let pages = collect_pages(only_a, 2).await;
    let expected_a: Vec<JobId> = newest_first.iter().copied().step_by(2).collect();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
    assert_eq!(pages.concat(), expected_a);

    // after_seq is exclusive and need not be the seq of an existing job.
    let all = store
        .list_jobs(&JobFilter::default(), 100, None)
        .await
        .unwrap()
        .jobs;
    let third_seq = all[2].seq;
    let rest = store
        .list_jobs(&JobFilter::default(), 100, Some(third_seq))
        .await
        .unwrap();
    assert_eq!(rest.jobs, all[3..].to_vec());
    let before_all = store
        .list_jobs(&JobFilter::default(), 100, Some(all[6].seq))
        .await
        .unwrap();
    assert!(before_all.jobs.is_empty());
    assert_eq!(before_all.next_after_seq, None);
    let past_end = store
        .list_jobs(&JobFilter::default(), 100, Some(i64::MAX))
        .await
        .unwrap();
    assert_eq!(past_end.jobs, all);

    // A zero limit returns nothing and no cursor (a cursor would not move).
    let empty = store
        .list_jobs(&JobFilter::default(), 0, None)
        .await
        .unwrap();
    assert!(empty.jobs.is_empty());
    assert_eq!(empty.next_after_seq, None);
}

async fn claim_next_oldest_first_and_sets_fields<S: JobStore>(store: S) {
    assert!(
        store
            .claim_next(&worker("w"), LEASE)
            .await
            .unwrap()
            .is_none(),
        "empty store"
    );

    let first = queued_job(&store).await;
    let second = queued_job(&store).await;
    let third = queued_job(&store).await;
    store.cancel(second.id).await.unwrap();

    let before = now_millis();
    let (claimed, c) = claim(&store, "worker-1").await;
    let after = now_millis();
    assert_eq!(claimed.id, first.id, "oldest first");
    assert_eq!(
        c,
        Claim {
            job_id: first.id,
            attempt: 1,
            worker: worker("worker-1"),
        }
    );
    assert_eq!(claimed.state, JobState::Running);
    assert_eq!(claimed.worker_id.as_deref(), Some("worker-1"));
    assert_eq!(claimed.attempt, 1, "claiming does not change the attempt");
    assert_eq!(claimed.progress, 0.0);
    let started = claimed.started_at.expect("started_at is set");
    assert!((before..=after).contains(&started));
    let lease_ms = LEASE.as_millis() as Millis;
    let lease = claimed.lease_expires_at.expect("lease is set");
    assert!(
        (before + lease_ms..=after + lease_ms).contains(&lease),
        "lease {lease}, started {started}"
    );
    assert_eq!(claimed.finished_at, None);
    assert_eq!(claimed.created_at, first.created_at);
    assert_eq!(claimed.seq, first.seq);
    assert_eq!(
        job(&store, first.id).await,
        claimed,
        "the returned job is the stored row"
    );

    // The cancelled job is skipped.
    let (next, _) = claim(&store, "worker-2").await;
    assert_eq!(next.id, third.id);
    assert_eq!(next.worker_id.as_deref(), Some("worker-2"));

    assert!(
        store
            .claim_next(&worker("w"), LEASE)
            .await
            .unwrap()
            .is_none(),
        "queue drained"
    );
    assert_eq!(
        counts(&store).await,
        expect_counts(&[(JobState::Running, 2), (JobState::Cancelled, 1)])
    );
}

/// Both stores in this crate serialise writes (one mutex; one writer connection with IMMEDIATE
/// transactions), so this cannot fail for them: it guards stores with concurrent writers
/// (PostgreSQL), on real threads ([`run_all`] runs on a multi-threaded runtime).
async fn claim_next_never_claims_a_job_twice<S: JobStore>(store: S) {
    const JOBS: usize = 20;
    const CLAIMERS: usize = 8;
    let store = Arc::new(store);
    let mut expected = HashSet::new();
    for _ in 0..JOBS {
        expected.insert(queued_job(&*store).await.id);
    }

    let mut tasks = Vec::new();
    for n in 0..CLAIMERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let me = worker(&format!("claimer-{n}"));
            let mut mine = Vec::new();
            while let Some((job, claim)) = store.claim_next(&me, LEASE).await.unwrap() {
                assert_eq!(claim.worker, me);
                mine.push(job.id);
                tokio::task::yield_now().await;
            }
            (me, mine)
        }));
    }

    let mut seen = HashSet::new();
    for task in tasks {
        let (me, mine) = task.await.unwrap();
        for id in mine {
            assert!(seen.insert(id), "job {id} claimed twice");
            let stored = job(&*store, id).await;
            assert_eq!(
                stored.worker_id.as_deref(),
                Some(me.as_str()),
                "the last claimer is the one recorded"
            );
        }
    }
    assert_eq!(seen, expected, "every job claimed exactly once");
    assert_eq!(
        counts(&*store).await,
        expect_counts(&[(JobState::Running, JOBS as u64)])
    );
}

async fn heartbeat_extends_lease_and_records_progress<S: JobStore>(store: S) {
    queued_job(&store).await;
    let (claimed, c) = store
        .claim_next(&worker("w"), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        claimed.lease_expires_at, claimed.started_at,
        "a zero lease lapses at once"
    );

    let hour = Duration::from_secs(3600);
    let before = now_millis();
    assert_eq!(
        store.heartbeat(&c, Some(0.5), hour).await.unwrap(),
        Heartbeat::Continue
    );
    let after = now_millis();
    let j = job(&store, c.job_id).await;
    assert_eq!(j.progress, 0.5);
    let lease = j.lease_expires_at.unwrap();
    assert!(
        (before + 3_600_000..=after + 3_600_000).contains(&lease),
        "lease {lease}"
    );

    // Never lowered.
    assert_eq!(
        store.heartbeat(&c, Some(0.25), hour).await.unwrap(),
        Heartbeat::Continue
    );
    assert_eq!(job(&store, c.job_id).await.progress, 0.5);
    assert_eq!(
        store.heartbeat(&c, Some(-3.0), hour).await.unwrap(),
        Heartbeat::Continue
    );
    assert_eq!(job(&store, c.job_id).await.progress, 0.5);
    assert_eq!(
        store.heartbeat(&c, Some(f32::NAN), hour).await.unwrap(),
        Heartbeat::Continue
    );
    assert_eq!(job(&store, c.job_id).await.progress, 0.5);
    // No progress: only the lease moves.
    assert_eq!(
        store.heartbeat(&c, None, hour).await.unwrap(),
        Heartbeat::Continue
    );
    assert_eq!(job(&store, c.job_id).await.progress, 0.5);
    assert_eq!(
        store.heartbeat(&c, Some(0.75), hour).await.unwrap(),
        Heartbeat::Continue
    );
    assert_eq!(job(&store, c.job_id).await.progress, 0.75);
    // Clamped to 1.
    assert_eq!(
        store.heartbeat(&c, Some(7.0), hour).await.unwrap(),
        Heartbeat::Continue
    );
    assert_eq!(job(&store, c.job_id).await.progress, 1.0);

    // A shorter lease moves the deadline back: the lease is "now + lease", not a maximum.
    assert_eq!(
        store.heartbeat(&c, None, Duration::ZERO).await.unwrap(),
        Heartbeat::Continue
    );
    let j = job(&store, c.job_id).await;
    assert!(j.lease_expires_at.unwrap() <= now_millis());
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.worker_id.as_deref(), Some("w"));
}

async fn heartbeat_lost_when_claim_does_not_match<S: JobStore>(store: S) {
    let queued = queued_job(&store).await;
    let never_claimed = Claim {
        job_id: queued.id,
        attempt: 1,
        worker: worker("w"),
    };
    assert_eq!(
        store.heartbeat(&never_claimed, None, LEASE).await.unwrap(),
        Heartbeat::Lost,
        "QUEUED"
    );

    let (_, c) = claim(&store, "w").await;
    let before = job(&store, c.job_id).await;
    let wrong_attempt = Claim {
        attempt: 2,
        ..c.clone()
    };
    let wrong_worker = Claim {
        worker: worker("someone-else"),
        ..c.clone()
    };
    let unknown = Claim {
        job_id: JobId::new_random(),
        ..c.clone()
    };
    for stale in [&wrong_attempt, &wrong_worker, &unknown] {
        assert_eq!(
            store
                .heartbeat(stale, Some(0.9), Duration::from_secs(7200))
                .await
                .unwrap(),
            Heartbeat::Lost,
            "{stale:?}"
        );
    }
    assert_eq!(
        job(&store, c.job_id).await,
        before,
        "lost heartbeats change nothing"
    );

    assert!(store.finish(&c, Outcome::Failed("x".into())).await.unwrap());
    assert_eq!(
        store.heartbeat(&c, Some(0.9), LEASE).await.unwrap(),
        Heartbeat::Lost,
        "terminal"
    );
}

async fn heartbeat_reports_cancel_requested<S: JobStore>(store: S) {
    queued_job(&store).await;
    let (_, c) = claim(&store, "w").await;
    assert_eq!(
        store.heartbeat(&c, Some(0.1), LEASE).await.unwrap(),
        Heartbeat::Continue
    );

    let Some(CancelRequest::Requested(requested)) = store.cancel(c.job_id).await.unwrap() else {
        panic!("expected Requested");
    };
    assert!(requested.cancel_requested);
    assert_eq!(requested.state, JobState::Running);

    // The claim still holds: the heartbeat is applied and tells the worker to stop.
    assert_eq!(
        store.heartbeat(&c, Some(0.2), LEASE).await.unwrap(),
        Heartbeat::CancelRequested
    );
    assert_eq!(job(&store, c.job_id).await.progress, 0.2);

    assert!(store.finish(&c, Outcome::Cancelled).await.unwrap());
    let j = job(&store, c.job_id).await;
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.error.as_deref(), Some("cancelled while running"));
    assert!(j.finished_at.is_some());
    assert_unclaimed(&j);
    assert_eq!(
        store.heartbeat(&c, None, LEASE).await.unwrap(),
        Heartbeat::Lost
    );
}

async fn finish_completed_stores_result_and_relabels<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    store
        .replace_segments(
            meeting,
            vec![
                segment(0.0, "zero", None),
                segment(1.0, "one", Some("keep-1")),
                segment(2.0, "two", Some("old")),
                segment(3.0, "three", Some("keep-3")),
            ],
        )
        .await
        .unwrap();
    let created = create(&store, new_job(meeting)).await;
    let (claimed, c) = claim(&store, "w").await;
    store.heartbeat(&c, Some(0.4), LEASE).await.unwrap();
    assert_eq!(
        store.result_turns(created.id).await.unwrap(),
        None,
        "not completed yet"
    );

    let turns = vec![
        turn(3.0, 4.0, "SPEAKER_01"),
        turn(0.0, 2.0, "SPEAKER_00"),
        turn(0.0, 1.0, "SPEAKER_01"),
        turn(1.5, 2.5, "SPEAKER_00"),
    ];
    let outcome = completed(
        turns,
        &["SPEAKER_00", "SPEAKER_01"],
        &[(0, "SPEAKER_00"), (2, "SPEAKER_01")],
    );
    let before = now_millis();
    assert!(store.finish(&c, outcome).await.unwrap());
    let after = now_millis();

    let j = job(&store, created.id).await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.progress, 1.0);
    assert_eq!(j.speakers, ["SPEAKER_00", "SPEAKER_01"]);
    assert_eq!(j.segments_updated, 2);
    assert_eq!(j.error, None);
    assert!((before..=after).contains(&j.finished_at.unwrap()));
    assert_eq!(j.started_at, claimed.started_at, "started_at is kept");
    assert_unclaimed(&j);
    assert_eq!(
        (j.attempt, j.seq, j.created_at),
        (1, created.seq, created.created_at)
    );

    let stored_turns = store.result_turns(created.id).await.unwrap().unwrap();
    assert_eq!(
        stored_turns,
        [
            turn(0.0, 1.0, "SPEAKER_01"),
            turn(0.0, 2.0, "SPEAKER_00"),
            turn(1.5, 2.5, "SPEAKER_00"),
            turn(3.0, 4.0, "SPEAKER_01"),
        ],
        "ordered by start, then end"
    );

    let speakers: Vec<_> = store
        .get_meeting(meeting)
        .await
        .unwrap()
        .unwrap()
        .segments
        .into_iter()
        .map(|s| (s.text, s.speaker))
        .collect();
    let expected = [
        ("zero", Some("SPEAKER_00")),
        ("one", Some("keep-1")),
        ("two", Some("SPEAKER_01")),
        ("three", Some("keep-3")),
    ]
    .map(|(t, s)| (t.to_string(), s.map(str::to_string)));
    assert_eq!(speakers, expected, "only listed segments are relabelled");

    // Empty results and unusual labels survive the round trip.
    let second = create(&store, new_job(meeting)).await;
    let (_, c) = claim(&store, "w").await;
    let labels = ["", "two words", "line\nbreak", "back\\slash", "ünïcode"];
    assert!(store
        .finish(&c, completed(vec![], &labels, &[]))
        .await
        .unwrap());
    let j = job(&store, second.id).await;
    assert_eq!(j.speakers, labels);
    assert_eq!(j.segments_updated, 0);
    assert_eq!(store.result_turns(second.id).await.unwrap(), Some(vec![]));
    assert_eq!(store.result_turns(JobId::new_random()).await.unwrap(), None);
}

async fn finish_failed_and_cancelled<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    store
        .replace_segments(meeting, vec![segment(0.0, "a", Some("x"))])
        .await
        .unwrap();
    let failed = create(&store, new_job(meeting)).await;
    let (_, c) = claim(&store, "w").await;
    store.heartbeat(&c, Some(0.3), LEASE).await.unwrap();
    assert!(store
        .finish(&c, Outcome::Failed("decoder exploded".into()))
        .await
        .unwrap());
    let j = job(&store, failed.id).await;
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.error.as_deref(), Some("decoder exploded"));
    assert_eq!(j.progress, 0.3, "progress is kept on failure");
    assert!(j.finished_at.is_some());
    assert!(j.speakers.is_empty());
    assert_unclaimed(&j);
    assert_eq!(store.result_turns(failed.id).await.unwrap(), None);

    // A worker may stop on its own accord (shutdown) without a cancel having been requested.
    let cancelled = create(&store, new_job(meeting)).await;
    let (_, c) = claim(&store, "w").await;
    assert!(store.finish(&c, Outcome::Cancelled).await.unwrap());
    let j = job(&store, cancelled.id).await;
    assert_eq!(j.state, JobState::Cancelled);
    assert_eq!(j.error.as_deref(), Some("cancelled while running"));
    assert!(j.finished_at.is_some());
    assert_unclaimed(&j);
    assert_eq!(store.result_turns(cancelled.id).await.unwrap(), None);

    let segments = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    assert_eq!(
        segments[0].speaker.as_deref(),
        Some("x"),
        "no relabelling without completion"
    );
}

async fn finish_with_stale_claim_changes_nothing<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    store
        .replace_segments(meeting, vec![segment(0.0, "a", Some("x"))])
        .await
        .unwrap();
    create(&store, new_job(meeting)).await;
    let (_, c) = claim(&store, "w").await;
    let before = job(&store, c.job_id).await;

    let stale = [
        Claim {
            attempt: 2,
            ..c.clone()
        },
        Claim {
            worker: worker("impostor"),
            ..c.clone()
        },
        Claim {
            job_id: JobId::new_random(),
            ..c.clone()
        },
    ];
    for claim in &stale {
        let outcome = completed(vec![turn(0.0, 1.0, "S")], &["S"], &[(0, "S")]);
        assert!(!store.finish(claim, outcome).await.unwrap(), "{claim:?}");
        assert!(!store
            .finish(claim, Outcome::Failed("no".into()))
            .await
            .unwrap());
        assert!(!store.finish(claim, Outcome::Cancelled).await.unwrap());
    }
    assert_eq!(job(&store, c.job_id).await, before);
    let segments = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    assert_eq!(segments[0].speaker.as_deref(), Some("x"));

    // The real claim still works, and its result is the only one recorded.
    assert!(store
        .finish(&c, completed(vec![turn(5.0, 6.0, "R")], &["R"], &[]))
        .await
        .unwrap());
    assert_eq!(
        store.result_turns(c.job_id).await.unwrap(),
        Some(vec![turn(5.0, 6.0, "R")])
    );
    assert_eq!(job(&store, c.job_id).await.speakers, ["R"]);
}

async fn finish_refuses_non_finite_turns<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    store
        .replace_segments(meeting, vec![segment(0.0, "a", Some("x"))])
        .await
        .unwrap();
    let created = create(&store, new_job(meeting)).await;
    let (_, c) = claim(&store, "w").await;
    store.heartbeat(&c, Some(0.5), LEASE).await.unwrap();
    let before = job(&store, created.id).await;

    let bad_bounds = [
        (f64::NAN, 1.0),
        (0.0, f64::NAN),
        (f64::INFINITY, 1.0),
        (0.0, f64::NEG_INFINITY),
    ];
    for (start, end) in bad_bounds {
        let turns = vec![turn(0.0, 1.0, "A"), turn(start, end, "B")];
        let outcome = completed(turns, &["A", "B"], &[(0, "A")]);
        let err = store.finish(&c, outcome).await.unwrap_err();
        match &err {
            StoreError::InvalidInput(message) => {
                assert!(message.contains("turn 1"), "names the index: {message}")
            }
            other => panic!("({start}, {end}): expected InvalidInput, got {other:?}"),
        }
    }
    // Checked before the claim: a stale claim with a bad result gets the same error.
    let stale = Claim {
        attempt: 7,
        ..c.clone()
    };
    let outcome = completed(vec![turn(f64::NAN, 1.0, "A")], &["A"], &[]);
    let err = store.finish(&stale, outcome).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");

    assert_eq!(
        job(&store, created.id).await,
        before,
        "nothing changed, not even the state"
    );
    assert_eq!(store.result_turns(created.id).await.unwrap(), None);
    let segments = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    assert_eq!(segments[0].speaker.as_deref(), Some("x"), "no relabelling");

    // The claim still holds and a good result goes through.
    assert_eq!(
        store.heartbeat(&c, None, LEASE).await.unwrap(),
        Heartbeat::Continue
    );
    let outcome = completed(vec![turn(0.0, 1.0, "A")], &["A"], &[(0, "A")]);
    assert!(store.finish(&c, outcome).await.unwrap());
    assert_eq!(job(&store, created.id).await.state, JobState::Completed);
    assert_eq!(
        store.result_turns(created.id).await.unwrap(),
        Some(vec![turn(0.0, 1.0, "A")])
    );
}

async fn release_requeues_with_the_same_attempt<S: JobStore>(store: S) {
    let first = queued_job(&store).await;
    let second = queued_job(&store).await;
    let third = queued_job(&store).await;
    let (_, c1) = claim(&store, "stopping").await;
    let (_, c2) = claim(&store, "stopping").await;
    store.heartbeat(&c2, Some(0.7), LEASE).await.unwrap();

    assert!(store.release(&c2).await.unwrap());
    let released = job(&store, second.id).await;
    assert_eq!(released.state, JobState::Queued);
    assert_eq!(released.attempt, 1, "a release uses up no attempt");
    assert_eq!(released.progress, 0.0);
    assert_eq!((released.started_at, released.finished_at), (None, None));
    assert_eq!(released.error, None);
    assert!(!released.cancel_requested);
    assert_unclaimed(&released);
    assert_eq!(
        (released.seq, released.created_at),
        (second.seq, second.created_at),
        "keeps its place"
    );
    assert_eq!(
        counts(&store).await,
        expect_counts(&[(JobState::Queued, 2), (JobState::Running, 1)])
    );

    // The released claim is dead.
    assert_eq!(
        store.heartbeat(&c2, Some(0.9), LEASE).await.unwrap(),
        Heartbeat::Lost
    );
    assert!(!store
        .finish(&c2, Outcome::Failed("late".into()))
        .await
        .unwrap());
    assert!(!store.release(&c2).await.unwrap(), "released once only");
    assert_eq!(job(&store, second.id).await, released);

    // It is claimed again ahead of the younger queued job, with the same attempt.
    let (again, c) = claim(&store, "next-process").await;
    assert_eq!(again.id, second.id);
    assert_eq!((again.attempt, c.attempt), (1, 1));
    assert_eq!(again.worker_id.as_deref(), Some("next-process"));
    assert!(store.release(&c1).await.unwrap());
    let (again, _) = claim(&store, "next-process").await;
    assert_eq!(again.id, first.id);
    let (last, _) = claim(&store, "next-process").await;
    assert_eq!(last.id, third.id);

    // A released job can complete normally.
    assert!(store
        .finish(&c, completed(vec![turn(0.0, 1.0, "S")], &["S"], &[]))
        .await
        .unwrap());
    let done = job(&store, second.id).await;
    assert_eq!((done.state, done.attempt), (JobState::Completed, 1));
}

async fn release_with_stale_claim_changes_nothing<S: JobStore>(store: S) {
    let queued = queued_job(&store).await;
    let never_claimed = Claim {
        job_id: queued.id,
        attempt: 1,
        worker: worker("w"),
    };
    assert!(!store.release(&never_claimed).await.unwrap(), "QUEUED");
    assert_eq!(job(&store, queued.id).await, queued);

    let (_, c) = claim(&store, "w").await;
    let before = job(&store, c.job_id).await;
    let stale = [
        Claim {
            attempt: 2,
            ..c.clone()
        },
        Claim {
            worker: worker("someone-else"),
            ..c.clone()
        },
        Claim {
            job_id: JobId::new_random(),
            ..c.clone()
        },
    ];
    for claim in &stale {
        assert!(!store.release(claim).await.unwrap(), "{claim:?}");
    }
    assert_eq!(job(&store, c.job_id).await, before);

    // After a recovery took the claim over, the old worker cannot release it.
    store
        .recover_abandoned(&worker("new"), 3, Millis::MAX)
        .await
        .unwrap();
    let requeued = job(&store, c.job_id).await;
    assert_eq!((requeued.state, requeued.attempt), (JobState::Queued, 2));
    assert!(!store.release(&c).await.unwrap());
    let (_, new) = claim(&store, "new").await;
    let running = job(&store, c.job_id).await;
    assert!(!store.release(&c).await.unwrap(), "RUNNING, newer attempt");
    assert_eq!(job(&store, c.job_id).await, running);

    assert!(store
        .finish(&new, Outcome::Failed("x".into()))
        .await
        .unwrap());
    let failed = job(&store, c.job_id).await;
    assert!(!store.release(&new).await.unwrap(), "terminal");
    assert_eq!(job(&store, c.job_id).await, failed);
}

async fn release_with_cancel_requested_cancels<S: JobStore>(store: S) {
    let j = queued_job(&store).await;
    let (claimed, c) = claim(&store, "w").await;
    store.heartbeat(&c, Some(0.4), LEASE).await.unwrap();
    store.cancel(j.id).await.unwrap();

    let before = now_millis();
    assert!(store.release(&c).await.unwrap());
    let after = now_millis();
    let cancelled = job(&store, j.id).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(cancelled.error.as_deref(), Some("cancelled while running"));
    assert!((before..=after).contains(&cancelled.finished_at.unwrap()));
    assert!(cancelled.cancel_requested);
    assert_eq!(cancelled.attempt, 1);
    assert_eq!(cancelled.started_at, claimed.started_at, "it did start");
    assert_eq!(cancelled.progress, 0.4, "progress is kept, as on a cancel");
    assert_unclaimed(&cancelled);
    assert_eq!(store.result_turns(j.id).await.unwrap(), None);

    assert!(
        store
            .claim_next(&worker("w"), LEASE)
            .await
            .unwrap()
            .is_none(),
        "not claimable"
    );
    assert!(!store.release(&c).await.unwrap());
    assert!(!store.finish(&c, Outcome::Cancelled).await.unwrap());
    assert_eq!(
        store.cancel(j.id).await.unwrap(),
        Some(CancelRequest::AlreadyTerminal(cancelled.clone()))
    );
    assert_eq!(job(&store, j.id).await, cancelled);
}

async fn released_job_is_not_recovered<S: JobStore>(store: S) {
    let j = queued_job(&store).await;
    let (_, c) = store
        .claim_next(&worker("stopping"), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert!(store.release(&c).await.unwrap());
    let released = job(&store, j.id).await;

    // Its claim (with a lease that has lapsed) is gone: there is nothing to take over.
    assert_eq!(
        store
            .recover_abandoned(&worker("next"), 3, Millis::MAX)
            .await
            .unwrap(),
        Recovery::default()
    );
    assert_eq!(job(&store, j.id).await, released);
    let (again, c) = claim(&store, "next").await;
    assert_eq!((again.id, c.attempt), (j.id, 1));

    // With a single attempt allowed, a released job still gets its one run.
    let k = queued_job(&store).await;
    let (_, c) = claim(&store, "stopping").await;
    assert!(store.release(&c).await.unwrap());
    assert_eq!(
        store
            .recover_abandoned(&worker("next"), 1, Millis::MAX)
            .await
            .unwrap(),
        Recovery::default()
    );
    let (again, _) = claim(&store, "next").await;
    assert_eq!((again.id, again.attempt), (k.id, 1));
}

async fn terminal_jobs_never_change<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    store
        .replace_segments(meeting, vec![segment(0.0, "a", None)])
        .await
        .unwrap();

    let mut terminal = Vec::new();
    let done = create(&store, new_job(meeting)).await;
    let (_, done_claim) = claim(&store, "w").await;
    assert!(store
        .finish(
            &done_claim,
            completed(vec![turn(0.0, 1.0, "A")], &["A"], &[(0, "A")])
        )
        .await
        .unwrap());
    terminal.push((done.id, Some(done_claim)));
    let failed = create(&store, new_job(meeting)).await;
    let (_, failed_claim) = claim(&store, "w").await;
    assert!(store
        .finish(&failed_claim, Outcome::Failed("f".into()))
        .await
        .unwrap());
    terminal.push((failed.id, Some(failed_claim)));
    let cancelled = create(&store, new_job(meeting)).await;
    store.cancel(cancelled.id).await.unwrap();
    terminal.push((cancelled.id, None));

    for (id, claim) in terminal {
        let before = job(&store, id).await;
        let turns_before = store.result_turns(id).await.unwrap();
        let claim = claim.unwrap_or(Claim {
            job_id: id,
            attempt: 1,
            worker: worker("w"),
        });
        assert!(!store
            .finish(&claim, completed(vec![], &["B"], &[(0, "B")]))
            .await
            .unwrap());
        assert!(!store
            .finish(&claim, Outcome::Failed("again".into()))
            .await
            .unwrap());
        assert!(!store.finish(&claim, Outcome::Cancelled).await.unwrap());
        assert!(!store.release(&claim).await.unwrap());
        assert_eq!(
            store.heartbeat(&claim, Some(0.5), LEASE).await.unwrap(),
            Heartbeat::Lost
        );
        assert_eq!(
            store.cancel(id).await.unwrap(),
            Some(CancelRequest::AlreadyTerminal(before.clone()))
        );
        assert_eq!(
            store
                .recover_abandoned(&worker("x"), 5, Millis::MAX)
                .await
                .unwrap(),
            Recovery::default()
        );
        assert!(store
            .claim_next(&worker("w"), LEASE)
            .await
            .unwrap()
            .is_none());
        assert_eq!(job(&store, id).await, before, "{:?} changed", before.state);
        assert_eq!(store.result_turns(id).await.unwrap(), turns_before);
    }
    let segments = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    assert_eq!(segments[0].speaker.as_deref(), Some("A"));
}

async fn cancel_queued_running_and_unknown<S: JobStore>(store: S) {
    assert_eq!(store.cancel(JobId::new_random()).await.unwrap(), None);

    let queued = queued_job(&store).await;
    let before = now_millis();
    let Some(CancelRequest::CancelledQueued(cancelled)) = store.cancel(queued.id).await.unwrap()
    else {
        panic!("expected CancelledQueued");
    };
    let after = now_millis();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(
        cancelled.error.as_deref(),
        Some("cancelled before it started")
    );
    assert!((before..=after).contains(&cancelled.finished_at.unwrap()));
    assert_eq!(cancelled.started_at, None);
    assert!(!cancelled.cancel_requested, "the flag is for RUNNING jobs");
    assert_unclaimed(&cancelled);
    assert_eq!(
        job(&store, queued.id).await,
        cancelled,
        "the returned job is the stored row"
    );
    assert!(
        store
            .claim_next(&worker("w"), LEASE)
            .await
            .unwrap()
            .is_none(),
        "not claimable"
    );

    let running = queued_job(&store).await;
    let (_, c) = claim(&store, "w").await;
    let Some(CancelRequest::Requested(requested)) = store.cancel(running.id).await.unwrap() else {
        panic!("expected Requested");
    };
    assert_eq!(requested.state, JobState::Running);
    assert!(requested.cancel_requested);
    assert_eq!(requested.error, None);
    assert_eq!(requested.finished_at, None);
    assert_eq!(requested.worker_id.as_deref(), Some("w"));
    assert_eq!(job(&store, running.id).await, requested);
    // Asking again is harmless.
    assert_eq!(
        store.cancel(running.id).await.unwrap(),
        Some(CancelRequest::Requested(requested.clone()))
    );
    assert!(store.finish(&c, Outcome::Cancelled).await.unwrap());
    let j = job(&store, running.id).await;
    assert!(
        j.cancel_requested,
        "the flag records that a cancel was asked for"
    );
    assert_eq!(
        store.cancel(running.id).await.unwrap(),
        Some(CancelRequest::AlreadyTerminal(j))
    );
}

async fn recover_requeues_other_workers_jobs<S: JobStore>(store: S) {
    let first = queued_job(&store).await;
    let second = queued_job(&store).await;
    let untouched = queued_job(&store).await;
    let (_, c1) = claim(&store, "dead-1").await;
    let (_, c2) = claim(&store, "dead-2").await;
    store.heartbeat(&c1, Some(0.6), LEASE).await.unwrap();

    let recovery = store
        .recover_abandoned(&worker("me"), 3, Millis::MAX)
        .await
        .unwrap();
    assert_eq!(
        recovery,
        Recovery {
            requeued: vec![first.id, second.id],
            failed: vec![],
            cancelled: vec![],
        }
    );
    for (id, original) in [(first.id, &first), (second.id, &second)] {
        let j = job(&store, id).await;
        assert_eq!(j.state, JobState::Queued);
        assert_eq!(j.attempt, 2);
        assert_eq!(j.progress, 0.0);
        assert_eq!(j.started_at, None);
        assert_eq!(j.finished_at, None);
        assert_eq!(j.error, None);
        assert!(!j.cancel_requested);
        assert_unclaimed(&j);
        assert_eq!(
            (j.seq, j.created_at),
            (original.seq, original.created_at),
            "keeps its place"
        );
    }
    assert_eq!(
        job(&store, untouched.id).await,
        untouched,
        "QUEUED jobs are not touched"
    );

    // The old claims are dead.
    assert_eq!(
        store.heartbeat(&c1, None, LEASE).await.unwrap(),
        Heartbeat::Lost
    );
    assert!(!store
        .finish(&c2, Outcome::Failed("late".into()))
        .await
        .unwrap());

    // Requeued jobs keep their queue position and are claimed with the new attempt.
    let (again, c) = claim(&store, "me").await;
    assert_eq!(again.id, first.id);
    assert_eq!(c.attempt, 2);
    assert_eq!(again.attempt, 2);

    // Nothing more to recover: the remaining RUNNING job is mine.
    assert_eq!(
        store
            .recover_abandoned(&worker("me"), 3, Millis::MAX)
            .await
            .unwrap(),
        Recovery::default()
    );
}

async fn recover_leaves_own_and_unexpired_claims_alone<S: JobStore>(store: S) {
    queued_job(&store).await;
    queued_job(&store).await;
    let (mine, _) = claim(&store, "me").await;
    let (theirs, _) = claim(&store, "peer").await;
    let lease = theirs.lease_expires_at.unwrap();

    // Mine is never taken over, however late; theirs only once its lease has lapsed.
    let now = now_millis();
    assert!(now < lease);
    let recovery = store
        .recover_abandoned(&worker("me"), 3, now)
        .await
        .unwrap();
    assert_eq!(recovery, Recovery::default());
    let recovery = store
        .recover_abandoned(&worker("me"), 3, lease - 1)
        .await
        .unwrap();
    assert_eq!(recovery, Recovery::default());
    assert_eq!(job(&store, mine.id).await, mine);
    assert_eq!(job(&store, theirs.id).await, theirs);

    // "expired at or before now".
    let recovery = store
        .recover_abandoned(&worker("me"), 3, lease)
        .await
        .unwrap();
    assert_eq!(recovery.requeued, [theirs.id]);
    assert_eq!(job(&store, mine.id).await, mine);

    // A zero lease lapses immediately.
    let (_, c) = claim(&store, "peer").await;
    store.heartbeat(&c, None, Duration::ZERO).await.unwrap();
    let recovery = store
        .recover_abandoned(&worker("me"), 3, now_millis())
        .await
        .unwrap();
    assert_eq!(recovery.requeued, [theirs.id]);
    assert_eq!(job(&store, theirs.id).await.attempt, 3);
}

async fn recover_fails_jobs_out_of_attempts<S: JobStore>(store: S) {
    let j = queued_job(&store).await;
    let max = 2;

    claim(&store, "dead-1").await;
    let recovery = store
        .recover_abandoned(&worker("me"), max, Millis::MAX)
        .await
        .unwrap();
    assert_eq!(recovery.requeued, [j.id]);

    claim(&store, "dead-2").await;
    let before = now_millis();
    let recovery = store
        .recover_abandoned(&worker("me"), max, Millis::MAX)
        .await
        .unwrap();
    let after = now_millis();
    assert_eq!(
        recovery,
        Recovery {
            requeued: vec![],
            failed: vec![j.id],
            cancelled: vec![],
        }
    );
    let failed = job(&store, j.id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempt, 2);
    assert_eq!(
        failed.error.as_deref(),
        Some("interrupted 2 times (the server stopped while it ran); gave up after 2 attempts")
    );
    let finished = failed.finished_at.expect("finished_at is set");
    assert!(
        (before..=after).contains(&finished),
        "the real time, not `now`"
    );
    assert_unclaimed(&failed);
    assert!(store
        .claim_next(&worker("me"), LEASE)
        .await
        .unwrap()
        .is_none());

    // With a single attempt allowed, the first interruption is final.
    let k = queued_job(&store).await;
    claim(&store, "dead").await;
    let recovery = store
        .recover_abandoned(&worker("me"), 1, Millis::MAX)
        .await
        .unwrap();
    assert_eq!(recovery.failed, [k.id]);
    assert_eq!(
        job(&store, k.id).await.error.as_deref(),
        Some("interrupted 1 time (the server stopped while it ran); gave up after 1 attempt")
    );
}

async fn recover_cancels_jobs_with_cancel_requested<S: JobStore>(store: S) {
    let j = queued_job(&store).await;
    let other = queued_job(&store).await;
    let (_, c) = claim(&store, "dead").await;
    claim(&store, "dead").await;
    store.cancel(j.id).await.unwrap();

    let recovery = store
        .recover_abandoned(&worker("me"), 1, Millis::MAX)
        .await
        .unwrap();
    assert_eq!(
        recovery,
        Recovery {
            requeued: vec![],
            failed: vec![other.id],
            cancelled: vec![j.id],
        }
    );
    let cancelled = job(&store, j.id).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(
        cancelled.error.as_deref(),
        Some("cancelled while running (the server stopped before the cancel completed)")
    );
    assert!(cancelled.finished_at.is_some());
    assert_eq!(cancelled.attempt, 1);
    assert_unclaimed(&cancelled);
    assert!(!store.finish(&c, Outcome::Cancelled).await.unwrap());
    assert_eq!(job(&store, j.id).await, cancelled);
}

async fn stale_worker_after_recovery_is_ignored<S: JobStore>(store: S) {
    let meeting = meeting_with_audio(&store).await;
    store
        .replace_segments(meeting, vec![segment(0.0, "a", None)])
        .await
        .unwrap();
    let created = create(&store, new_job(meeting)).await;
    let (_, old) = claim(&store, "old-process").await;
    store
        .recover_abandoned(&worker("new-process"), 3, Millis::MAX)
        .await
        .unwrap();
    let (_, new) = claim(&store, "new-process").await;
    assert_eq!(new.attempt, 2);

    // The old worker comes back to life: everything it says is ignored.
    assert_eq!(
        store.heartbeat(&old, Some(0.99), LEASE).await.unwrap(),
        Heartbeat::Lost
    );
    let stale = completed(vec![turn(0.0, 1.0, "OLD")], &["OLD"], &[(0, "OLD")]);
    assert!(!store.finish(&old, stale).await.unwrap());
    // Even a claim naming the new attempt but the old worker.
    let forged = Claim {
        attempt: 2,
        ..old.clone()
    };
    assert!(!store
        .finish(&forged, Outcome::Failed("x".into()))
        .await
        .unwrap());
    assert!(!store.release(&old).await.unwrap());
    assert!(!store.release(&forged).await.unwrap());
    let j = job(&store, created.id).await;
    assert_eq!((j.state, j.progress), (JobState::Running, 0.0));

    let fresh = completed(vec![turn(0.0, 1.0, "NEW")], &["NEW"], &[(0, "NEW")]);
    assert!(store.finish(&new, fresh).await.unwrap());
    let j = job(&store, created.id).await;
    assert_eq!(j.speakers, ["NEW"]);
    assert_eq!(
        store.result_turns(created.id).await.unwrap(),
        Some(vec![turn(0.0, 1.0, "NEW")])
    );
    let segments = store.get_meeting(meeting).await.unwrap().unwrap().segments;
    assert_eq!(segments[0].speaker.as_deref(), Some("NEW"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_is_listed_once() {
        let cases = cases::<crate::MemoryStore>();
        let names: HashSet<&str> = cases.iter().map(|case| case.name).collect();
        assert_eq!(names.len(), cases.len(), "a case is listed twice");
    }
}
