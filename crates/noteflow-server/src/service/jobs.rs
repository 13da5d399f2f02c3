//! DiarizationService: start, follow, cancel and list diarization jobs, and read their results.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use noteflow_diarize::{Diarization, SpeakerConstraints, Turn};
use noteflow_proto::v1 as pb;
use noteflow_proto::v1::diarization_service_server::DiarizationService;
use noteflow_store::{
    CancelRequest, Created, Job, JobFilter, JobId, JobState, NewJob, StorageMode,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::events::JobSubscription;
use crate::observe::REQUEST_ID_FIELD;

use super::convert::{self, job_not_found, parse_job_id, parse_meeting_id, store_error};
use super::{ServiceState, MEMORY_MODE_WARNING};

const MAX_REQUEST_ID_CHARS: usize = 128;
/// How often a watch re-reads its job when no in-process notice arrives (changes made by another
/// process, e.g. a replica sharing the database).
const WATCH_POLL: Duration = Duration::from_secs(1);

pub struct Jobs {
    state: Arc<ServiceState>,
}

impl Jobs {
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }

    async fn load(&self, id: JobId) -> Result<Job, Status> {
        self.state
            .store
            .get_job(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| job_not_found(id))
    }

    async fn refine(
        &self,
        request: pb::RefineSpeakerDiarizationRequest,
    ) -> Result<pb::RefineSpeakerDiarizationResponse, Status> {
        let meeting_id = parse_meeting_id("meeting_id", &request.meeting_id)?;
        let constraints = speaker_constraints(&request)?;
        let request_id = request.request_id.trim();
        if request_id.chars().count() > MAX_REQUEST_ID_CHARS {
            return Err(Status::invalid_argument(format!(
                "request_id is longer than {MAX_REQUEST_ID_CHARS} characters"
            )));
        }
        if !request_id.is_empty() {
            tracing::Span::current().record(REQUEST_ID_FIELD, request_id);
        }
        let (new_min, new_max) = (
            constraints.min().map(|n| n as u32),
            constraints.max().map(|n| n as u32),
        );
        let new_job = NewJob {
            meeting_id,
            min_speakers: new_min,
            max_speakers: new_max,
            request_id: (!request_id.is_empty()).then(|| request_id.to_string()),
        };
        let created = self
            .state
            .store
            .create_job(new_job, self.state.max_queued)
            .await
            .map_err(store_error)?;
        let is_new = matches!(created, Created::New(_));
        let job = created.into_job();
        let same_key = !request_id.is_empty() && job.request_id.as_deref() == Some(request_id);
        if same_key && (job.min_speakers, job.max_speakers) != (new_min, new_max) {
            return Err(Status::invalid_argument(format!(
                "request_id '{request_id}' was already used to start job {} with other speaker settings; use a new request_id for a different request",
                job.id
            )));
        }
        if is_new {
            tracing::info!(job = %job.id, meeting = %meeting_id, "job queued");
            if self.state.mode == StorageMode::Memory {
                tracing::warn!(job = %job.id, "{MEMORY_MODE_WARNING}");
            }
            self.state.events.changed(job.id);
            self.state.runner.wake();
        }
        Ok(pb::RefineSpeakerDiarizationResponse {
            job_id: job.id.to_string(),
            status: convert::job_status(job.state) as i32,
            storage_mode: convert::storage_mode(self.state.mode) as i32,
            warnings: self.state.warnings.clone(),
            created: is_new,
            job: Some(self.state.job_message(&job)),
        })
    }

    /// Waits until `id` is terminal or `wait` has passed; returns the job as it then is (`None` if it
    /// was deleted meanwhile).
    async fn wait_terminal(&self, id: JobId, wait: Duration) -> Result<Option<Job>, Status> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut subscription = self.state.events.subscribe();
        loop {
            let job = self.state.store.get_job(id).await.map_err(store_error)?;
            match job {
                Some(ref j) if j.state.is_active() && tokio::time::Instant::now() < deadline => {}
                other => return Ok(other),
            }
            // Re-read on a notice, and every 50 ms for a worker in another process.
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(50)),
                subscription.changed(id),
            )
            .await;
        }
    }

    async fn cancel(&self, id: JobId) -> Result<pb::CancelDiarizationJobResponse, Status> {
        let request = self
            .state
            .store
            .cancel(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| job_not_found(id))?;
        let (job, message) = match request {
            CancelRequest::CancelledQueued(job) => {
                self.state.events.changed(id);
                tracing::info!(job = %id, "queued job cancelled");
                (job, "the job was queued and is now cancelled".to_string())
            }
            CancelRequest::AlreadyTerminal(job) => {
                let message = format!("the job had already ended ({}); nothing changed", job.state);
                (job, message)
            }
            CancelRequest::Requested(_) => {
                self.state.runner.signal_cancel(id);
                tracing::info!(job = %id, "cancel requested for a running job");
                match self.wait_terminal(id, self.state.cancel_wait).await? {
                    None => {
                        return Err(Status::not_found(format!(
                            "diarization job {id} was deleted while being cancelled"
                        )))
                    }
                    Some(job) => {
                        let message = match job.state {
                            JobState::Cancelled => "the running job stopped and is cancelled".to_string(),
                            state if state.is_terminal() => {
                                format!("the job ended ({state}) before the cancel took effect")
                            }
                            _ => format!(
                                "cancel requested; the worker has not stopped within {} s (it stops at its next check)",
                                self.state.cancel_wait.as_secs_f32()
                            ),
                        };
                        (job, message)
                    }
                }
            }
        };
        Ok(pb::CancelDiarizationJobResponse {
            cancelled: job.state == JobState::Cancelled,
            status: convert::job_status(job.state) as i32,
            message,
            job: Some(self.state.job_message(&job)),
        })
    }

    async fn list(
        &self,
        request: pb::ListDiarizationJobsRequest,
    ) -> Result<pb::ListDiarizationJobsResponse, Status> {
        let meeting_id = match request.meeting_id.trim() {
            "" => None,
            id => Some(parse_meeting_id("meeting_id", id)?),
        };
        let state = match pb::JobStatus::try_from(request.status) {
            Ok(pb::JobStatus::Unspecified) => None,
            Ok(pb::JobStatus::Queued) => Some(JobState::Queued),
            Ok(pb::JobStatus::Running) => Some(JobState::Running),
            Ok(pb::JobStatus::Completed) => Some(JobState::Completed),
            Ok(pb::JobStatus::Failed) => Some(JobState::Failed),
            Ok(pb::JobStatus::Cancelled) => Some(JobState::Cancelled),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "status {} is not a job status",
                    request.status
                )))
            }
        };
        let limit = convert::page_size(request.page_size)?;
        // A token continues only the listing it came from: the same meeting and status filter.
        let scope = format!(
            "jobs:{}:{}",
            meeting_id.map_or_else(|| "*".to_string(), |m| m.to_string()),
            state.map_or("*", JobState::as_str)
        );
        let after_seq = match request.page_token.trim() {
            "" => None,
            token => Some(self.state.page_tokens.redeem(&scope, token)?),
        };
        let page = self
            .state
            .store
            .list_jobs(&JobFilter { meeting_id, state }, limit, after_seq)
            .await
            .map_err(store_error)?;
        Ok(pb::ListDiarizationJobsResponse {
            jobs: page
                .jobs
                .iter()
                .map(|j| self.state.job_message(j))
                .collect(),
            next_page_token: page
                .next_after_seq
                .map(|seq| self.state.page_tokens.issue(&scope, seq))
                .unwrap_or_default(),
        })
    }

    async fn result(&self, id: JobId) -> Result<pb::DiarizationResult, Status> {
        let job = self.load(id).await?;
        if job.state != JobState::Completed {
            return Err(Status::failed_precondition(format!(
                "diarization job {id} is {}; its result exists only once it is COMPLETED",
                job.state
            )));
        }
        let turns = self
            .state
            .store
            .result_turns(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| job_not_found(id))?;
        let diarization = Diarization {
            turns: turns
                .iter()
                .map(|t| Turn::new(t.start, t.end, t.speaker.clone()))
                .collect(),
            speakers: job.speakers.clone(),
            duration: turns.iter().map(|t| t.end).fold(0.0, f64::max),
        };
        Ok(pb::DiarizationResult {
            job_id: id.to_string(),
            meeting_id: job.meeting_id.to_string(),
            speaker_ids: job.speakers,
            rttm: diarization.to_rttm(&job.meeting_id.to_string()),
            turns: turns
                .into_iter()
                .map(|t| pb::SpeakerTurn {
                    start_seconds: t.start,
                    end_seconds: t.end,
                    speaker: t.speaker,
                })
                .collect(),
        })
    }
}

