//! One tower layer around every gRPC call the server answers: it counts the call in the RPC metrics
//! and runs it inside a tracing span, so a new RPC is measured and its log lines name it without its
//! handler doing anything.
//!
//! What is recorded, once per call, when the call ends:
//! - `noteflow_rpc_requests_total{method,code}` goes up by one;
//! - `noteflow_rpc_duration_seconds{method,code}` observes the time from the request's arrival until
//!   the server began its answer (the handler returned). For unary calls and for UploadAudio (whose
//!   handler reads the whole upload) that is the whole call. For response streams
//!   (WatchDiarizationJob, reflection) it is the time to set the stream up; how long the stream
//!   then stays open is up to the client and the job, so it is not a latency and is not measured.
//!
//! `method` is the RPC's name, the last part of the request path (`GetDiarizationJobStatus`), for
//! every method of the descriptor sets the layer is given: NoteFlow's own, health (`Check`, `Watch`)
//! and reflection (`ServerReflectionInfo`) are all counted. Any other path is `unknown`, so a client
//! sending made-up paths cannot create series without bound.
//!
//! `code` is the call's final gRPC status code as the client sees it: the `grpc-status` of a
//! trailers-only answer (how most errors are sent), else the one in the trailers that end the
//! response stream (a watch that ends because its job was deleted counts as `NotFound`, one cut off by
//! a shutdown as `Unavailable`). A call that ends without a status, because the client went away
//! before the answer or before the end of the stream, counts as `Cancelled`.
//!
//! The request gets a [`Caller`] extension (the peer's IP address) for per-caller limits.
//!
//! The span (`rpc`) carries `method`, `peer` (the client's address) and `request_id` (from an
//! `x-request-id` header, or recorded by a handler whose request carries one).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prost::Message;
use tonic::transport::server::TcpConnectInfo;
use tonic::Code;
use tracing::Span;

use crate::caller::Caller;
use crate::metrics::Metrics;

/// The `method` label of paths outside the known descriptor sets.
const UNKNOWN_METHOD: &str = "unknown";

/// The `request_id` span field, for handlers whose request carries an id.
pub const REQUEST_ID_FIELD: &str = "request_id";

/// See the module documentation.
#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
    /// Request paths (`/package.Service/Method`) whose method name is used as the label.
    known: Arc<HashSet<String>>,
}

impl ObserveLayer {
    /// Counts calls into `metrics`, naming the methods of the encoded `FileDescriptorSet`s given.
    pub fn new(
        metrics: Arc<Metrics>,
        descriptor_sets: &[&[u8]],
    ) -> Result<Self, prost::DecodeError> {
        let mut known = HashSet::new();
        for encoded in descriptor_sets {
            let set = prost_types::FileDescriptorSet::decode(*encoded)?;
            for file in &set.file {
                let package = file.package();
                for service in &file.service {
                    let service_path = match package {
                        "" => service.name().to_string(),
                        package => format!("{package}.{}", service.name()),
                    };
                    for method in &service.method {
                        known.insert(format!("/{service_path}/{}", method.name()));
                    }
                }
            }
        }
        Ok(Self {
            metrics,
            known: Arc::new(known),
        })
    }

    fn method_label(&self, path: &str) -> String {
        match path.rsplit_once('/') {
            Some((_, method)) if self.known.contains(path) => method.to_string(),
            _ => UNKNOWN_METHOD.to_string(),
        }
    }
}

impl<S> tower_layer::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`ObserveLayer`] wraps around the server's routes.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for Observe<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = ObservedCall<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let method = self.layer.method_label(request.uri().path());
        let span = tracing::info_span!(
            "rpc",
            method = %method,
            peer = tracing::field::Empty,
            request_id = tracing::field::Empty,
        );
        let peer = request
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr);
        if let Some(peer) = peer {
            span.record("peer", tracing::field::display(peer));
        }
        request
            .extensions_mut()
            .insert(peer.map_or_else(Caller::unknown, |p| Caller::from_peer_ip(p.ip())));
        if let Some(id) = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
        {
            span.record(REQUEST_ID_FIELD, id);
        }
        let call = PendingCall(Some(CallRecord {
            metrics: self.layer.metrics.clone(),
            method,
            started: Instant::now(),
            answered_after: None,
        }));
        let inner = span.in_scope(|| self.inner.call(request));
        ObservedCall { inner, span, call }
    }
}

/// One call's labels and timing, until it is counted.
struct CallRecord {
    metrics: Arc<Metrics>,
    method: String,
    started: Instant,
    answered_after: Option<Duration>,
}

/// A call not counted yet. Counted exactly once: with the code it ended with, or as `Cancelled` if
/// it is dropped before it ended (the client went away).
struct PendingCall(Option<CallRecord>);

impl PendingCall {
    fn answered(&mut self) {
        if let Some(record) = &mut self.0 {
            record.answered_after = Some(record.started.elapsed());
        }
    }

    fn finish(&mut self, code: Code) {
        if let Some(record) = self.0.take() {
            let seconds = record
                .answered_after
                .unwrap_or_else(|| record.started.elapsed())
                .as_secs_f64();
            record.metrics.rpc_finished(&record.method, code, seconds);
        }
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get(tonic::Status::GRPC_STATUS)
        .map(|value| Code::from_bytes(value.as_bytes()))
}

pin_project! {
    /// The handler's future, run inside the call's span; notes when the answer begins.
    pub struct ObservedCall<F> {
        #[pin]
        inner: F,
        span: Span,
        call: PendingCall,
    }
}

impl<F, ResBody, E> Future for ObservedCall<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<ObservedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        let mut call = PendingCall(this.call.0.take());
        call.answered();
        Poll::Ready(match result {
            Ok(response) => {
                // A trailers-only answer carries its status in the headers: the call ends here.
                if let Some(code) = grpc_status(response.headers()) {
                    call.finish(code);
                }
                let span = this.span.clone();
                Ok(response.map(|inner| ObservedBody { inner, span, call }))
            }
            Err(error) => {
                // The transport turns a service error into a status without a code of its own.
                call.finish(Code::Unknown);
                Err(error)
            }
        })
    }
}

pin_project! {
    /// The response body; its trailers carry the call's final status.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        span: Span,
        call: PendingCall,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = {
            let _entered = this.span.enter();
            ready!(this.inner.poll_frame(cx))
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    this.call
                        .finish(grpc_status(trailers).unwrap_or(Code::Unknown));
                }
            }
            // A body that fails or ends without trailers gives the client no status of ours.
            Some(Err(_)) | None => this.call.finish(Code::Unknown),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
