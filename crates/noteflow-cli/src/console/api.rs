//! The console's HTTP API: JSON over the job service's client, and one server-sent-event stream per
//! followed job. Errors are `{"error": "..."}` with the server's own message (what a person can act
//! on) and an HTTP status that matches the gRPC one.

use std::convert::Infallible;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use noteflow_client::proto as pb;
use noteflow_client::{CancelOutcome, Client, ClientError, SpeakerRequest};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tonic::Code;

use super::assets;
use crate::output::{event_json, job_json, page_json};

/// What every handler shares.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    server_address: String,
    in_process: bool,
    /// The console's copies of the audio it uploaded, by meeting id: the job service has no
    /// download call, and the page's player needs the file.
    audio_dir: PathBuf,
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Console {
    pub fn new(
        client: Client,
        server_address: String,
        in_process: bool,
        audio_dir: PathBuf,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                server_address,
                in_process,
                audio_dir,
                stopping,
            }),
        }
    }

    fn client(&self) -> &Client {
        &self.inner.client
    }
}

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::file))
        .route("/api/info", get(info))
        .route("/api/meetings", get(list_meetings).post(upload_meeting))
        .route(
            "/api/meetings/{id}",
            get(get_meeting).delete(delete_meeting),
        )
        .route("/api/meetings/{id}/audio", get(meeting_audio))
        .route("/api/meetings/{id}/jobs", post(start_job))
        .route("/api/jobs", get(list_jobs))
        .route("/api/jobs/{id}", get(job_status))
        .route("/api/jobs/{id}/events", get(job_events))
        .route("/api/jobs/{id}/cancel", post(cancel_job))
        .route("/api/jobs/{id}/result", get(job_result))
        .route("/api/jobs/{id}/result.rttm", get(result_rttm))
        .route("/api/jobs/{id}/result.json", get(result_json))
        .with_state(console)
}

/// An API error: an HTTP status and a message for people.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        match error {
            // The server's own words: what the person can act on.
            ClientError::Rejected { code, message, .. } => {
                let status = match code {
                    Code::NotFound => StatusCode::NOT_FOUND,
                    Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
                    Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                        StatusCode::CONFLICT
                    }
                    Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                    Code::PermissionDenied => StatusCode::FORBIDDEN,
                    Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::BAD_GATEWAY,
                };
                Self::new(status, message)
            }
            ClientError::Unreachable { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
            other => Self::new(StatusCode::BAD_GATEWAY, other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn info(State(console): State<Console>) -> ApiResult<Json<Value>> {
    let info = console.client().server_info().await?;
    let mode = pb::StorageMode::try_from(info.storage_mode).unwrap_or(pb::StorageMode::Unspecified);
    Ok(Json(json!({
        "server": console.inner.server_address,
        "in_process": console.inner.in_process,
        "storage_mode": storage_name(mode),
        "memory_only": mode == pb::StorageMode::Memory,
        "version": info.version,
        "max_upload_bytes": info.max_upload_bytes,
        "warnings": info.warnings,
        "max_retries": console.client().config().retry.max_retries,
    })))
}

fn storage_name(mode: pb::StorageMode) -> &'static str {
    match mode {
        pb::StorageMode::Memory => "memory",
        pb::StorageMode::Sqlite => "sqlite",
        pb::StorageMode::Postgres => "postgres",
        pb::StorageMode::Unspecified => "unknown",
    }
}

fn meeting_json(meeting: &pb::Meeting, local_audio: bool) -> Value {
    json!({
        "id": meeting.id,
        "title": meeting.title,
        "created_at": meeting.created_at.as_ref().map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9),
        "has_audio": meeting.has_audio,
        "duration_seconds": meeting.audio_duration_seconds,
        "size_bytes": meeting.audio_size_bytes,
        "playable": local_audio,
        "segments": meeting.segments.iter().map(|s| json!({
            "index": s.index,
            "start": s.start_seconds,
            "end": s.end_seconds,
            "text": s.text,
            "speaker": s.speaker,
        })).collect::<Vec<_>>(),
    })
}

