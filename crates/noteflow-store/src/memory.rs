//! [`MemoryStore`]: the whole state in process memory, behind one mutex.
//!
//! This is the reference semantics of [`JobStore`]: other stores must behave exactly like it (the
//! [`conformance`](crate::conformance) suite checks that). It is also a real storage mode for
//! deployments that accept losing everything on restart.
//!
//! Every method takes the mutex once and does all of its reading and writing under it, which is what
//! makes each call atomic. Nothing inside the critical sections awaits. Every state change is decided
//! by looking at the state it leaves (a QUEUED job for a claim, a matching claim for a worker's
//! update, an expired claim for recovery) under that same lock: the in-memory form of the guard
//! that the SQL stores put in each `UPDATE`'s `WHERE`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::{
    now_millis, AudioInfo, CancelRequest, Claim, Created, Heartbeat, Job, JobFilter, JobId,
    JobPage, JobResult, JobState, JobStore, Meeting, MeetingId, Millis, NewJob, Outcome, Recovery,
    Segment, SegmentInput, StorageMode, StoreError, StoreResult, StoredAudio, TurnRecord, WorkerId,
};

// The texts below are part of the contract shared by all stores; they live here, with the reference
// implementation, and the SQLite store reuses them so the two cannot drift apart.

/// `error` of a job cancelled while QUEUED.
pub(crate) const CANCELLED_BEFORE_START: &str = "cancelled before it started";
/// `error` of a job whose worker finished it with [`Outcome::Cancelled`].
pub(crate) const CANCELLED_WHILE_RUNNING: &str = "cancelled while running";
/// `error` of a job that recovery found RUNNING with a cancel requested.
pub(crate) const CANCELLED_BY_RECOVERY: &str =
    "cancelled while running (the server stopped before the cancel completed)";

/// `error` of a job that recovery gave up on.
pub(crate) fn out_of_attempts_message(attempt: u32, max_attempts: u32) -> String {
    let plural = |n: u32| if n == 1 { "" } else { "s" };
    format!(
        "interrupted {attempt} time{} (the server stopped while it ran); gave up after {max_attempts} attempt{}",
        plural(attempt),
        plural(max_attempts)
    )
}

/// When a lease taken at `now` lapses; saturates rather than overflowing for absurd leases.
pub(crate) fn lease_deadline(now: Millis, lease: Duration) -> Millis {
    now.saturating_add(Millis::try_from(lease.as_millis()).unwrap_or(Millis::MAX))
}

/// A heartbeat's progress as it may be recorded: clamped to 0..=1, NaN ignored (it would compare
/// false against everything and, in SQLite, be stored as NULL).
pub(crate) fn usable_progress(progress: Option<f32>) -> Option<f32> {
    progress.filter(|p| !p.is_nan()).map(|p| p.clamp(0.0, 1.0))
}

/// `InvalidInput` unless every segment's bounds are finite numbers (NaN or an infinity would make
/// the transcript unorderable, and SQLite stores NaN as NULL).
pub(crate) fn check_segments(segments: &[SegmentInput]) -> StoreResult<()> {
    match segments
        .iter()
        .position(|s| !(s.start.is_finite() && s.end.is_finite()))
    {
        None => Ok(()),
        Some(index) => {
            let SegmentInput { start, end, .. } = &segments[index];
            Err(StoreError::InvalidInput(format!(
                "segment {index} has a non-finite bound (start {start}, end {end})"
            )))
        }
    }
}

/// `InvalidInput` unless every result turn's bounds are finite numbers.
pub(crate) fn check_turns(turns: &[TurnRecord]) -> StoreResult<()> {
    match turns
        .iter()
        .position(|t| !(t.start.is_finite() && t.end.is_finite()))
    {
        None => Ok(()),
        Some(index) => {
            let TurnRecord { start, end, .. } = &turns[index];
            Err(StoreError::InvalidInput(format!(
                "result turn {index} has a non-finite bound (start {start}, end {end})"
            )))
        }
    }
}

