//! The job runner: claims QUEUED jobs (at most `concurrency` at once), runs the diarizer on a blocking
//! thread, heartbeats progress and lease while it runs, enforces the per-job timeout, and ends the run
//! with one guarded write. Cancels arrive two ways: in process through [`Runner::signal_cancel`] (the
//! engine's cancel flag, immediate) and from the store's cancel flag, seen on the next heartbeat (for a
//! cancel made through another process).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use noteflow_diarize::{Diarization, SpeakerConstraints};
use noteflow_store::{
    Claim, Heartbeat, Job, JobId, JobResult, JobStore, Outcome, Segment, TurnRecord, WorkerId,
};
use tokio::sync::{watch, Notify, Semaphore};

use crate::config::RunnerConfig;
use crate::diarizer::{RunError, SpeakerDiarizer};
use crate::events::JobEvents;
use crate::metrics::Metrics;

/// Why a running job's cancel flag was raised; decides how the run is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum StopReason {
    None = 0,
    /// A client cancelled it: CANCELLED.
    Cancelled = 1,
    /// It ran past its time limit: FAILED.
    TimedOut = 2,
    /// The claim was lost (job recovered, deleted): write nothing.
    ClaimLost = 3,
    /// The server is shutting down: leave it RUNNING; the next start re-queues it.
    Shutdown = 4,
}

/// The cancel flag handed to the engine, with the reason it was raised (first reason wins).
struct RunControl {
    cancel: AtomicBool,
    reason: AtomicU8,
}

impl RunControl {
    fn new() -> Self {
        Self {
            cancel: AtomicBool::new(false),
            reason: AtomicU8::new(StopReason::None as u8),
        }
    }

    fn stop(&self, reason: StopReason) {
        let _ = self.reason.compare_exchange(
            StopReason::None as u8,
            reason as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
        self.cancel.store(true, Ordering::SeqCst);
    }

    fn reason(&self) -> StopReason {
        match self.reason.load(Ordering::SeqCst) {
            1 => StopReason::Cancelled,
            2 => StopReason::TimedOut,
            3 => StopReason::ClaimLost,
            4 => StopReason::Shutdown,
            _ => StopReason::None,
        }
    }
}

pub struct Runner {
    store: Arc<dyn JobStore>,
    diarizer: Arc<dyn SpeakerDiarizer>,
    worker: WorkerId,
    config: RunnerConfig,
    events: JobEvents,
    metrics: Arc<Metrics>,
    wake: Notify,
    running: Mutex<HashMap<JobId, Arc<RunControl>>>,
    slots: Arc<Semaphore>,
}

impl Runner {
    pub fn new(
        store: Arc<dyn JobStore>,
        diarizer: Arc<dyn SpeakerDiarizer>,
        worker: WorkerId,
        config: RunnerConfig,
        events: JobEvents,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Arc::new(Self {
            store,
            diarizer,
            worker,
            config,
            events,
            metrics,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            slots,
        })
    }

    pub fn worker(&self) -> &WorkerId {
        &self.worker
    }

    /// A job was queued: look at the queue now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Raises the cancel flag of `job` if it runs in this process. Returns whether it does.
    pub fn signal_cancel(&self, job: JobId) -> bool {
        match self.running.lock().unwrap().get(&job) {
            Some(control) => {
                control.stop(StopReason::Cancelled);
                true
            }
            None => false,
        }
    }

    pub fn running_here(&self) -> usize {
        self.running.lock().unwrap().len()
    }

