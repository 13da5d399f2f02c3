//! Following a job to its end: the watch stream first, polling when it breaks; transient errors
//! retried, fatal ones final; a job that stops changing given up on. The follow runs in a task owned
//! by its [`JobHandle`]: dropping the handle (or the last clone of the client) stops it.

use std::time::{Duration, Instant};

use noteflow_proto::v1 as pb;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::call::RetrySink;
use crate::client::Client;
use crate::error::ClientError;
use crate::events::{emit, FollowResult, JobEvent, JobOutcome};
use crate::retry::{classify, describe, effective_code, jittered, ErrorClass};
use crate::status::is_terminal;

/// A job being followed. Read its events with [`next_event`](Self::next_event), or wait for the end
/// with [`finish`](Self::finish). Dropping it stops the follow.
pub struct JobHandle {
    job_id: String,
    events: mpsc::UnboundedReceiver<JobEvent>,
    task: Option<JoinHandle<FollowResult>>,
}

impl JobHandle {
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The next event; `None` once the follow has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<JobEvent> {
        self.events.recv().await
    }

    /// Waits for the follow to end. Events not read yet are discarded.
    pub async fn finish(mut self) -> FollowResult {
        // Awaited in place: if this future is dropped unfinished, `self` drops with it and its
        // `Drop` aborts the task.
        let task = self.task.as_mut().expect("the task is only taken on drop");
        let result = task.await;
        self.task = None;
        match result {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(ClientError::Crashed(format!(
                "the follow task panicked: {e}"
            ))),
            Err(_) => Err(ClientError::Dropped),
        }
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Client {
    /// Follows the job to its end in a background task; events arrive on the returned handle.
    /// Dropping the handle, or the last clone of this client, stops the task.
    pub fn follow(&self, job_id: &str) -> JobHandle {
        spawn(self.detached(), job_id.to_string(), self.dropped_signal())
    }
}

/// `detached` must not count as a live client, or dropping the user's clients could not stop the
/// task.
fn spawn(detached: Client, job_id: String, mut alive: watch::Receiver<()>) -> JobHandle {
    let (events, receiver) = mpsc::unbounded_channel();
    let id = job_id.clone();
    let task = tokio::spawn(async move {
        let deadline = detached.config().follow.overall_deadline;
        let follow = follow(&detached, &id, &events);
        let bounded = async {
            match deadline {
                Some(limit) => tokio::time::timeout(limit, follow)
                    .await
                    .unwrap_or_else(|_| {
                        let error = ClientError::DeadlineExceeded {
                            job_id: id.clone(),
                            deadline: limit,
                        };
                        emit(
                            &events,
                            JobEvent::TimedOut {
                                message: error.to_string(),
                            },
                        );
                        Err(error)
                    }),
                None => follow.await,
            }
        };
        tokio::select! {
            result = bounded => {
                if let Err(error) = &result {
                    if !matches!(error, ClientError::Stalled { .. } | ClientError::DeadlineExceeded { .. }) {
                        emit(&events, JobEvent::GaveUp { error: error.to_string() });
                    }
                }
                result
            }
            // Err once every `Client` clone (and so the sender) is gone.
            _ = alive.changed() => {
                emit(&events, JobEvent::GaveUp { error: ClientError::Dropped.to_string() });
                Err(ClientError::Dropped)
            }
        }
    });
    JobHandle {
        job_id,
        events: receiver,
        task: Some(task),
    }
}

/// What the follower has seen, and the checks on it.
struct Tracker<'a> {
    job_id: &'a str,
    events: &'a mpsc::UnboundedSender<JobEvent>,
    max_unchanged: u32,
    last: Option<(i32, f32)>,
    unchanged: u32,
    unchanged_since: Instant,
    warned: Vec<String>,
    memory_warned: bool,
}

impl<'a> Tracker<'a> {
    fn new(
        job_id: &'a str,
        events: &'a mpsc::UnboundedSender<JobEvent>,
        max_unchanged: u32,
    ) -> Self {
        Self {
            job_id,
            events,
            max_unchanged,
            last: None,
            unchanged: 0,
            unchanged_since: Instant::now(),
            warned: Vec::new(),
            memory_warned: false,
        }
    }

    /// A fresh status: report a change, or count one more unchanged poll.
    fn observe(&mut self, job: &pb::DiarizationJob) -> Result<(), ClientError> {
        let in_memory = job.storage_mode == pb::StorageMode::Memory as i32;
        for warning in &job.warnings {
            if self.warned.contains(warning) || (in_memory && self.memory_warned) {
                continue;
            }
            self.warned.push(warning.clone());
            // A memory-mode server sends its own warning text; it stands for the memory warning.
            self.memory_warned |= in_memory;
            emit(self.events, JobEvent::Warning(warning.clone()));
        }
        if in_memory && !self.memory_warned {
            self.memory_warned = true;
            emit(
                self.events,
                JobEvent::Warning(
                    "the server keeps jobs in memory only: this job will not survive a server restart"
                        .into(),
                ),
            );
        }
        let now = (job.status, job.progress_percent);
        if self.last == Some(now) {
            return self.unchanged();
        }
        self.last = Some(now);
        self.unchanged = 0;
        self.unchanged_since = Instant::now();
        emit(
            self.events,
            JobEvent::Progress {
                status: pb::JobStatus::try_from(job.status).unwrap_or(pb::JobStatus::Unspecified),
                percent: job.progress_percent,
                job: job.clone(),
            },
        );
        Ok(())
    }