/// The page made of `jobs` (newest first), which holds up to `limit + 1` jobs: the extra one, when
/// present, only says there is a next page. A zero limit gives an empty last page (a cursor could
/// not move past anything).
pub(crate) fn into_page(mut jobs: Vec<Job>, limit: u32) -> JobPage {
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

/// Keeps everything in process memory; nothing survives a restart.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> StoreResult<MutexGuard<'_, State>> {
        // A panic while holding the lock may have left a call half-applied, and this store has no
        // transaction to roll it back: refuse to serve possibly inconsistent state.
        self.state.lock().map_err(|_| {
            StoreError::Task(
                "the memory store is unusable: an earlier call panicked while updating it".into(),
            )
        })
    }
}

#[derive(Default)]
struct State {
    meetings: HashMap<MeetingId, StoredMeeting>,
    /// Keyed by `seq`, so iteration is queue order and reverse iteration is listing order.
    jobs: BTreeMap<i64, StoredJob>,
    seq_by_id: HashMap<JobId, i64>,
    job_by_request_id: HashMap<String, JobId>,
    /// Never reused, even after deletions, like SQLite's AUTOINCREMENT: a client paging with
    /// `after_seq` must never see a new job slip in behind its cursor.
    last_seq: i64,
}

struct StoredMeeting {
    title: String,
    created_at: Millis,
    audio: Option<StoredAudio>,
    /// Position in the vector is the segment's index.
    segments: Vec<Segment>,
}

struct StoredJob {
    job: Job,
    /// Ordered by start, then end (stable, so ties keep the worker's order).
    turns: Vec<TurnRecord>,
}

impl State {
    fn job(&self, id: JobId) -> Option<&StoredJob> {
        self.seq_by_id.get(&id).and_then(|seq| self.jobs.get(seq))
    }

    fn job_mut(&mut self, id: JobId) -> Option<&mut StoredJob> {
        let seq = self.seq_by_id.get(&id)?;
        self.jobs.get_mut(seq)
    }

    /// The job `claim` refers to, if the claim still holds.
    fn claimed_mut(&mut self, claim: &Claim) -> Option<&mut StoredJob> {
        self.job_mut(claim.job_id).filter(|stored| {
            let job = &stored.job;
            job.state == JobState::Running
                && job.attempt == claim.attempt
                && job.worker_id.as_deref() == Some(claim.worker.as_str())
        })
    }

    fn active_job(&self, meeting_id: MeetingId) -> Option<&Job> {
        self.jobs
            .values()
            .map(|stored| &stored.job)
            .find(|job| job.meeting_id == meeting_id && job.state.is_active())
    }

    fn count(&self, state: JobState) -> u64 {
        self.jobs
            .values()
            .filter(|stored| stored.job.state == state)
            .count() as u64
    }
}

fn meeting_view(id: MeetingId, meeting: &StoredMeeting) -> Meeting {
    Meeting {
        id,
        title: meeting.title.clone(),
        created_at: meeting.created_at,
        audio: meeting.audio.as_ref().map(|audio| AudioInfo {
            size_bytes: audio.bytes.len() as u64,
            duration_secs: audio.duration_secs,
            format_hint: audio.format_hint.clone(),
        }),
        segments: meeting.segments.clone(),
    }
}

/// A collection's length as the `u32` the interface counts in (segments, relabelled segments).
pub(crate) fn count_u32(len: usize) -> StoreResult<u32> {
    // Unreachable in practice: billions of segments would exhaust memory first.
    u32::try_from(len)
        .map_err(|_| StoreError::Corrupt(format!("{len} items do not fit in a 32-bit count")))
}

#[async_trait::async_trait]
impl JobStore for MemoryStore {
    fn mode(&self) -> StorageMode {
        StorageMode::Memory
    }

    async fn create_meeting(&self, title: &str) -> StoreResult<Meeting> {
        let id = MeetingId::new_random();
        let meeting = StoredMeeting {
            title: title.to_owned(),
            created_at: now_millis(),
            audio: None,
            segments: Vec::new(),
        };
        let view = meeting_view(id, &meeting);
        self.state()?.meetings.insert(id, meeting);
        Ok(view)
    }

    async fn get_meeting(&self, id: MeetingId) -> StoreResult<Option<Meeting>> {
        let state = self.state()?;
        Ok(state
            .meetings
            .get(&id)
            .map(|meeting| meeting_view(id, meeting)))
    }