/// The newest job of a meeting, if any.
async fn latest_job(console: &Console, meeting_id: &str) -> ApiResult<Option<pb::DiarizationJob>> {
    let page = console
        .client()
        .list(pb::ListDiarizationJobsRequest {
            meeting_id: meeting_id.to_string(),
            page_size: 1,
            ..Default::default()
        })
        .await?;
    Ok(page.jobs.into_iter().next())
}

#[derive(Deserialize)]
struct PageQuery {
    #[serde(default)]
    page_token: String,
    #[serde(default)]
    status: String,
}

async fn list_meetings(
    State(console): State<Console>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = console
        .client()
        .list_meetings(pb::ListMeetingsRequest {
            page_size: 50,
            page_token: query.page_token,
        })
        .await?;
    let mut meetings = Vec::with_capacity(page.meetings.len());
    for meeting in &page.meetings {
        let mut entry = meeting_json(meeting, local_audio(&console, &meeting.id).await.is_some());
        entry["latest_job"] = latest_job(&console, &meeting.id)
            .await?
            .as_ref()
            .map_or(Value::Null, job_json);
        meetings.push(entry);
    }
    Ok(Json(json!({
        "meetings": meetings,
        "next_page_token": page.next_page_token,
    })))
}

async fn get_meeting(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let meeting = console.client().get_meeting(&id).await?;
    let mut entry = meeting_json(&meeting, local_audio(&console, &id).await.is_some());
    entry["latest_job"] = latest_job(&console, &id)
        .await?
        .as_ref()
        .map_or(Value::Null, job_json);
    Ok(Json(entry))
}

#[derive(Deserialize)]
struct UploadQuery {
    name: String,
}

/// Longest title kept from a file name.
const MAX_TITLE_CHARS: usize = 200;

/// Creates a meeting named after the file and uploads the request body as its audio. The body is
/// written to the console's audio directory as it arrives (never held whole in memory), then sent
/// to the job service; when the service refuses it, the meeting is removed again and the service's
/// message is returned.
async fn upload_meeting(
    State(console): State<Console>,
    Query(query): Query<UploadQuery>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let title: String = query.name.trim().chars().take(MAX_TITLE_CHARS).collect();
    if title.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the file has no name",
        ));
    }
    let extension = FsPath::new(&title)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| "audio".to_string());
    let limit = console.client().server_info().await?.max_upload_bytes;
    let meeting = console.client().create_meeting(&title).await?;
    let path = console
        .inner
        .audio_dir
        .join(format!("{meeting}.{extension}"));
    let stored = async {
        spool(body, &path, limit).await?;
        Ok::<_, ApiError>(
            console
                .client()
                .upload_audio_file(&meeting, &path, &extension)
                .await?,
        )
    }
    .await;
    match stored {
        Ok(uploaded) => {
            let meeting_message = console.client().get_meeting(&meeting).await?;
            let mut entry = meeting_json(&meeting_message, true);
            entry["latest_job"] = Value::Null;
            Ok(Json(json!({
                "meeting": entry,
                "duration_seconds": uploaded.duration_seconds,
                "size_bytes": uploaded.size_bytes,
            })))
        }
        Err(error) => {
            // Nothing half-made is left behind: the meeting goes with its refused audio.
            let _ = tokio::fs::remove_file(&path).await;
            let _ = console.client().delete_meeting(&meeting).await;
            Err(error)
        }
    }
}

/// Writes `body` to `path`, refusing it past `limit` bytes.
async fn spool(body: Body, path: &FsPath, limit: u64) -> ApiResult<()> {
    let write_error = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot keep the upload in {}: {e}", path.display()),
        )
    };
    let mut file = tokio::fs::File::create(path).await.map_err(write_error)?;
    let mut stream = body.into_data_stream();
    let mut written: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the upload was interrupted: {e}"),
            )
        })?;
        written += chunk.len() as u64;
        if written > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the file is larger than the server accepts ({} MB at most)",
                    limit / 1_000_000
                ),
            ));
        }
        file.write_all(&chunk).await.map_err(write_error)?;
    }
    file.flush().await.map_err(write_error)?;
    if written == 0 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "the file is empty"));
    }
    Ok(())
}