    /// One more poll (or silent poll interval of the watch stream) without a change.
    fn unchanged(&mut self) -> Result<(), ClientError> {
        self.unchanged += 1;
        if self.unchanged < self.max_unchanged {
            return Ok(());
        }
        let error = ClientError::Stalled {
            job_id: self.job_id.to_string(),
            unchanged_polls: self.unchanged,
            waited: self.unchanged_since.elapsed(),
        };
        emit(
            self.events,
            JobEvent::TimedOut {
                message: error.to_string(),
            },
        );
        Err(error)
    }
}

enum WatchEnd {
    /// The job reached a terminal state.
    Ended(pb::DiarizationJob),
    /// The stream broke or is not offered: poll instead.
    Broken(String),
}

async fn follow(
    client: &Client,
    job_id: &str,
    events: &mpsc::UnboundedSender<JobEvent>,
) -> FollowResult {
    let config = client.config().follow.clone();
    let mut tracker = Tracker::new(job_id, events, config.max_unchanged_polls.max(1));
    let mut on_retry = |attempt: u32, status: &tonic::Status, wait: Duration| {
        emit(
            events,
            JobEvent::Retrying {
                attempt,
                error: describe(status),
                wait,
            },
        );
    };

    if config.use_watch {
        match watch(client, job_id, &mut tracker, config.poll_interval).await? {
            WatchEnd::Ended(job) => return finish(client, job, events, &mut on_retry).await,
            WatchEnd::Broken(reason) => emit(events, JobEvent::SwitchedToPolling { reason }),
        }
    }
    loop {
        let job = client.status_reporting(job_id, &mut on_retry).await?;
        tracker.observe(&job)?;
        if is_terminal(job.status) {
            return finish(client, job, events, &mut on_retry).await;
        }
        tokio::time::sleep(jittered(config.poll_interval, config.poll_jitter)).await;
    }
}

async fn watch(
    client: &Client,
    job_id: &str,
    tracker: &mut Tracker<'_>,
    interval: Duration,
) -> Result<WatchEnd, ClientError> {
    let mut jobs = client.connection().jobs.clone();
    let call_timeout = client.config().call_timeout;
    let request = pb::WatchDiarizationJobRequest {
        job_id: job_id.to_string(),
    };
    let mut stream =
        match tokio::time::timeout(call_timeout, jobs.watch_diarization_job(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) if job_is_gone_or_refused(&status) => return Err(rejected(status)),
            Ok(Err(status)) => return Ok(WatchEnd::Broken(describe(&status))),
            Err(_) => {
                return Ok(WatchEnd::Broken(format!(
                    "no answer within {call_timeout:?}"
                )))
            }
        };
    loop {
        match tokio::time::timeout(interval, stream.message()).await {
            // The server sends only changes: a silent interval is an unchanged poll.
            Err(_) => tracker.unchanged()?,
            Ok(Ok(Some(job))) => {
                tracker.observe(&job)?;
                if is_terminal(job.status) {
                    return Ok(WatchEnd::Ended(job));
                }
            }
            Ok(Ok(None)) => {
                return Ok(WatchEnd::Broken(
                    "the stream ended before the job did".into(),
                ))
            }
            Ok(Err(status)) if job_is_gone_or_refused(&status) => return Err(rejected(status)),
            Ok(Err(status)) => return Ok(WatchEnd::Broken(describe(&status))),
        }
    }
}

/// Stream errors that end the follow: the fatal ones by [`classify`], except UNIMPLEMENTED (a
/// server without the stream, which polling can still follow). Transient ones only break the stream.
fn job_is_gone_or_refused(status: &tonic::Status) -> bool {
    let code = effective_code(status);
    classify(code) == ErrorClass::Fatal && code != tonic::Code::Unimplemented
}

fn rejected(status: tonic::Status) -> ClientError {
    ClientError::Rejected {
        what: "WatchDiarizationJob".into(),
        code: status.code(),
        message: status.message().to_string(),
    }
}

async fn finish(
    client: &Client,
    job: pb::DiarizationJob,
    events: &mpsc::UnboundedSender<JobEvent>,
    on_retry: RetrySink<'_>,
) -> FollowResult {
    match pb::JobStatus::try_from(job.status) {
        Ok(pb::JobStatus::Completed) => {
            let result = client.result_reporting(&job.job_id, on_retry).await?;
            emit(events, JobEvent::Completed(Box::new(result.clone())));
            Ok(JobOutcome::Completed { job, result })
        }
        Ok(pb::JobStatus::Cancelled) => {
            emit(events, JobEvent::Cancelled);
            Ok(JobOutcome::Cancelled { job })
        }
        _ => {
            emit(
                events,
                JobEvent::Failed {
                    message: job.error_message.clone(),
                },
            );
            Ok(JobOutcome::Failed { job })
        }
    }
}