    /// Claims and runs jobs until `shutdown` is set; then asks running jobs to stop and waits for
    /// them up to `grace`. Jobs that stop for the shutdown stay RUNNING in the store, and the next
    /// start re-queues them (attempt + 1), exactly as after a crash.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            match self.store.claim_next(&self.worker, self.config.lease).await {
                Ok(Some((job, claim))) => {
                    let this = self.clone();
                    tasks.spawn(async move {
                        this.run_job(job, claim).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = shutdown.wait_for(|stop| *stop) => break,
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "cannot claim a job; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = shutdown.wait_for(|stop| *stop) => break,
                    }
                }
            }
            // Reap finished tasks so the set does not grow.
            while tasks.try_join_next().is_some() {}
        }
        let controls: Vec<_> = self.running.lock().unwrap().values().cloned().collect();
        for control in controls {
            control.stop(StopReason::Shutdown);
        }
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!("running jobs did not stop within the shutdown grace period");
        }
    }

    async fn run_job(&self, job: Job, claim: Claim) {
        let started = Instant::now();
        let control = Arc::new(RunControl::new());
        self.running.lock().unwrap().insert(job.id, control.clone());
        if job.cancel_requested {
            control.stop(StopReason::Cancelled);
        }
        self.events.changed(job.id);
        tracing::info!(job = %job.id, meeting = %job.meeting_id, attempt = job.attempt, "job started");

        let outcome = self.execute(&job, &claim, &control).await;

        self.running.lock().unwrap().remove(&job.id);
        let label = match &outcome {
            None => "interrupted",
            Some(Outcome::Completed(_)) => "completed",
            Some(Outcome::Failed(_)) => "failed",
            Some(Outcome::Cancelled) => "cancelled",
        };
        if let Some(outcome) = outcome {
            if let Outcome::Failed(message) = &outcome {
                tracing::warn!(job = %job.id, error = %message, "job failed");
            }
            match self.store.finish(&claim, outcome).await {
                Ok(true) => {
                    tracing::info!(job = %job.id, outcome = label, seconds = started.elapsed().as_secs_f64(), "job finished")
                }
                Ok(false) => {
                    self.metrics.stale_write();
                    tracing::warn!(job = %job.id, "job's claim was lost before its end was written; nothing written");
                }
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "cannot record the end of the job; it stays RUNNING until the next start re-queues it")
                }
            }
        }
        self.metrics
            .job_finished(label, started.elapsed().as_secs_f64());
        self.events.changed(job.id);
    }

    /// Runs the job; `None` when nothing must be written (claim lost or shutting down).
    async fn execute(
        &self,
        job: &Job,
        claim: &Claim,
        control: &Arc<RunControl>,
    ) -> Option<Outcome> {
        let audio = match self.store.get_audio(job.meeting_id).await {
            Ok(Some(audio)) => audio,
            Ok(None) => return Some(Outcome::Failed("the meeting's audio is gone".into())),
            Err(e) => {
                return Some(Outcome::Failed(format!(
                    "cannot read the meeting's audio: {e}"
                )))
            }
        };
        let constraints = match SpeakerConstraints::bounds(
            job.min_speakers.map(|n| n as usize),
            job.max_speakers.map(|n| n as usize),
        ) {
            Ok(c) => c,
            Err(e) => return Some(Outcome::Failed(format!("invalid speaker constraints: {e}"))),
        };
        let job_audio_seconds = audio.duration_secs;
        let timeout = self.config.timeout_for(job_audio_seconds);

        let (progress_tx, progress_rx) = watch::channel(0f32);
        let diarizer = self.diarizer.clone();
        let engine_control = control.clone();
        let mut work = tokio::task::spawn_blocking(move || {
            let decoded = noteflow_diarize::decode_bytes(audio.bytes, audio.format_hint.as_deref())
                .map_err(|e| {
                    RunError::Failed(format!("the stored audio cannot be decoded: {e}"))
                })?;
            let mut report = |fraction: f32| {
                progress_tx.send_replace(fraction.clamp(0.0, 1.0));
            };
            diarizer.diarize(&decoded, constraints, &mut report, &engine_control.cancel)
        });

        let deadline = tokio::time::Instant::now() + timeout;
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_written = 0f32;
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = tokio::time::sleep_until(deadline), if control.reason() == StopReason::None => {
                    tracing::warn!(job = %job.id, ?timeout, "job ran past its time limit; stopping it");
                    control.stop(StopReason::TimedOut);
                }
                _ = heartbeat.tick() => {
                    let progress = *progress_rx.borrow();
                    match self.store.heartbeat(claim, Some(progress), self.config.lease).await {
                        Ok(Heartbeat::Continue) => {}
                        Ok(Heartbeat::CancelRequested) => control.stop(StopReason::Cancelled),
                        Ok(Heartbeat::Lost) => {
                            self.metrics.stale_write();
                            control.stop(StopReason::ClaimLost);
                        }
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "heartbeat failed"),
                    }
                    if progress != last_written {
                        last_written = progress;
                        self.events.changed(job.id);
                    }
                }
            }
        };

        let audio_seconds = job_audio_seconds;
        match (control.reason(), result) {
            (StopReason::ClaimLost, _) => None,
            // A result that arrived is kept, whatever was asked meanwhile.
            (_, Ok(Ok(diarization))) => Some(self.completed(job, diarization).await),
            (StopReason::Shutdown, Ok(Err(RunError::Cancelled))) => None,
            (StopReason::TimedOut, Ok(Err(RunError::Cancelled))) => Some(Outcome::Failed(format!(
                "timed out after {} s (the limit for {audio_seconds:.0} s of audio: {} s + {} s per audio second)",
                timeout.as_secs(),
                self.config.timeout_base.as_secs(),
                self.config.timeout_per_audio_second
            ))),
            (_, Ok(Err(RunError::Cancelled))) => Some(Outcome::Cancelled),
            (_, Ok(Err(RunError::Failed(message)))) => Some(Outcome::Failed(message)),
            (_, Err(join_error)) => Some(Outcome::Failed(format!(
                "internal error: the diarizer crashed ({join_error})"
            ))),
        }
    }

    /// The COMPLETED outcome: the turns, and each transcript segment relabelled with the speaker who
    /// overlaps it most.
    async fn completed(&self, job: &Job, diarization: Diarization) -> Outcome {
        let segments = match self.store.get_meeting(job.meeting_id).await {
            Ok(Some(meeting)) => meeting.segments,
            Ok(None) => Vec::new(),
            Err(e) => return Outcome::Failed(format!("cannot read the meeting's segments: {e}")),
        };
        let turns: Vec<TurnRecord> = diarization
            .turns
            .iter()
            .map(|t| TurnRecord {
                start: t.start,
                end: t.end,
                speaker: t.speaker.clone(),
            })
            .collect();
        let segment_speakers = relabel_segments(&segments, &turns);
        Outcome::Completed(JobResult {
            turns,
            speakers: diarization.speakers,
            segment_speakers,
        })
    }
}

