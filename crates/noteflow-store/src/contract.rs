//! The decisions every [`JobStore`](crate::JobStore) makes identically, written once.
//!
//! A store finds out the facts its way (a map lookup under a mutex, a `SELECT` in a transaction)
//! and hands them to these functions, which say what happens: which error, which message, which
//! state. Stores keep only what is theirs: how they read, how they guard their writes, how they
//! stay atomic. The conformance suite checks the result from the outside.
//!
//! This module is a leaf: it uses the crate's domain types and nothing of any store.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{
    Claim, Created, Heartbeat, Job, JobId, JobPage, JobResult, JobState, Meeting, MeetingCursor,
    MeetingId, MeetingPage, Millis, NewJob, Outcome, Recovery, Segment, SegmentInput, StoreError,
    StoreResult, WorkerId,
};

/// `error` of a job cancelled while QUEUED.
pub const CANCELLED_BEFORE_START: &str = "cancelled before it started";
/// `error` of a job whose worker finished it with [`Outcome::Cancelled`], or that was released
/// (shutdown) with a cancel requested.
pub const CANCELLED_WHILE_RUNNING: &str = "cancelled while running";
/// `error` of a job that recovery found RUNNING with a cancel requested.
pub const CANCELLED_BY_RECOVERY: &str =
    "cancelled while running (the server stopped before the cancel completed)";

/// `error` of a job that recovery gave up on.
pub fn out_of_attempts_message(attempt: u32, max_attempts: u32) -> String {
    let plural = |n: u32| if n == 1 { "" } else { "s" };
    format!(
        "interrupted {attempt} time{} (the server stopped while it ran); gave up after {max_attempts} attempt{}",
        plural(attempt),
        plural(max_attempts)
    )
}

/// When a lease taken at `now` lapses; saturates rather than overflowing for absurd leases.
pub fn lease_deadline(now: Millis, lease: Duration) -> Millis {
    now.saturating_add(Millis::try_from(lease.as_millis()).unwrap_or(Millis::MAX))
}

/// A heartbeat's progress as it may be recorded: clamped to 0..=1, NaN ignored (it would compare
/// false against everything and, in SQL, be stored as NULL). A store records it only when it is
/// higher than the job's progress.
pub fn usable_progress(progress: Option<f32>) -> Option<f32> {
    progress.filter(|p| !p.is_nan()).map(|p| p.clamp(0.0, 1.0))
}

/// A collection's length as the `u32` the interface counts in (segments, relabelled segments).
pub fn count_u32(len: usize) -> StoreResult<u32> {
    // Unreachable in practice: billions of segments would exhaust memory first.
    u32::try_from(len)
        .map_err(|_| StoreError::Corrupt(format!("{len} items do not fit in a 32-bit count")))
}

/// `InvalidInput` naming the first of `bounds` (start, end) that is not a pair of finite numbers:
/// NaN or an infinity would make the list unorderable, and SQL stores NaN as NULL.
fn check_finite(what: &str, bounds: impl IntoIterator<Item = (f64, f64)>) -> StoreResult<()> {
    match bounds
        .into_iter()
        .enumerate()
        .find(|(_, (start, end))| !(start.is_finite() && end.is_finite()))
    {
        None => Ok(()),
        Some((index, (start, end))) => Err(StoreError::InvalidInput(format!(
            "{what} {index} has a non-finite bound (start {start}, end {end})"
        ))),
    }
}

/// The transcript a [`JobStore::replace_segments`](crate::JobStore::replace_segments) stores:
/// indices 0..n in the given order. `InvalidInput` for a non-finite bound. Called before anything
/// is looked up, so a bad import is refused the same way whatever the meeting's state.
pub fn indexed_segments(segments: Vec<SegmentInput>) -> StoreResult<Vec<Segment>> {
    check_finite("segment", segments.iter().map(|s| (s.start, s.end)))?;
    count_u32(segments.len())?;
    Ok(segments
        .into_iter()
        .zip(0..)
        .map(|(segment, index)| Segment {
            index,
            start: segment.start,
            end: segment.end,
            text: segment.text,
            speaker: segment.speaker,
        })
        .collect())
}