    async fn delete_meeting(&self, id: MeetingId) -> StoreResult<bool> {
        let mut state = self.state()?;
        if state.meetings.remove(&id).is_none() {
            return Ok(false);
        }
        let doomed: Vec<i64> = state
            .jobs
            .iter()
            .filter(|(_, stored)| stored.job.meeting_id == id)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in doomed {
            if let Some(stored) = state.jobs.remove(&seq) {
                state.seq_by_id.remove(&stored.job.id);
                // The request id is free again, as it is once SQLite's cascade deletes the row.
                if let Some(request_id) = &stored.job.request_id {
                    state.job_by_request_id.remove(request_id);
                }
            }
        }
        Ok(true)
    }

    async fn put_audio(&self, id: MeetingId, audio: StoredAudio) -> StoreResult<()> {
        let mut state = self.state()?;
        if state.active_job(id).is_some() {
            return Err(StoreError::MeetingBusy(id));
        }
        let meeting = state
            .meetings
            .get_mut(&id)
            .ok_or(StoreError::MeetingNotFound(id))?;
        meeting.audio = Some(audio);
        Ok(())
    }

    async fn get_audio(&self, id: MeetingId) -> StoreResult<Option<StoredAudio>> {
        let state = self.state()?;
        Ok(state
            .meetings
            .get(&id)
            .and_then(|meeting| meeting.audio.clone()))
    }

    async fn replace_segments(
        &self,
        id: MeetingId,
        segments: Vec<SegmentInput>,
    ) -> StoreResult<u32> {
        // The input is checked before anything is looked up, so a bad import is refused the same
        // way whatever the meeting's state.
        check_segments(&segments)?;
        let count = count_u32(segments.len())?;
        let segments = segments
            .into_iter()
            .zip(0..)
            .map(|(segment, index)| Segment {
                index,
                start: segment.start,
                end: segment.end,
                text: segment.text,
                speaker: segment.speaker,
            })
            .collect();
        let mut state = self.state()?;
        if state.active_job(id).is_some() {
            // Its result relabels segments by index: they must still be the segments it was
            // started for.
            return Err(StoreError::MeetingBusy(id));
        }
        let meeting = state
            .meetings
            .get_mut(&id)
            .ok_or(StoreError::MeetingNotFound(id))?;
        meeting.segments = segments;
        Ok(count)
    }

    async fn create_job(&self, new: NewJob, max_queued: u64) -> StoreResult<Created> {
        let mut state = self.state()?;

        if let Some(request_id) = &new.request_id {
            if let Some(stored) = state
                .job_by_request_id
                .get(request_id)
                .and_then(|id| state.job(*id))
            {
                return if stored.job.meeting_id == new.meeting_id {
                    Ok(Created::Existing(stored.job.clone()))
                } else {
                    Err(StoreError::RequestIdConflict {
                        request_id: request_id.clone(),
                        other: stored.job.meeting_id,
                    })
                };
            }
        }

        let meeting = state
            .meetings
            .get(&new.meeting_id)
            .ok_or(StoreError::MeetingNotFound(new.meeting_id))?;
        if meeting.audio.is_none() {
            return Err(StoreError::NoAudio(new.meeting_id));
        }

        if let Some(active) = state.active_job(new.meeting_id) {
            return Ok(Created::Existing(active.clone()));
        }

        let queued = state.count(JobState::Queued);
        if queued >= max_queued {
            return Err(StoreError::QueueFull { queued });
        }

        state.last_seq += 1;
        let job = Job {
            id: JobId::new_random(),
            meeting_id: new.meeting_id,
            seq: state.last_seq,
            state: JobState::Queued,
            progress: 0.0,
            attempt: 1,
            request_id: new.request_id,
            min_speakers: new.min_speakers,
            max_speakers: new.max_speakers,
            speakers: Vec::new(),
            segments_updated: 0,
            error: None,
            created_at: now_millis(),
            started_at: None,
            finished_at: None,
            worker_id: None,
            lease_expires_at: None,
            cancel_requested: false,
        };
        state.seq_by_id.insert(job.id, job.seq);
        if let Some(request_id) = &job.request_id {
            state.job_by_request_id.insert(request_id.clone(), job.id);
        }
        state.jobs.insert(
            job.seq,
            StoredJob {
                job: job.clone(),
                turns: Vec::new(),
            },
        );
        Ok(Created::New(job))
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        Ok(self.state()?.job(id).map(|stored| stored.job.clone()))
    }

