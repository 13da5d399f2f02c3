//! [`Client`]: calls with per-call deadlines and retries of transient errors; starting, following
//! and cancelling jobs.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use noteflow_proto::v1 as pb;
use noteflow_proto::v1::diarization_service_client::DiarizationServiceClient;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use tokio::sync::{mpsc, watch};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::events::{JobEvent, JobOutcome};
use crate::follow::{self, JobHandle};
use crate::retry::{classify, effective_code, retry_hint, ErrorClass};

/// How many speakers to ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpeakerRequest {
    pub exactly: Option<u32>,
    pub min: Option<u32>,
    pub max: Option<u32>,
}

/// A started job, as the server reported it.
#[derive(Debug, Clone)]
pub struct StartedJob {
    pub job_id: String,
    /// The idempotency key sent (and re-sent on every retry).
    pub request_id: String,
    /// False when the server returned an existing job (a retried start, or the meeting's active job).
    pub created: bool,
    pub job: pb::DiarizationJob,
    pub warnings: Vec<String>,
}

/// The confirmed end of a cancel: the state the job really reached.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    Cancelled(pb::DiarizationJob),
    /// The job ended another way first (e.g. COMPLETED while the cancel was on its way).
    AlreadyEnded(pb::DiarizationJob),
}

impl CancelOutcome {
    pub fn job(&self) -> &pb::DiarizationJob {
        match self {
            CancelOutcome::Cancelled(job) | CancelOutcome::AlreadyEnded(job) => job,
        }
    }
}

/// Calls report their retries here (followed jobs turn them into [`JobEvent::Retrying`]).
pub(crate) type RetrySink<'a> = &'a mut (dyn FnMut(u32, &Status, Duration) + Send);

/// The state every clone of a [`Client`] and every follow task share. When the last `Client` is
/// dropped, `alive` is dropped and every task following a job for it stops.
pub(crate) struct Shared {
    pub meetings: MeetingServiceClient<Channel>,
    pub jobs: DiarizationServiceClient<Channel>,
    pub config: ClientConfig,
}

#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    alive: Arc<watch::Sender<()>>,
}

pub(crate) fn is_terminal(status: i32) -> bool {
    [
        pb::JobStatus::Completed,
        pb::JobStatus::Failed,
        pb::JobStatus::Cancelled,
    ]
    .iter()
    .any(|s| *s as i32 == status)
}

pub(crate) fn status_name(status: i32) -> String {
    pb::JobStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("JOB_STATUS_")
                .to_string()
        })
        .unwrap_or_else(|_| format!("status {status}"))
}

