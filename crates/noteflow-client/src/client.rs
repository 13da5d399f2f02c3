//! [`Client`]: the service's calls (each with its own deadline, transient failures retried):
//! uploading audio, starting, reading, listing and cancelling jobs. Following a job is in
//! [`follow`](Client::follow), in its own module.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use noteflow_proto::v1 as pb;
use noteflow_proto::v1::diarization_service_client::DiarizationServiceClient;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use tokio::sync::watch;
use tonic::transport::Endpoint;

use crate::call::{unobserved, AttemptError, Connection, RetrySink};
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::status::{is_terminal, status_name};
use crate::upload::{self, AudioSource};

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

/// A client of the job service. Clones share one connection; see [`Client::new`].
#[derive(Clone)]
pub struct Client {
    connection: Arc<Connection>,
    /// Every follow task holds a receiver of this; when the last `Client` is dropped, the sender is
    /// dropped and every task following a job for it stops.
    alive: Arc<watch::Sender<()>>,
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
            connection: Arc::new(Connection {
                meetings: MeetingServiceClient::new(channel.clone()),
                jobs: DiarizationServiceClient::new(channel),
                config,
            }),
            alive: Arc::new(watch::channel(()).0),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.connection.config
    }

    /// How many follows started by this client or its clones are still running (a follow's task
    /// has stopped once its handle is dropped and this count went down).
    pub fn active_follows(&self) -> usize {
        self.alive.receiver_count()
    }

    /// Creates a meeting named after the file and uploads the file as its audio; returns the
    /// meeting id. The file is read while it is sent, never held in memory whole; a retry sends it
    /// again from the start.
    pub async fn upload_file(
        &self,
        path: &Path,
    ) -> Result<(String, pb::UploadAudioResponse), ClientError> {
        let unreadable = |e: std::io::Error| ClientError::Io {
            what: path.display().to_string(),
            message: e.to_string(),
        };
        // Checked before the meeting is created, so an unreadable file leaves nothing behind.
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let metadata = file.metadata().await.map_err(unreadable)?;
        if metadata.is_dir() {
            return Err(unreadable(std::io::Error::other("it is a directory")));
        }
        let title = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let hint = path
            .extension()
            .map_or_else(String::new, |e| e.to_string_lossy().into_owned());
        let meeting = self.create_meeting(&title).await?;
        let uploaded = self
            .upload(
                &meeting,
                AudioSource::File(path.to_path_buf()),
                metadata.len(),
                &hint,
                &format!("UploadAudio of {}", path.display()),
            )
            .await?;
        Ok((meeting, uploaded))
    }

    pub async fn create_meeting(&self, title: &str) -> Result<String, ClientError> {
        let request = pb::CreateMeetingRequest {
            title: title.to_string(),
        };
        let meeting = self
            .connection
            .unary(
                "CreateMeeting",
                None,
                &mut unobserved,
                request,
                |mut c, r| async move { c.meetings.create_meeting(r).await },
            )
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
        let size = bytes.len() as u64;
        let source = AudioSource::Memory(Arc::new(bytes));
        self.upload(meeting_id, source, size, format_hint, "UploadAudio")
            .await
    }

    async fn upload(
        &self,
        meeting_id: &str,
        source: AudioSource,
        size: u64,
        format_hint: &str,
        what: &str,
    ) -> Result<pb::UploadAudioResponse, ClientError> {
        let chunk = self.connection.config.upload_chunk_bytes;
        // Big files need longer than one call's deadline: one more second per MB.
        let timeout = self.connection.config.call_timeout + Duration::from_secs(size / 1_000_000);
        self.connection
            .retrying(timeout, what, None, &mut unobserved, |mut c| {
                let (messages, read_error) = upload::messages(
                    &source,
                    chunk,
                    meeting_id.to_string(),
                    format_hint.to_string(),
                    size,
                );
                let source = source.clone();
                async move {
                    let request = c.request(messages);
                    tokio::select! {
                        answer = c.meetings.upload_audio(request) => Ok(answer?),
                        // Dropping the call resets the stream: nothing is stored.
                        Ok(error) = read_error => Err(AttemptError::Local(ClientError::Io {
                            what: match source {
                                AudioSource::File(path) => path.display().to_string(),
                                AudioSource::Memory(_) => "the audio".into(),
                            },
                            message: error.to_string(),
                        })),
                    }
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
            .connection
            .unary(
                "RefineSpeakerDiarization",
                None,
                &mut unobserved,
                request,
                |mut c, r| async move { c.jobs.refine_speaker_diarization(r).await },
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
        self.status_reporting(job_id, &mut unobserved).await
    }

    pub(crate) async fn status_reporting(
        &self,
        job_id: &str,
        on_retry: RetrySink<'_>,
    ) -> Result<pb::DiarizationJob, ClientError> {
        let request = pb::GetDiarizationJobStatusRequest {
            job_id: job_id.to_string(),
        };
        self.connection
            .unary(
                "GetDiarizationJobStatus",
                Some(job_id),
                on_retry,
                request,
                |mut c, r| async move { c.jobs.get_diarization_job_status(r).await },
            )
            .await
    }

    pub async fn result(&self, job_id: &str) -> Result<pb::DiarizationResult, ClientError> {
        self.result_reporting(job_id, &mut unobserved).await
    }

    pub(crate) async fn result_reporting(
        &self,
        job_id: &str,
        on_retry: RetrySink<'_>,
    ) -> Result<pb::DiarizationResult, ClientError> {
        let request = pb::GetDiarizationResultRequest {
            job_id: job_id.to_string(),
        };
        self.connection
            .unary(
                "GetDiarizationResult",
                Some(job_id),
                on_retry,
                request,
                |mut c, r| async move { c.jobs.get_diarization_result(r).await },
            )
            .await
    }

    pub async fn list(
        &self,
        request: pb::ListDiarizationJobsRequest,
    ) -> Result<pb::ListDiarizationJobsResponse, ClientError> {
        self.connection
            .unary(
                "ListDiarizationJobs",
                None,
                &mut unobserved,
                request,
                |mut c, r| async move { c.jobs.list_diarization_jobs(r).await },
            )
            .await
    }

    /// One page of the meeting's segments in index order: `page_size` 0 means the server's default
    /// (500), `page_token` empty means the first page. Pass the answer's `next_page_token` for the
    /// next page; it is empty on the last.
    pub async fn list_segments(
        &self,
        meeting_id: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<pb::ListSegmentsResponse, ClientError> {
        let request = pb::ListSegmentsRequest {
            meeting_id: meeting_id.to_string(),
            page_size,
            page_token: page_token.to_string(),
        };
        self.connection
            .unary(
                "ListSegments",
                None,
                &mut unobserved,
                request,
                |mut c, r| async move { c.meetings.list_segments(r).await },
            )
            .await
    }

    /// Uploads the file at `path` as the audio of an existing meeting, read while it is sent.
    pub async fn upload_audio_file(
        &self,
        meeting_id: &str,
        path: &Path,
        format_hint: &str,
    ) -> Result<pb::UploadAudioResponse, ClientError> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| ClientError::Io {
                what: path.display().to_string(),
                message: e.to_string(),
            })?
            .len();
        self.upload(
            meeting_id,
            AudioSource::File(path.to_path_buf()),
            size,
            format_hint,
            &format!("UploadAudio of {}", path.display()),
        )
        .await
    }

    pub async fn get_meeting(&self, meeting_id: &str) -> Result<pb::Meeting, ClientError> {
        let request = pb::GetMeetingRequest {
            meeting_id: meeting_id.to_string(),
        };
        self.connection
            .unary(
                "GetMeeting",
                None,
                &mut unobserved,
                request,
                |mut c, r| async move { c.meetings.get_meeting(r).await },
            )
            .await
    }

    /// Every segment of the meeting, in index order, read page by page (GetMeeting carries only the
    /// first ones).
    pub async fn all_segments(&self, meeting_id: &str) -> Result<Vec<pb::Segment>, ClientError> {
        let mut segments = Vec::new();
        let mut token = String::new();
        loop {
            let page = self.list_segments(meeting_id, 0, &token).await?;
            segments.extend(page.segments);
            if page.next_page_token.is_empty() {
                return Ok(segments);
            }
            token = page.next_page_token;
        }
    }

    pub async fn list_meetings(
        &self,
        request: pb::ListMeetingsRequest,
    ) -> Result<pb::ListMeetingsResponse, ClientError> {
        self.connection
            .unary(
                "ListMeetings",
                None,
                &mut unobserved,
                request,
                |mut c, r| async move { c.meetings.list_meetings(r).await },
            )
            .await
    }

    /// Where the server keeps jobs and its limits.
    pub async fn server_info(&self) -> Result<pb::ServerInfo, ClientError> {
        self.connection
            .unary(
                "GetServerInfo",
                None,
                &mut unobserved,
                pb::GetServerInfoRequest {},
                |mut c, r| async move { c.jobs.get_server_info(r).await },
            )
            .await
    }

    pub async fn delete_meeting(&self, meeting_id: &str) -> Result<(), ClientError> {
        let request = pb::DeleteMeetingRequest {
            meeting_id: meeting_id.to_string(),
        };
        self.connection
            .unary(
                "DeleteMeeting",
                None,
                &mut unobserved,
                request,
                |mut c, r| async move { c.meetings.delete_meeting(r).await },
            )
            .await
            .map(|_| ())
    }

    /// Sends a cancel and waits until the job's final state is confirmed by the server: CANCELLED,
    /// or the state that won the race. Errors when it is not final within
    /// `follow.cancel_confirm_timeout`.
    pub async fn cancel(&self, job_id: &str) -> Result<CancelOutcome, ClientError> {
        let request = pb::CancelDiarizationJobRequest {
            job_id: job_id.to_string(),
        };
        let answer = self
            .connection
            .unary(
                "CancelDiarizationJob",
                Some(job_id),
                &mut unobserved,
                request,
                |mut c, r| async move { c.jobs.cancel_diarization_job(r).await },
            )
            .await?;
        let follow = &self.connection.config.follow;
        let limit = follow.cancel_confirm_timeout;
        let pause = follow.poll_interval.min(Duration::from_millis(250));
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

    /// A signal that fires when the last clone of this client is dropped.
    pub(crate) fn dropped_signal(&self) -> watch::Receiver<()> {
        self.alive.subscribe()
    }

    /// A clone for a follow task: same calls, but it does not count as a live client, so it does
    /// not keep the task's own stop signal from firing when the user's clients are all dropped.
    pub(crate) fn detached(&self) -> Client {
        Client {
            connection: self.connection.clone(),
            alive: Arc::new(watch::channel(()).0),
        }
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }
}
