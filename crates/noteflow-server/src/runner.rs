//! The job runner: claims QUEUED jobs (at most `concurrency` at once), runs the diarizer on a blocking
//! thread, heartbeats progress and lease while it runs, enforces the per-job timeout, and ends the run
//! with one guarded write. Cancels arrive two ways: in process through [`Runner::signal_cancel`] (the
//! engine's cancel flag, immediate) and from the store's cancel flag, seen on the next heartbeat (for a
//! cancel made through another process).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use noteflow_diarize::{panic_message, Diarization, SpeakerConstraints};
use noteflow_store::{
    Claim, Heartbeat, Job, JobId, JobResult, JobStore, Outcome, Segment, StoreResult, TurnRecord,
    WorkerId,
};
use std::panic::AssertUnwindSafe;
use tokio::sync::{watch, Notify, Semaphore};
use tracing::Instrument;

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

    /// Stops this process's run of `job` without writing anything (its meeting was deleted).
    pub fn abandon(&self, job: JobId) {
        if let Some(control) = self.running.lock().unwrap().get(&job) {
            control.stop(StopReason::ClaimLost);
        }
    }

    /// Claims and runs jobs until `shutdown` is set; then asks running jobs to stop and waits for
    /// them up to `grace`. A job stopped by the shutdown is given back to the queue with the same
    /// attempt (a graceful stop is not a failure of the job); one still running when the grace
    /// period ends stays RUNNING, and the next start re-queues it with attempt + 1, as after a crash.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            // `biased`: once shutdown is signalled, no further job is claimed.
            let permit = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                permit = self.slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            match self.store.claim_next(&self.worker, self.config.lease).await {
                Ok(Some((job, claim))) => {
                    // Registered before the task starts, so a shutdown that follows sees it.
                    let control = Arc::new(RunControl::new());
                    self.running.lock().unwrap().insert(job.id, control.clone());
                    if *shutdown.borrow() {
                        control.stop(StopReason::Shutdown);
                    }
                    // Every log line of the run, the engine's included, names the job through this.
                    let span = tracing::info_span!(
                        "job",
                        job = %job.id,
                        attempt = job.attempt,
                        worker = %self.worker
                    );
                    let this = self.clone();
                    tasks.spawn(
                        async move {
                            this.run_job(job, claim, control).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|stop| *stop) => break,
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "cannot claim a job; retrying");
                    tokio::select! {
                        biased;
                        _ = shutdown.wait_for(|stop| *stop) => break,
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
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
            tracing::warn!("running jobs did not stop within the shutdown grace period; the next start re-queues them");
        }
    }

    async fn run_job(&self, job: Job, claim: Claim, control: Arc<RunControl>) {
        let started = Instant::now();
        if job.cancel_requested {
            control.stop(StopReason::Cancelled);
        }
        self.events.changed(job.id);
        tracing::info!(meeting = %job.meeting_id, "job started");

        // A panic here must not leave the job RUNNING under a live worker: it becomes a failure.
        let ending = AssertUnwindSafe(self.execute(&job, &claim, &control))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Ending::Write(Outcome::Failed(format!(
                    "internal error while running the job: {}",
                    panic_message(&*panic)
                )))
            });

        self.running.lock().unwrap().remove(&job.id);
        let label = ending.label();
        match ending {
            // The run still ends with a line, so every "job started" line has its end.
            Ending::Nothing => tracing::info!(
                outcome = label,
                seconds = started.elapsed().as_secs_f64(),
                "job run abandoned: its claim is gone (its meeting was deleted, or another process recovered it); nothing written"
            ),
            Ending::Release => match retry_busy(|| self.store.release(&claim)).await {
                Ok(true) => tracing::info!("job given back to the queue for the next start"),
                Ok(false) => self.metrics.stale_write(),
                Err(e) => {
                    tracing::error!(error = %e, "cannot give the job back; the next start re-queues it")
                }
            },
            Ending::Write(outcome) => self.record(&claim, outcome, started).await,
        }
        self.metrics
            .job_finished(label, started.elapsed().as_secs_f64());
        self.events.changed(job.id);
    }

    /// Writes how the run ended, retrying while the database is busy. If the result itself cannot be
    /// written, the job is at least marked FAILED, so it does not stay RUNNING under a live worker.
    async fn record(&self, claim: &Claim, outcome: Outcome, started: Instant) {
        if let Outcome::Failed(message) = &outcome {
            tracing::warn!(error = %message, "job failed");
        }
        let label = outcome_label(&outcome);
        let written = match retry_busy(|| self.store.finish(claim, outcome.clone())).await {
            Err(e) if matches!(outcome, Outcome::Completed(_)) => {
                tracing::error!(error = %e, "cannot record the result; marking the job FAILED");
                let failed = Outcome::Failed(format!("the result could not be recorded: {e}"));
                retry_busy(|| self.store.finish(claim, failed.clone())).await
            }
            other => other,
        };
        match written {
            Ok(true) => {
                tracing::info!(
                    outcome = label,
                    seconds = started.elapsed().as_secs_f64(),
                    "job finished"
                )
            }
            Ok(false) => {
                self.metrics.stale_write();
                tracing::warn!(
                    "the job's claim was lost before its end was written; nothing written"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record the end of the job; it stays RUNNING until the next start re-queues it")
            }
        }
    }

    /// Runs the job and says what to write.
    async fn execute(&self, job: &Job, claim: &Claim, control: &Arc<RunControl>) -> Ending {
        let audio = match retry_busy(|| self.store.get_audio(job.meeting_id)).await {
            Ok(Some(audio)) => audio,
            Ok(None) => {
                return Ending::Write(Outcome::Failed("the meeting's audio is gone".into()))
            }
            Err(e) => {
                return Ending::Write(Outcome::Failed(format!(
                    "cannot read the meeting's audio: {e}"
                )))
            }
        };
        let constraints = match SpeakerConstraints::bounds(
            job.min_speakers.map(|n| n as usize),
            job.max_speakers.map(|n| n as usize),
        ) {
            Ok(c) => c,
            Err(e) => {
                return Ending::Write(Outcome::Failed(format!("invalid speaker constraints: {e}")))
            }
        };
        let audio_seconds = audio.duration_secs;
        let timeout = self.config.timeout_for(audio_seconds);

        let (progress_tx, progress_rx) = watch::channel(0f32);
        let diarizer = self.diarizer.clone();
        let engine_control = control.clone();
        // A blocking thread does not inherit the task's span; the engine's log lines need it.
        let span = tracing::Span::current();
        let mut work = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            if engine_control.cancel.load(Ordering::SeqCst) {
                return Err(RunError::Cancelled);
            }
            let decoded = noteflow_diarize::decode_bytes(audio.bytes, audio.format_hint.as_deref())
                .map_err(|e| {
                    RunError::Failed(format!("the stored audio cannot be decoded: {e}"))
                })?;
            let mut report = |fraction: f32| {
                progress_tx.send_replace(fraction.clamp(0.0, 1.0));
            };
            diarizer.diarize(&decoded, constraints, &mut report, &engine_control.cancel)
        });

        // A limit too large to represent never fires.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        let mut heartbeat = tokio::time::interval(self.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_written = 0f32;
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = sleep_until(deadline), if control.reason() == StopReason::None => {
                    tracing::warn!(?timeout, "job ran past its time limit; stopping it");
                    control.stop(StopReason::TimedOut);
                }
                _ = heartbeat.tick(), if control.reason() != StopReason::ClaimLost => {
                    let progress = *progress_rx.borrow();
                    match self.store.heartbeat(claim, Some(progress), self.config.lease).await {
                        Ok(Heartbeat::Continue) => {}
                        Ok(Heartbeat::CancelRequested) => control.stop(StopReason::Cancelled),
                        Ok(Heartbeat::Lost) => {
                            tracing::warn!("the job's claim is gone (recovered elsewhere, or deleted); stopping");
                            control.stop(StopReason::ClaimLost);
                        }
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                    }
                    if progress != last_written {
                        last_written = progress;
                        self.events.changed(job.id);
                    }
                }
            }
        };

        match (control.reason(), result) {
            (StopReason::ClaimLost, _) => Ending::Nothing,
            // A result that arrived is kept, whatever was asked meanwhile.
            (_, Ok(Ok(diarization))) => Ending::Write(self.completed(job, diarization).await),
            (StopReason::Shutdown, Ok(Err(RunError::Cancelled))) => Ending::Release,
            (StopReason::TimedOut, Ok(Err(RunError::Cancelled))) => Ending::Write(Outcome::Failed(format!(
                "timed out after {:.1} s (the limit for {audio_seconds:.0} s of audio: {} s + {} s per audio second)",
                timeout.as_secs_f64(),
                self.config.timeout_base.as_secs_f64(),
                self.config.timeout_per_audio_second
            ))),
            (_, Ok(Err(RunError::Cancelled))) => Ending::Write(Outcome::Cancelled),
            (_, Ok(Err(RunError::Failed(message)))) => Ending::Write(Outcome::Failed(message)),
            (_, Err(join_error)) => Ending::Write(Outcome::Failed(format!(
                "internal error: the diarizer crashed ({join_error})"
            ))),
        }
    }

    /// The COMPLETED outcome: the turns, and each transcript segment relabelled with the speaker who
    /// overlaps it most.
    async fn completed(&self, job: &Job, diarization: Diarization) -> Outcome {
        let segments = match retry_busy(|| self.store.get_meeting(job.meeting_id)).await {
            Ok(Some(meeting)) => meeting.segments,
            Ok(None) => Vec::new(),
            Err(e) => return Outcome::Failed(format!("cannot read the meeting's segments: {e}")),
        };
        let turns: Vec<TurnRecord> = diarization
            .turns
            .iter()
            .filter(|t| t.start.is_finite() && t.end.is_finite())
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

/// What to write when a run ends.
enum Ending {
    Write(Outcome),
    /// Give the job back to the queue, same attempt (stopped by a graceful shutdown).
    Release,
    /// Write nothing: the claim is gone.
    Nothing,
}

impl Ending {
    fn label(&self) -> &'static str {
        match self {
            Ending::Write(outcome) => outcome_label(outcome),
            Ending::Release => "released",
            Ending::Nothing => "abandoned",
        }
    }
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Completed(_) => "completed",
        Outcome::Failed(_) => "failed",
        Outcome::Cancelled => "cancelled",
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Runs a store call again while it fails only for a reason that may pass (a busy or unreachable
/// database; a few times, with backoff), so a moment of contention does not fail a job.
async fn retry_busy<T, F, Fut>(mut call: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..5 {
        match call().await {
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    call().await
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
