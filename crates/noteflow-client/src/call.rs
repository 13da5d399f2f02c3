//! One call to the server as the client makes it: its own deadline (sent to the server and enforced
//! here), transient failures retried with backoff that honours the server's hint, every retry
//! reported, fatal ones returned at once as typed errors.

use std::future::Future;
use std::time::Duration;

use noteflow_proto::v1::diarization_service_client::DiarizationServiceClient;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::retry::{classify, describe, effective_code, retry_hint, ErrorClass};

/// Calls report their retries here (followed jobs turn them into `JobEvent::Retrying`).
pub(crate) type RetrySink<'a> = &'a mut (dyn FnMut(u32, &Status, Duration) + Send);

/// A sink for calls nobody watches the retries of.
pub(crate) fn unobserved(_: u32, _: &Status, _: Duration) {}

/// The stubs on one shared channel, and the settings every call uses.
pub(crate) struct Connection {
    pub meetings: MeetingServiceClient<Channel>,
    pub jobs: DiarizationServiceClient<Channel>,
    pub config: ClientConfig,
}

/// What one attempt of a call gets: fresh handles on the shared channel, and the deadline to send.
pub(crate) struct Attempt {
    pub meetings: MeetingServiceClient<Channel>,
    pub jobs: DiarizationServiceClient<Channel>,
    timeout: Duration,
}

impl Attempt {
    /// `message` as a request carrying this attempt's deadline.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        request
    }
}

/// Why one attempt failed: the call failed (retried when transient), or something on this side
/// failed that no retry changes (e.g. the file being uploaded cannot be read).
pub(crate) enum AttemptError {
    Call(Status),
    Local(ClientError),
}

impl From<Status> for AttemptError {
    fn from(status: Status) -> Self {
        AttemptError::Call(status)
    }
}

impl Connection {
    /// A unary call of `what`: `send` gets the attempt's stubs and the request (with its deadline);
    /// it is called again for each retry.
    pub async fn unary<Req, Resp, F, Fut>(
        &self,
        what: &str,
        job_id: Option<&str>,
        on_retry: RetrySink<'_>,
        request: Req,
        send: F,
    ) -> Result<Resp, ClientError>
    where
        Req: Clone,
        F: Fn(Attempt, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Resp>, Status>>,
    {
        let timeout = self.config.call_timeout;
        self.retrying(timeout, what, job_id, on_retry, |attempt| {
            let request = attempt.request(request.clone());
            let sent = send(attempt, request);
            async move { sent.await.map_err(AttemptError::Call) }
        })
        .await
    }

    /// Runs `attempt` (each with `call_timeout`) until it succeeds, fails fatally, or transient
    /// failures go past the policy's budget of consecutive retries. Each retry is reported to
    /// `on_retry` before its wait.
    pub async fn retrying<T, F, Fut>(
        &self,
        call_timeout: Duration,
        what: &str,
        job_id: Option<&str>,
        on_retry: RetrySink<'_>,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<Response<T>, AttemptError>>,
    {
        let policy = &self.config.retry;
        let mut retries = 0u32;
        loop {
            let stubs = Attempt {
                meetings: self.meetings.clone(),
                jobs: self.jobs.clone(),
                timeout: call_timeout,
            };
            let status = match tokio::time::timeout(call_timeout, attempt(stubs)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(AttemptError::Local(error))) => return Err(error),
                Ok(Err(AttemptError::Call(status))) => status,
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
            if retries > policy.max_retries {
                return Err(ClientError::Unreachable {
                    job_id: job_id.map(str::to_string),
                    retries: policy.max_retries,
                    last_error: describe(&status),
                });
            }
            let wait = policy.delay(retries, retry_hint(&status));
            tracing::debug!(what, retries, ?wait, error = %describe(&status), "retrying");
            on_retry(retries, &status, wait);
            tokio::time::sleep(wait).await;
        }
    }
}