/// Whether a meeting's inputs (audio, segments) may be replaced: `MeetingNotFound`, or
/// `MeetingBusy` while it has a QUEUED or RUNNING job (its worker would diarize audio that no
/// longer matches, and its result relabels segments by index).
pub fn check_inputs_replaceable(
    id: MeetingId,
    meeting_exists: bool,
    has_active_job: bool,
) -> StoreResult<()> {
    first_failure([
        (!meeting_exists, StoreError::MeetingNotFound(id)),
        (has_active_job, StoreError::MeetingBusy(id)),
    ])
}

/// The error of the first check that failed, in the order given.
fn first_failure<const N: usize>(checks: [(bool, StoreError); N]) -> StoreResult<()> {
    match checks.into_iter().find(|(failed, _)| *failed) {
        Some((_, error)) => Err(error),
        None => Ok(()),
    }
}

/// Step 1 of [`JobStore::create_job`](crate::JobStore::create_job): `holder` already uses the new
/// job's request id. It is the answer when it is for the same meeting (whatever its state);
/// otherwise the request id conflicts.
pub fn reuse_request_id(new: &NewJob, holder: Job) -> StoreResult<Created> {
    if holder.meeting_id == new.meeting_id {
        Ok(Created::Existing(holder))
    } else {
        Err(StoreError::RequestIdConflict {
            request_id: new.request_id.clone().unwrap_or_default(),
            other: holder.meeting_id,
        })
    }
}

/// Step 2 of `create_job`: `MeetingNotFound`, or `NoAudio` when the meeting has no audio.
pub fn check_startable(
    meeting_id: MeetingId,
    meeting_exists: bool,
    has_audio: bool,
) -> StoreResult<()> {
    first_failure([
        (!meeting_exists, StoreError::MeetingNotFound(meeting_id)),
        (!has_audio, StoreError::NoAudio(meeting_id)),
    ])
}

/// Step 4 of `create_job`: `QueueFull` when `queued` jobs already fill the queue.
pub fn check_queue_room(queued: u64, max_queued: u64) -> StoreResult<()> {
    if queued >= max_queued {
        Err(StoreError::QueueFull { queued })
    } else {
        Ok(())
    }
}

/// How many jobs a listing page of `limit` fetches: one beyond the page tells whether there is a
/// next page (see [`into_page`]).
pub fn rows_to_fetch(limit: u32) -> u64 {
    u64::from(limit) + 1
}

/// The page made of `jobs` (newest first), which holds up to [`rows_to_fetch`] jobs: the extra
/// one, when present, only says there is a next page. A zero limit gives an empty last page (a
/// cursor could not move past anything).
pub fn into_page(mut jobs: Vec<Job>, limit: u32) -> JobPage {
    let limit = limit as usize;
    let more = jobs.len() > limit && limit > 0;
    jobs.truncate(limit);
    let next_after_seq = if more {
        jobs.last().map(|job| job.seq)
    } else {
        None
    };
    JobPage {
        jobs,
        next_after_seq,
    }
}

/// The page made of `meetings` (newest first), which holds up to [`rows_to_fetch`] meetings, as
/// [`into_page`] does for jobs.
pub fn into_meeting_page(mut meetings: Vec<Meeting>, limit: u32) -> MeetingPage {
    let limit = limit as usize;
    let more = meetings.len() > limit && limit > 0;
    meetings.truncate(limit);
    let next_after = if more {
        meetings.last().map(MeetingCursor::of)
    } else {
        None
    };
    MeetingPage {
        meetings,
        next_after,
    }
}

/// Whether `meeting` comes after `cursor` in listing order (newest first, then descending id).
pub fn is_after(meeting: &Meeting, cursor: Option<MeetingCursor>) -> bool {
    cursor.is_none_or(|c| (meeting.created_at, meeting.id) < (c.created_at, c.id))
}