/// For each segment, the speaker whose turns overlap it longest (ties: the speaker first in `turns`);
/// segments no turn overlaps are left out, keeping their label.
pub fn relabel_segments(segments: &[Segment], turns: &[TurnRecord]) -> Vec<(u32, String)> {
    segments
        .iter()
        .filter_map(|segment| {
            let mut overlap: Vec<(&str, f64)> = Vec::new();
            for turn in turns {
                let shared = turn.end.min(segment.end) - turn.start.max(segment.start);
                if shared > 0.0 {
                    match overlap.iter_mut().find(|(s, _)| *s == turn.speaker) {
                        Some((_, total)) => *total += shared,
                        None => overlap.push((&turn.speaker, shared)),
                    }
                }
            }
            overlap
                .into_iter()
                .fold(None::<(&str, f64)>, |best, (s, t)| match best {
                    Some((_, b)) if b >= t => best,
                    _ => Some((s, t)),
                })
                .map(|(speaker, _)| (segment.index, speaker.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(index: u32, start: f64, end: f64) -> Segment {
        Segment {
            index,
            start,
            end,
            text: String::new(),
            speaker: None,
        }
    }

    fn turn(start: f64, end: f64, speaker: &str) -> TurnRecord {
        TurnRecord {
            start,
            end,
            speaker: speaker.into(),
        }
    }

    #[test]
    fn segments_take_the_speaker_with_the_longest_overlap() {
        let turns = [
            turn(0.0, 4.0, "A"),
            turn(3.0, 10.0, "B"),
            turn(10.5, 11.0, "A"),
            turn(11.0, 12.0, "B"),
        ];
        let segments = [
            segment(0, 0.0, 3.5),   // A 3.5, B 0.5
            segment(1, 3.5, 9.0),   // A 0.5, B 5.5
            segment(2, 20.0, 21.0), // nobody
            segment(3, 10.0, 12.0), // A 0.5, B 1.0 (B's two turns summed)
        ];
        assert_eq!(
            relabel_segments(&segments, &turns),
            vec![(0, "A".into()), (1, "B".into()), (3, "B".into())]
        );
    }

    #[test]
    fn ties_go_to_the_speaker_heard_first() {
        let turns = [turn(0.0, 1.0, "A"), turn(1.0, 2.0, "B")];
        assert_eq!(
            relabel_segments(&[segment(7, 0.0, 2.0)], &turns),
            vec![(7, "A".into())]
        );
    }

    #[test]
    fn the_first_stop_reason_wins() {
        let control = RunControl::new();
        assert_eq!(control.reason(), StopReason::None);
        control.stop(StopReason::TimedOut);
        control.stop(StopReason::Cancelled);
        assert_eq!(control.reason(), StopReason::TimedOut);
        assert!(control.cancel.load(Ordering::SeqCst));
    }
}