    async fn list_jobs(
        &self,
        filter: &JobFilter,
        limit: u32,
        after_seq: Option<i64>,
    ) -> StoreResult<JobPage> {
        let state = self.state()?;
        let upper = after_seq.unwrap_or(i64::MAX);
        // One job beyond the page tells whether there is a next page.
        let jobs: Vec<Job> = state
            .jobs
            .range(..upper)
            .rev()
            .map(|(_, stored)| &stored.job)
            .filter(|job| filter.meeting_id.is_none_or(|id| job.meeting_id == id))
            .filter(|job| filter.state.is_none_or(|s| job.state == s))
            .take((limit as usize).saturating_add(1))
            .cloned()
            .collect();
        Ok(into_page(jobs, limit))
    }

    async fn claim_next(
        &self,
        worker: &WorkerId,
        lease: Duration,
    ) -> StoreResult<Option<(Job, Claim)>> {
        let mut state = self.state()?;
        // A linear scan: terminal jobs are skipped cheaply, and this store is not meant for
        // histories large enough for it to matter.
        let Some(stored) = state
            .jobs
            .values_mut()
            .find(|stored| stored.job.state == JobState::Queued)
        else {
            return Ok(None);
        };
        let now = now_millis();
        let job = &mut stored.job;
        job.state = JobState::Running;
        job.worker_id = Some(worker.as_str().to_owned());
        job.started_at = Some(now);
        job.progress = 0.0;
        job.lease_expires_at = Some(lease_deadline(now, lease));
        let claim = Claim {
            job_id: job.id,
            attempt: job.attempt,
            worker: worker.clone(),
        };
        Ok(Some((job.clone(), claim)))
    }

    async fn heartbeat(
        &self,
        claim: &Claim,
        progress: Option<f32>,
        lease: Duration,
    ) -> StoreResult<Heartbeat> {
        let mut state = self.state()?;
        let Some(stored) = state.claimed_mut(claim) else {
            return Ok(Heartbeat::Lost);
        };
        let job = &mut stored.job;
        job.lease_expires_at = Some(lease_deadline(now_millis(), lease));
        if let Some(progress) = usable_progress(progress) {
            job.progress = job.progress.max(progress);
        }
        Ok(if job.cancel_requested {
            Heartbeat::CancelRequested
        } else {
            Heartbeat::Continue
        })
    }

