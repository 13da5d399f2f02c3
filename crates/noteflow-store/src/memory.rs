//! [`MemoryStore`]: the whole state in process memory, behind one mutex.
//!
//! The simplest form of [`JobStore`]'s contract: what it decides comes from
//! [`contract`](crate::contract), like every store's, and the [`conformance`](crate::conformance)
//! suite checks that all stores behave alike. It is also a real storage mode for deployments that
//! accept losing everything on restart.
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

use crate::contract::{
    check_inputs_replaceable, check_queue_room, check_startable, claim_holds, claim_of, ending,
    heartbeat_answer, indexed_segments, into_meeting_page, into_page, is_abandoned, is_after,
    lease_deadline, reuse_request_id, rows_to_fetch, usable_progress, zero_counts, CancelAction,
    Completion, Ending, RecoveryAction, CANCELLED_BEFORE_START, CANCELLED_WHILE_RUNNING,
};
use crate::{
    now_millis, AudioInfo, CancelRequest, Claim, Created, Heartbeat, Job, JobFilter, JobId,
    JobPage, JobResult, JobState, JobStore, Meeting, MeetingCursor, MeetingId, MeetingPage, Millis,
    NewJob, Outcome, Recovery, Segment, SegmentInput, StorageMode, StoreError, StoreResult,
    StoredAudio, TurnRecord, WorkerId,
};

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
        self.job_mut(claim.job_id)
            .filter(|stored| claim_holds(claim, &stored.job))
    }

    fn active_job(&self, meeting_id: MeetingId) -> Option<&Job> {
        self.jobs
            .values()
            .map(|stored| &stored.job)
            .find(|job| job.meeting_id == meeting_id && job.state.is_active())
    }

    /// The meeting, to replace its audio or segments, if the contract allows it.
    fn replace_inputs(&mut self, id: MeetingId) -> StoreResult<&mut StoredMeeting> {
        let has_active_job = self.active_job(id).is_some();
        check_inputs_replaceable(id, self.meetings.contains_key(&id), has_active_job)?;
        self.meetings
            .get_mut(&id)
            .ok_or(StoreError::MeetingNotFound(id))
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

    async fn list_meetings(
        &self,
        limit: u32,
        after: Option<MeetingCursor>,
    ) -> StoreResult<MeetingPage> {
        let state = self.state()?;
        let mut meetings: Vec<Meeting> = state
            .meetings
            .iter()
            .map(|(id, meeting)| Meeting {
                segments: Vec::new(),
                ..meeting_view(*id, meeting)
            })
            .filter(|meeting| is_after(meeting, after))
            .collect();
        meetings.sort_by(|a, b| (b.created_at, b.id).cmp(&(a.created_at, a.id)));
        meetings.truncate(usize::try_from(rows_to_fetch(limit)).unwrap_or(usize::MAX));
        Ok(into_meeting_page(meetings, limit))
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
        self.state()?.replace_inputs(id)?.audio = Some(audio);
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
        let segments = indexed_segments(segments)?;
        let count = segments.len() as u32;
        self.state()?.replace_inputs(id)?.segments = segments;
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
                return reuse_request_id(&new, stored.job.clone());
            }
        }

        let meeting = state.meetings.get(&new.meeting_id);
        check_startable(
            new.meeting_id,
            meeting.is_some(),
            meeting.is_some_and(|m| m.audio.is_some()),
        )?;

        if let Some(active) = state.active_job(new.meeting_id) {
            return Ok(Created::Existing(active.clone()));
        }

        check_queue_room(state.count(JobState::Queued), max_queued)?;

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
        let fetch = usize::try_from(rows_to_fetch(limit)).unwrap_or(usize::MAX);
        let jobs: Vec<Job> = state
            .jobs
            .range(..upper)
            .rev()
            .map(|(_, stored)| &stored.job)
            .filter(|job| filter.meeting_id.is_none_or(|id| job.meeting_id == id))
            .filter(|job| filter.state.is_none_or(|s| job.state == s))
            .take(fetch)
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
        let claim = claim_of(job, worker.clone());
        Ok(Some((job.clone(), claim)))
    }

    async fn heartbeat(
        &self,
        claim: &Claim,
        progress: Option<f32>,
        lease: Duration,
    ) -> StoreResult<Heartbeat> {
        let mut state = self.state()?;
        let cancel_requested = state.claimed_mut(claim).map(|stored| {
            let job = &mut stored.job;
            job.lease_expires_at = Some(lease_deadline(now_millis(), lease));
            if let Some(progress) = usable_progress(progress) {
                job.progress = job.progress.max(progress);
            }
            job.cancel_requested
        });
        Ok(heartbeat_answer(cancel_requested))
    }

    async fn finish(&self, claim: &Claim, outcome: Outcome) -> StoreResult<bool> {
        let Ending {
            state: new_state,
            progress,
            error,
            completion,
        } = ending(outcome)?;
        let mut state = self.state()?;
        let Some(stored) = state.claimed_mut(claim) else {
            return Ok(false);
        };
        let job = &mut stored.job;
        job.state = new_state;
        job.progress = progress.unwrap_or(job.progress);
        job.error = error.or(job.error.take());
        job.finished_at = Some(now_millis());
        job.worker_id = None;
        job.lease_expires_at = None;
        let Some(Completion {
            result:
                JobResult {
                    turns,
                    speakers,
                    segment_speakers,
                },
            segments_updated,
        }) = completion
        else {
            return Ok(true);
        };
        job.speakers = speakers;
        job.segments_updated = segments_updated;
        stored.turns = turns;
        let meeting_id = stored.job.meeting_id;
        // A job's meeting exists while the job does: deleting the meeting deletes its jobs.
        if let Some(meeting) = state.meetings.get_mut(&meeting_id) {
            for (index, speaker) in segment_speakers {
                // Indices past the end are ignored, as an UPDATE matching no row would be.
                if let Some(segment) = meeting.segments.get_mut(index as usize) {
                    segment.speaker = Some(speaker);
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
        Ok(Some(match CancelAction::for_state(job.state) {
            CancelAction::CancelQueued => {
                job.state = JobState::Cancelled;
                job.finished_at = Some(now_millis());
                job.error = Some(CANCELLED_BEFORE_START.to_owned());
                CancelRequest::CancelledQueued(job.clone())
            }
            CancelAction::RequestCancel => {
                job.cancel_requested = true;
                CancelRequest::Requested(job.clone())
            }
            CancelAction::AlreadyTerminal => CancelRequest::AlreadyTerminal(job.clone()),
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
            if !is_abandoned(job, me, now) {
                continue;
            }
            let action = RecoveryAction::decide(job.cancel_requested, job.attempt, max_attempts);
            job.worker_id = None;
            job.lease_expires_at = None;
            match action.terminal() {
                Some((state, error)) => {
                    job.state = state;
                    job.error = Some(error.to_owned());
                    job.finished_at = Some(finished_at);
                }
                None => {
                    job.state = JobState::Queued;
                    job.attempt += 1;
                    job.progress = 0.0;
                    job.started_at = None;
                }
            }
            action.record(job.id, &mut recovery);
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
        let mut counts = zero_counts();
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
}