/// The claim `worker` holds on `job`, which it has just claimed.
pub fn claim_of(job: &Job, worker: WorkerId) -> Claim {
    Claim {
        job_id: job.id,
        attempt: job.attempt,
        worker,
    }
}

/// Whether `claim` still holds `job`: RUNNING with the same attempt and worker. Every worker
/// update is guarded by this (in SQL, in the `UPDATE`'s `WHERE`); one whose claim does not hold
/// changes nothing.
pub fn claim_holds(claim: &Claim, job: &Job) -> bool {
    job.id == claim.job_id
        && job.state == JobState::Running
        && job.attempt == claim.attempt
        && job.worker_id.as_deref() == Some(claim.worker.as_str())
}

/// The answer to a heartbeat, from the claimed job's cancel flag after the heartbeat's guarded
/// update: `None` when the update matched nothing (the claim no longer holds).
pub fn heartbeat_answer(cancel_requested: Option<bool>) -> Heartbeat {
    match cancel_requested {
        None => Heartbeat::Lost,
        Some(true) => Heartbeat::CancelRequested,
        Some(false) => Heartbeat::Continue,
    }
}

/// What [`JobStore::finish`](crate::JobStore::finish) writes for an outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub state: JobState,
    /// The new progress; `None` keeps the job's.
    pub progress: Option<f32>,
    /// The new `error`; `None` keeps the job's.
    pub error: Option<String>,
    /// Set for COMPLETED only.
    pub completion: Option<Completion>,
}

/// A completed run's result, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// As the worker gave it, but with the turns ordered by start, then end (ties keep the
    /// worker's order): stores return them in this order. `segment_speakers` relabel the meeting's
    /// segments by index; an index with no segment is ignored.
    pub result: JobResult,
    /// `Job::segments_updated`: the length of `segment_speakers`.
    pub segments_updated: u32,
}

/// What `finish` writes for `outcome`. `InvalidInput` for a result turn with a non-finite bound;
/// checked before the claim, so a bad result is refused whoever sends it.
pub fn ending(outcome: Outcome) -> StoreResult<Ending> {
    Ok(match outcome {
        Outcome::Completed(mut result) => {
            check_finite("result turn", result.turns.iter().map(|t| (t.start, t.end)))?;
            let segments_updated = count_u32(result.segment_speakers.len())?;
            result
                .turns
                .sort_by(|a, b| a.start.total_cmp(&b.start).then(a.end.total_cmp(&b.end)));
            Ending {
                state: JobState::Completed,
                progress: Some(1.0),
                error: None,
                completion: Some(Completion {
                    result,
                    segments_updated,
                }),
            }
        }
        Outcome::Failed(message) => Ending {
            state: JobState::Failed,
            progress: None,
            error: Some(message),
            completion: None,
        },
        Outcome::Cancelled => Ending {
            state: JobState::Cancelled,
            progress: None,
            error: Some(CANCELLED_WHILE_RUNNING.to_owned()),
            completion: None,
        },
    })
}

/// What [`JobStore::cancel`](crate::JobStore::cancel) does to a job in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAction {
    /// QUEUED: CANCELLED at once, `finished_at` set, error [`CANCELLED_BEFORE_START`].
    CancelQueued,
    /// RUNNING: the cancel flag is set; the worker stops on its next heartbeat.
    RequestCancel,
    /// Terminal: nothing changes.
    AlreadyTerminal,
}

impl CancelAction {
    pub fn for_state(state: JobState) -> Self {
        match state {
            JobState::Queued => CancelAction::CancelQueued,
            JobState::Running => CancelAction::RequestCancel,
            JobState::Completed | JobState::Failed | JobState::Cancelled => {
                CancelAction::AlreadyTerminal
            }
        }
    }
}

/// Whether [`JobStore::recover_abandoned`](crate::JobStore::recover_abandoned), called by `me`
/// at `now`, takes `job` over: RUNNING, held by another worker, with a lease that lapsed at or
/// before `now`.
pub fn is_abandoned(job: &Job, me: &WorkerId, now: Millis) -> bool {
    job.state == JobState::Running
        && job.worker_id.as_deref() != Some(me.as_str())
        && job.lease_expires_at.is_some_and(|lease| lease <= now)
}