impl Client {
    /// A client of the server at `address` (e.g. `http://127.0.0.1:50051`). Connects lazily: an
    /// unreachable server shows up as retried UNAVAILABLE calls, not here.
    ///
    /// Must be called within a Tokio runtime (the connection is driven by a task of it), as must
    /// [`follow`](Self::follow).
    pub fn new(address: &str, config: ClientConfig) -> Result<Self, ClientError> {
        if config.follow.poll_interval.is_zero() || config.call_timeout.is_zero() {
            return Err(ClientError::BadConfig(
                "poll_interval and call_timeout must be greater than zero".into(),
            ));
        }
        let bad = |reason: String| ClientError::BadAddress {
            address: address.to_string(),
            reason,
        };
        let endpoint = Endpoint::from_shared(address.to_string())
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(config.connect_timeout)
            .http2_keep_alive_interval(config.keepalive_interval)
            .keep_alive_timeout(config.keepalive_timeout)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        if endpoint.uri().host().is_none() {
            return Err(bad("no host (expected e.g. http://127.0.0.1:50051)".into()));
        }
        let channel = endpoint.connect_lazy();
        Ok(Self {
            shared: Arc::new(Shared {
                meetings: MeetingServiceClient::new(channel.clone()),
                jobs: DiarizationServiceClient::new(channel),
                config,
            }),
            alive: Arc::new(watch::channel(()).0),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }

    /// Creates a meeting and uploads the file as its audio; returns the meeting id.
    pub async fn upload_file(
        &self,
        path: &Path,
    ) -> Result<(String, pb::UploadAudioResponse), ClientError> {
        let bytes = std::fs::read(path).map_err(|e| ClientError::Io {
            what: path.display().to_string(),
            message: e.to_string(),
        })?;
        let title = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let hint = path
            .extension()
            .map_or_else(String::new, |e| e.to_string_lossy().into_owned());
        let meeting = self.create_meeting(&title).await?;
        let uploaded = self.upload_audio(&meeting, bytes, &hint).await?;
        Ok((meeting, uploaded))
    }

    pub async fn create_meeting(&self, title: &str) -> Result<String, ClientError> {
        let request = pb::CreateMeetingRequest {
            title: title.to_string(),
        };
        let meeting = self
            .call("CreateMeeting", None, &mut |_, _, _| {}, |mut c| {
                let request = request.clone();
                async move {
                    let r = c.request(request);
                    c.meetings.create_meeting(r).await
                }
            })
            .await?;
        Ok(meeting.id)
    }

    /// Uploads `bytes` as the meeting's audio; a retry sends the whole stream again (the server
    /// stores an upload only once it is complete).
    pub async fn upload_audio(
        &self,
        meeting_id: &str,
        bytes: Vec<u8>,
        format_hint: &str,
    ) -> Result<pb::UploadAudioResponse, ClientError> {
        let chunk = self.shared.config.upload_chunk_bytes.max(1);
        // Big files need longer than one call's deadline: one more second per MB.
        let timeout =
            self.shared.config.call_timeout + Duration::from_secs(bytes.len() as u64 / 1_000_000);
        let bytes = Arc::new(bytes);
        self.call_within(timeout, "UploadAudio", None, &mut |_, _, _| {}, |mut c| {
            let bytes = bytes.clone();
            let (meeting_id, hint) = (meeting_id.to_string(), format_hint.to_string());
            async move {
                let mut messages: Vec<pb::UploadAudioRequest> = bytes
                    .chunks(chunk)
                    .map(|part| pb::UploadAudioRequest {
                        chunk: part.to_vec(),
                        ..Default::default()
                    })
                    .collect();
                if messages.is_empty() {
                    messages.push(pb::UploadAudioRequest::default());
                }
                messages[0].meeting_id = meeting_id;
                messages[0].format_hint = hint;
                let r = c.request(tokio_stream::iter(messages));
                c.meetings.upload_audio(r).await
            }
        })
        .await
    }

    /// Starts a diarization job with a fresh request id, re-sent unchanged on every retry so a
    /// retried start never creates a second job.
    pub async fn start_job(
        &self,
        meeting_id: &str,
        speakers: SpeakerRequest,
    ) -> Result<StartedJob, ClientError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let request = pb::RefineSpeakerDiarizationRequest {
            meeting_id: meeting_id.to_string(),
            num_speakers: speakers.exactly,
            min_speakers: speakers.min,
            max_speakers: speakers.max,
            request_id: request_id.clone(),
        };
        let started = self
            .call(
                "RefineSpeakerDiarization",
                None,
                &mut |_, _, _| {},
                |mut c| {
                    let request = request.clone();
                    async move {
                        let r = c.request(request);
                        c.jobs.refine_speaker_diarization(r).await
                    }
                },
            )
            .await?;
        Ok(StartedJob {
            job_id: started.job_id,
            request_id,
            created: started.created,
            job: started.job.unwrap_or_default(),
            warnings: started.warnings,
        })
    }

    pub async fn status(&self, job_id: &str) -> Result<pb::DiarizationJob, ClientError> {
        self.status_reporting(job_id, &mut |_, _, _| {}).await
    }

    pub(crate) async fn status_reporting(
        &self,
        job_id: &str,
        on_retry: RetrySink<'_>,
    ) -> Result<pb::DiarizationJob, ClientError> {
        let request = pb::GetDiarizationJobStatusRequest {
            job_id: job_id.to_string(),
        };
        self.call(
            "GetDiarizationJobStatus",
            Some(job_id),
            on_retry,
            |mut c| {
                let request = request.clone();
                async move {
                    let r = c.request(request);
                    c.jobs.get_diarization_job_status(r).await
                }
            },
        )
        .await
    }

    pub async fn result(&self, job_id: &str) -> Result<pb::DiarizationResult, ClientError> {
        self.result_reporting(job_id, &mut |_, _, _| {}).await
    }

    pub(crate) async fn result_reporting(
        &self,
        job_id: &str,
        on_retry: RetrySink<'_>,
    ) -> Result<pb::DiarizationResult, ClientError> {
        let request = pb::GetDiarizationResultRequest {
            job_id: job_id.to_string(),
        };
        self.call("GetDiarizationResult", Some(job_id), on_retry, |mut c| {
            let request = request.clone();
            async move {
                let r = c.request(request);
                c.jobs.get_diarization_result(r).await
            }
        })
        .await
    }

    pub async fn list(
        &self,
        request: pb::ListDiarizationJobsRequest,
    ) -> Result<pb::ListDiarizationJobsResponse, ClientError> {
        self.call("ListDiarizationJobs", None, &mut |_, _, _| {}, |mut c| {
            let request = request.clone();
            async move {
                let r = c.request(request);
                c.jobs.list_diarization_jobs(r).await
            }
        })
        .await
    }

    pub async fn delete_meeting(&self, meeting_id: &str) -> Result<(), ClientError> {
        let request = pb::DeleteMeetingRequest {
            meeting_id: meeting_id.to_string(),
        };
        self.call("DeleteMeeting", None, &mut |_, _, _| {}, |mut c| {
            let request = request.clone();
            async move {
                let r = c.request(request);
                c.meetings.delete_meeting(r).await
            }
        })
        .await
        .map(|_| ())
    }

    /// Follows the job to its end in a background task; events arrive on the returned handle.
    /// Dropping the handle, or the last clone of this client, stops the task.
    pub fn follow(&self, job_id: &str) -> JobHandle {
        follow::spawn(self.clone(), job_id.to_string(), self.alive.subscribe())
    }

    /// Sends a cancel and waits until the job's final state is confirmed by the server: CANCELLED,
    /// or the state that won the race. Errors when it is not final within
    /// `follow.cancel_confirm_timeout`.
    pub async fn cancel(&self, job_id: &str) -> Result<CancelOutcome, ClientError> {
        let request = pb::CancelDiarizationJobRequest {
            job_id: job_id.to_string(),
        };
        let answer = self
            .call(
                "CancelDiarizationJob",
                Some(job_id),
                &mut |_, _, _| {},
                |mut c| {
                    let request = request.clone();
                    async move {
                        let r = c.request(request);
                        c.jobs.cancel_diarization_job(r).await
                    }
                },
            )
            .await?;
        let limit = self.shared.config.follow.cancel_confirm_timeout;
        let mut last = answer.job.unwrap_or_default();
        // Confirmed by the stored state: the job is read back even when the answer says it is
        // final, and the whole wait is bounded, however slow each read is.
        let confirm = async {
            loop {
                match self.status(job_id).await {
                    Ok(job) if is_terminal(job.status) => {
                        return Ok(if job.status == pb::JobStatus::Cancelled as i32 {
                            CancelOutcome::Cancelled(job)
                        } else {
                            CancelOutcome::AlreadyEnded(job)
                        });
                    }
                    Ok(job) => last = job,
                    Err(ClientError::Unreachable { .. }) => {}
                    Err(e) => return Err(e),
                }
                let pause = self
                    .shared
                    .config
                    .follow
                    .poll_interval
                    .min(Duration::from_millis(250));
                tokio::time::sleep(pause).await;
            }
        };
        match tokio::time::timeout(limit, confirm).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::CancelUnconfirmed {
                job_id: job_id.to_string(),
                waited: limit,
                last_status: status_name(last.status),
            }),
        }
    }

    /// A clone for a follow task: same calls, but it does not count as a live client, so it does
    /// not keep the task's own stop signal from firing when the user's clients are all dropped.
    pub(crate) fn detached(&self) -> Client {
        Client {
            shared: self.shared.clone(),
            alive: Arc::new(watch::channel(()).0),
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// One call with its own deadline, retried on transient errors (up to the policy's budget of
    /// consecutive retries, with backoff honouring the server's hint). Each retry is reported to
    /// `on_retry` before its wait.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        what: &str,
        job_id: Option<&str>,
        on_retry: RetrySink<'_>,
        attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(CallClients) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let timeout = self.shared.config.call_timeout;
        self.call_within(timeout, what, job_id, on_retry, attempt)
            .await
    }

    async fn call_within<T, F, Fut>(
        &self,
        call_timeout: Duration,
        what: &str,
        job_id: Option<&str>,
        on_retry: RetrySink<'_>,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(CallClients) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let config = &self.shared.config;
        let mut retries = 0u32;
        loop {
            let clients = CallClients {
                meetings: self.shared.meetings.clone(),
                jobs: self.shared.jobs.clone(),
                timeout: call_timeout,
            };
            let status = match tokio::time::timeout(call_timeout, attempt(clients)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!("no answer within {call_timeout:?}")),
            };
            let code = effective_code(&status);
            if classify(code) == ErrorClass::Fatal {
                return Err(ClientError::Rejected {
                    what: what.to_string(),
                    code,
                    message: status.message().to_string(),
                });
            }
            retries += 1;
            if retries > config.retry.max_retries {
                return Err(ClientError::Unreachable {
                    job_id: job_id.map(str::to_string),
                    retries: config.retry.max_retries,
                    last_error: describe(&status),
                });
            }
            let wait = config.retry.delay(retries, retry_hint(&status));
            tracing::debug!(what, retries, ?wait, error = %describe(&status), "retrying");
            on_retry(retries, &status, wait);
            tokio::time::sleep(wait).await;
        }
    }
}

/// What a call attempt gets: fresh handles on the shared channel, and the deadline to send.
pub(crate) struct CallClients {
    pub meetings: MeetingServiceClient<Channel>,
    pub jobs: DiarizationServiceClient<Channel>,
    pub timeout: Duration,
}

impl CallClients {
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }
}

pub(crate) fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Sends an event to a handle's receiver; a dropped receiver is fine (nobody is listening).
pub(crate) fn emit(events: &mpsc::UnboundedSender<JobEvent>, event: JobEvent) {
    let _ = events.send(event);
}

/// Result of following, for callers that only want the end.
pub type FollowResult = Result<JobOutcome, ClientError>;