    async fn finish(&self, claim: &Claim, outcome: Outcome) -> StoreResult<bool> {
        // Checked before the claim, as in every store: a bad result is refused whoever sends it.
        if let Outcome::Completed(result) = &outcome {
            check_turns(&result.turns)?;
        }
        let mut state = self.state()?;
        let Some(stored) = state.claimed_mut(claim) else {
            return Ok(false);
        };
        let job = &mut stored.job;
        let relabel = match outcome {
            Outcome::Completed(JobResult {
                mut turns,
                speakers,
                segment_speakers,
            }) => {
                // The only fallible step comes first, so an error leaves the job untouched.
                job.segments_updated = count_u32(segment_speakers.len())?;
                job.state = JobState::Completed;
                job.progress = 1.0;
                job.speakers = speakers;
                turns.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.end.total_cmp(&b.end)));
                stored.turns = turns;
                Some((job.meeting_id, segment_speakers))
            }
            Outcome::Failed(message) => {
                job.state = JobState::Failed;
                job.error = Some(message);
                None
            }
            Outcome::Cancelled => {
                job.state = JobState::Cancelled;
                job.error = Some(CANCELLED_WHILE_RUNNING.to_owned());
                None
            }
        };
        job.finished_at = Some(now_millis());
        job.worker_id = None;
        job.lease_expires_at = None;
        if let Some((meeting_id, segment_speakers)) = relabel {
            // A job's meeting exists while the job does: deleting the meeting deletes its jobs.
            if let Some(meeting) = state.meetings.get_mut(&meeting_id) {
                for (index, speaker) in segment_speakers {
                    // Indices past the end are ignored, as an UPDATE matching no row would be.
                    if let Some(segment) = meeting.segments.get_mut(index as usize) {
                        segment.speaker = Some(speaker);
                    }
                }
            }
        }
        Ok(true)
    }

    async fn release(&self, claim: &Claim) -> StoreResult<bool> {
        let mut state = self.state()?;
        let Some(stored) = state.claimed_mut(claim) else {
            return Ok(false);
        };
        let job = &mut stored.job;
        job.worker_id = None;
        job.lease_expires_at = None;
        if job.cancel_requested {
            // The cancel wins: the job is not run again.
            job.state = JobState::Cancelled;
            job.error = Some(CANCELLED_WHILE_RUNNING.to_owned());
            job.finished_at = Some(now_millis());
        } else {
            // Back in the queue at its old place (its seq), with the attempt it had.
            job.state = JobState::Queued;
            job.progress = 0.0;
            job.started_at = None;
        }
        Ok(true)
    }

    async fn cancel(&self, id: JobId) -> StoreResult<Option<CancelRequest>> {
        let mut state = self.state()?;
        let Some(stored) = state.job_mut(id) else {
            return Ok(None);
        };
        let job = &mut stored.job;
        Ok(Some(match job.state {
            JobState::Queued => {
                job.state = JobState::Cancelled;
                job.finished_at = Some(now_millis());
                job.error = Some(CANCELLED_BEFORE_START.to_owned());
                CancelRequest::CancelledQueued(job.clone())
            }
            JobState::Running => {
                job.cancel_requested = true;
                CancelRequest::Requested(job.clone())
            }
            JobState::Completed | JobState::Failed | JobState::Cancelled => {
                CancelRequest::AlreadyTerminal(job.clone())
            }
        }))
    }

    async fn recover_abandoned(
        &self,
        me: &WorkerId,
        max_attempts: u32,
        now: Millis,
    ) -> StoreResult<Recovery> {
        let mut state = self.state()?;
        // `now` decides which leases have lapsed; it may be Millis::MAX, so the time written into
        // rows is the real clock.
        let finished_at = now_millis();
        let mut recovery = Recovery::default();
        for stored in state.jobs.values_mut() {
            let job = &mut stored.job;
            let abandoned = job.state == JobState::Running
                && job.worker_id.as_deref() != Some(me.as_str())
                && job.lease_expires_at.is_some_and(|lease| lease <= now);
            if !abandoned {
                continue;
            }
            job.worker_id = None;
            job.lease_expires_at = None;
            if job.cancel_requested {
                job.state = JobState::Cancelled;
                job.error = Some(CANCELLED_BY_RECOVERY.to_owned());
                job.finished_at = Some(finished_at);
                recovery.cancelled.push(job.id);
            } else if job.attempt < max_attempts {
                job.state = JobState::Queued;
                job.attempt += 1;
                job.progress = 0.0;
                job.started_at = None;
                recovery.requeued.push(job.id);
            } else {
                job.state = JobState::Failed;
                job.error = Some(out_of_attempts_message(job.attempt, max_attempts));
                job.finished_at = Some(finished_at);
                recovery.failed.push(job.id);
            }
        }
        Ok(recovery)
    }

    async fn result_turns(&self, id: JobId) -> StoreResult<Option<Vec<TurnRecord>>> {
        let state = self.state()?;
        Ok(state
            .job(id)
            .filter(|stored| stored.job.state == JobState::Completed)
            .map(|stored| stored.turns.clone()))
    }

    async fn count_by_state(&self) -> StoreResult<BTreeMap<JobState, u64>> {
        let state = self.state()?;
        let mut counts: BTreeMap<JobState, u64> =
            JobState::ALL.into_iter().map(|s| (s, 0)).collect();
        for stored in state.jobs.values() {
            *counts.entry(stored.job.state).or_default() += 1;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::conformance_tests!(conformance, async { (MemoryStore::new(), ()) });

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
}