/// What recovery does with an abandoned job. Every action also clears the claim (worker, lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryAction {
    /// A cancel was asked for: CANCELLED, `finished_at` set, error [`CANCELLED_BY_RECOVERY`].
    Cancel,
    /// QUEUED again with attempt + 1, progress 0, `started_at` cleared.
    Requeue,
    /// Out of attempts: FAILED, `finished_at` set, with this error.
    Fail { error: String },
}

impl RecoveryAction {
    pub fn decide(cancel_requested: bool, attempt: u32, max_attempts: u32) -> Self {
        if cancel_requested {
            RecoveryAction::Cancel
        } else if attempt < max_attempts {
            RecoveryAction::Requeue
        } else {
            RecoveryAction::Fail {
                error: out_of_attempts_message(attempt, max_attempts),
            }
        }
    }

    /// The terminal state and error a [`Cancel`](RecoveryAction::Cancel) or
    /// [`Fail`](RecoveryAction::Fail) writes; `None` for a requeue.
    pub fn terminal(&self) -> Option<(JobState, &str)> {
        match self {
            RecoveryAction::Cancel => Some((JobState::Cancelled, CANCELLED_BY_RECOVERY)),
            RecoveryAction::Requeue => None,
            RecoveryAction::Fail { error } => Some((JobState::Failed, error)),
        }
    }

    /// Reports in `recovery` that this action was applied to job `id`.
    pub fn record(&self, id: JobId, recovery: &mut Recovery) {
        match self {
            RecoveryAction::Cancel => recovery.cancelled.push(id),
            RecoveryAction::Requeue => recovery.requeued.push(id),
            RecoveryAction::Fail { .. } => recovery.failed.push(id),
        }
    }
}

/// The start of [`JobStore::count_by_state`](crate::JobStore::count_by_state): every state, at
/// zero.
pub fn zero_counts() -> BTreeMap<JobState, u64> {
    JobState::ALL.into_iter().map(|s| (s, 0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_clamped_and_nan_ignored() {
        assert_eq!(usable_progress(Some(1.5)), Some(1.0));
        assert_eq!(usable_progress(Some(-0.5)), Some(0.0));
        assert_eq!(usable_progress(Some(0.25)), Some(0.25));
        assert_eq!(usable_progress(Some(f32::NAN)), None);
        assert_eq!(usable_progress(None), None);
    }

    #[test]
    fn lease_deadline_saturates() {
        assert_eq!(lease_deadline(1_000, Duration::from_millis(500)), 1_500);
        assert_eq!(lease_deadline(1_000, Duration::MAX), Millis::MAX);
    }

    #[test]
    fn recovery_decides_cancel_first_then_by_attempts() {
        assert_eq!(RecoveryAction::decide(true, 3, 3), RecoveryAction::Cancel);
        assert_eq!(RecoveryAction::decide(false, 2, 3), RecoveryAction::Requeue);
        assert_eq!(
            RecoveryAction::decide(false, 1, 1),
            RecoveryAction::Fail {
                error:
                    "interrupted 1 time (the server stopped while it ran); gave up after 1 attempt"
                        .into()
            }
        );
    }

    #[test]
    fn segments_get_indices_in_order_and_bad_bounds_are_named() {
        let segment = |start: f64, end: f64| SegmentInput {
            start,
            end,
            text: "t".into(),
            speaker: None,
        };
        let indexed = indexed_segments(vec![segment(5.0, 6.0), segment(0.0, 1.0)]).unwrap();
        let indices: Vec<_> = indexed.iter().map(|s| (s.index, s.start)).collect();
        assert_eq!(indices, [(0, 5.0), (1, 0.0)]);

        let err = indexed_segments(vec![segment(0.0, 1.0), segment(f64::NAN, 2.0)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input: segment 1 has a non-finite bound (start NaN, end 2)"
        );
    }
}