fn speaker_constraints(
    request: &pb::RefineSpeakerDiarizationRequest,
) -> Result<SpeakerConstraints, Status> {
    let to_usize = |n: Option<u32>| n.map(|n| n as usize);
    let constraints = match request.num_speakers {
        Some(_) if request.min_speakers.is_some() || request.max_speakers.is_some() => {
            return Err(Status::invalid_argument(
                "num_speakers cannot be combined with min_speakers or max_speakers",
            ))
        }
        Some(n) => SpeakerConstraints::exact(n as usize),
        None => SpeakerConstraints::bounds(
            to_usize(request.min_speakers),
            to_usize(request.max_speakers),
        ),
    };
    constraints.map_err(|e| Status::invalid_argument(format!("speaker count: {e}")))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::DiarizationJob, Status>> + Send>>;

#[tonic::async_trait]
impl DiarizationService for Jobs {
    async fn refine_speaker_diarization(
        &self,
        request: Request<pb::RefineSpeakerDiarizationRequest>,
    ) -> Result<Response<pb::RefineSpeakerDiarizationResponse>, Status> {
        self.refine(request.into_inner()).await.map(Response::new)
    }

    async fn get_diarization_job_status(
        &self,
        request: Request<pb::GetDiarizationJobStatusRequest>,
    ) -> Result<Response<pb::DiarizationJob>, Status> {
        let id = parse_job_id("job_id", &request.get_ref().job_id)?;
        let job = self.load(id).await?;
        Ok(Response::new(self.state.job_message(&job)))
    }

    async fn cancel_diarization_job(
        &self,
        request: Request<pb::CancelDiarizationJobRequest>,
    ) -> Result<Response<pb::CancelDiarizationJobResponse>, Status> {
        let id = parse_job_id("job_id", &request.get_ref().job_id)?;
        self.cancel(id).await.map(Response::new)
    }

    async fn list_diarization_jobs(
        &self,
        request: Request<pb::ListDiarizationJobsRequest>,
    ) -> Result<Response<pb::ListDiarizationJobsResponse>, Status> {
        self.list(request.into_inner()).await.map(Response::new)
    }

    type WatchDiarizationJobStream = WatchStream;

    async fn watch_diarization_job(
        &self,
        request: Request<pb::WatchDiarizationJobRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let id = parse_job_id("job_id", &request.get_ref().job_id)?;
        // Subscribe before the first read so no change falls between the two.
        let subscription = self.state.events.subscribe();
        let first = self.load(id).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        // In the call's span, so the stream's log lines name the call.
        tokio::spawn(watch(self.state.clone(), first, subscription, tx).in_current_span());
        let stream: WatchStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }

    async fn get_diarization_result(
        &self,
        request: Request<pb::GetDiarizationResultRequest>,
    ) -> Result<Response<pb::DiarizationResult>, Status> {
        let id = parse_job_id("job_id", &request.get_ref().job_id)?;
        self.result(id).await.map(Response::new)
    }

    async fn get_server_info(
        &self,
        _request: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfo>, Status> {
        Ok(Response::new(pb::ServerInfo {
            storage_mode: convert::storage_mode(self.state.mode) as i32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            max_upload_bytes: self.state.max_upload_bytes as u64,
            warnings: self.state.warnings.clone(),
        }))
    }
}

/// Sends `job` now and again whenever it changes, until it is terminal, it is deleted (NOT_FOUND), or
/// the client goes away (the send fails).
async fn watch(
    state: Arc<ServiceState>,
    mut job: Job,
    mut subscription: JobSubscription,
    tx: tokio::sync::mpsc::Sender<Result<pb::DiarizationJob, Status>>,
) {
    let id = job.id;
    let mut stopping = state.stopping.clone();
    let mut sent = state.job_message(&job);
    if tx.send(Ok(sent.clone())).await.is_err() {
        return;
    }
    while job.state.is_active() {
        tokio::select! {
            _ = subscription.changed(id) => {}
            _ = tokio::time::sleep(WATCH_POLL) => {}
            _ = tx.closed() => return,
            _ = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                // Clients follow on by polling, or watch again once the server is back.
                let _ = tx.send(Err(Status::unavailable("the server is shutting down; poll the job or watch it again"))).await;
                return;
            }
        }
        job = match state.store.get_job(id).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                let _ = tx
                    .send(Err(Status::not_found(format!(
                        "diarization job {id} was deleted"
                    ))))
                    .await;
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(store_error(e))).await;
                return;
            }
        };
        let message = state.job_message(&job);
        if message != sent {
            sent = message;
            // A client that stops reading must not keep this task (and the server) alive.
            tokio::select! {
                sent_ok = tx.send(Ok(sent.clone())) => if sent_ok.is_err() { return },
                _ = async { let _ = stopping.wait_for(|stop| *stop).await; } => return,
            }
        }
    }
}