/// The console's copy of a meeting's audio, if it uploaded it.
async fn local_audio(console: &Console, meeting_id: &str) -> Option<PathBuf> {
    // Only ids in canonical form name files, so a request cannot reach outside the directory.
    if meeting_id.len() != 36
        || !meeting_id
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return None;
    }
    let mut entries = tokio::fs::read_dir(&console.inner.audio_dir).await.ok()?;
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name
            .strip_prefix(meeting_id)
            .is_some_and(|rest| rest.starts_with('.'))
        {
            return Some(entry.path());
        }
    }
    None
}

async fn meeting_audio(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let path = local_audio(&console, &id).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this console has no copy of the meeting's audio (it was uploaded elsewhere)",
        )
    })?;
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mime = match path.extension().and_then(|e| e.to_str()) {
        Some("wav") => "audio/wav",
        Some("flac") => "audio/flac",
        Some("mp3") => "audio/mpeg",
        Some("ogg") | Some("oga") => "audio/ogg",
        _ => "application/octet-stream",
    };
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

async fn delete_meeting(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    console.client().delete_meeting(&id).await?;
    if let Some(path) = local_audio(&console, &id).await {
        let _ = tokio::fs::remove_file(path).await;
    }
    Ok(Json(json!({ "deleted": id })))
}

#[derive(Deserialize, Default)]
struct StartBody {
    speakers: Option<u32>,
    min_speakers: Option<u32>,
    max_speakers: Option<u32>,
}

async fn start_job(
    State(console): State<Console>,
    Path(id): Path<String>,
    body: Option<Json<StartBody>>,
) -> ApiResult<Json<Value>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let started = console
        .client()
        .start_job(
            &id,
            SpeakerRequest {
                exactly: body.speakers,
                min: body.min_speakers,
                max: body.max_speakers,
            },
        )
        .await?;
    Ok(Json(crate::output::started_json(&id, &started)))
}

async fn list_jobs(
    State(console): State<Console>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let status = match query.status.trim() {
        "" | "ALL" => pb::JobStatus::Unspecified,
        name => pb::JobStatus::from_str_name(&format!("JOB_STATUS_{name}")).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown job status '{name}'"),
            )
        })?,
    };
    let page = console
        .client()
        .list(pb::ListDiarizationJobsRequest {
            status: status as i32,
            page_size: 20,
            page_token: query.page_token,
            ..Default::default()
        })
        .await?;
    Ok(Json(page_json(&page)))
}

async fn job_status(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(job_json(&console.client().status(&id).await?)))
}

/// The job followed by the client, each of its events as one server-sent event (JSON); the stream
/// ends after the event that ends the follow. Each stream is its own follow: a page that goes away
/// stops it.
async fn job_events(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let handle = console.client().follow(&id);
    let events = futures::stream::unfold(handle, |mut handle| async move {
        let event = handle.next_event().await?;
        Some((
            Ok(Event::default().data(event_json(&event).to_string())),
            handle,
        ))
    });
    let mut stopping = console.inner.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    Sse::new(events.take_until(Box::pin(stopped))).keep_alive(KeepAlive::default())
}

/// Sends the cancel and answers with the job's confirmed final state.
async fn cancel_job(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let outcome = console.client().cancel(&id).await?;
    let cancelled = matches!(outcome, CancelOutcome::Cancelled(_));
    Ok(Json(json!({
        "cancelled": cancelled,
        "job": job_json(outcome.job()),
    })))
}

async fn job_result(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let result = console.client().result(&id).await?;
    Ok(Json(result_value(&result)))
}

fn result_value(result: &pb::DiarizationResult) -> Value {
    json!({
        "job_id": result.job_id,
        "meeting_id": result.meeting_id,
        "speaker_ids": result.speaker_ids,
        "turns": result.turns.iter().map(|t| json!({
            "start": t.start_seconds,
            "end": t.end_seconds,
            "speaker": t.speaker,
        })).collect::<Vec<_>>(),
    })
}

fn download(body: String, content_type: &'static str, file_name: String) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

async fn result_rttm(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let result = console.client().result(&id).await?;
    Ok(download(
        result.rttm,
        "text/plain; charset=utf-8",
        format!("{id}.rttm"),
    ))
}

async fn result_json(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let result = console.client().result(&id).await?;
    Ok(download(
        serde_json::to_string_pretty(&result_value(&result)).unwrap_or_default(),
        "application/json",
        format!("{id}.json"),
    ))
}
