//! MeetingService: meetings, their audio (checked before it is stored) and transcript segments.

use std::sync::Arc;

use noteflow_proto::v1 as pb;
use noteflow_proto::v1::meeting_service_server::MeetingService;
use noteflow_store::{JobFilter, JobState, MeetingId, SegmentInput, StoredAudio};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{self, meeting_not_found, parse_meeting_id, store_error};
use super::ServiceState;
use crate::caller::Caller;

const MAX_TITLE_CHARS: usize = 1000;
/// Segments per meeting. With the 64 KiB text limit this bounds what one meeting's transcript
/// costs; real meetings have a few thousand (a 3-hour meeting with a segment every 2 s has 5400).
const MAX_SEGMENTS: usize = 20_000;
const DEFAULT_SEGMENT_PAGE: u32 = 500;
const MAX_SEGMENT_PAGE: u32 = 1000;
const MAX_SEGMENT_TEXT_BYTES: usize = 64 * 1024;
const MAX_SPEAKER_LABEL_CHARS: usize = 200;
const MAX_FORMAT_HINT_CHARS: usize = 64;

pub struct Meetings {
    state: Arc<ServiceState>,
}

impl Meetings {
    pub fn new(state: Arc<ServiceState>) -> Self {
        Self { state }
    }

    async fn upload(
        &self,
        caller: Caller,
        mut stream: Streaming<pb::UploadAudioRequest>,
    ) -> Result<pb::UploadAudioResponse, Status> {
        let _slot = match self.state.uploads.try_acquire(caller.clone()) {
            Ok(slot) => slot,
            Err(refusal) => {
                self.state.metrics.upload_refused(refusal.reason());
                tracing::info!(%caller, reason = refusal.reason(), "upload refused: no free slot");
                let mut status = Status::resource_exhausted(refusal.to_string());
                status.metadata_mut().insert(
                    "grpc-retry-pushback-ms",
                    tonic::metadata::MetadataValue::from_static("2000"),
                );
                return Err(status);
            }
        };
        let _in_progress = self.state.metrics.upload_started();
        let limit = self.state.max_upload_bytes;
        let idle_timeout = self.state.upload_idle_timeout;
        let deadline = tokio::time::Instant::now() + self.state.upload_deadline;
        let mut meeting: Option<MeetingId> = None;
        let mut format_hint = String::new();
        let mut declared_total: Option<u64> = None;
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            // The slot is held only while chunks keep arriving: a stalled or trickling client is
            // cut off and its partial audio dropped.
            let next = tokio::select! {
                next = stream.next() => next,
                () = tokio::time::sleep(idle_timeout) => {
                    self.state.metrics.upload_refused("idle_timeout");
                    return Err(Status::deadline_exceeded(format!(
                        "no audio arrived for {} s, the server's idle timeout for uploads; the upload was ended and nothing was stored (send the chunks without pausing)",
                        idle_timeout.as_secs_f64()
                    )));
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.state.metrics.upload_refused("deadline");
                    return Err(Status::deadline_exceeded(format!(
                        "the upload took longer than {} s, the server's limit for one upload; it was ended and nothing was stored",
                        self.state.upload_deadline.as_secs_f64()
                    )));
                }
            };
            let Some(message) = next else { break };
            let message = message?;
            match meeting {
                None => {
                    let id = parse_meeting_id("meeting_id", &message.meeting_id)?;
                    // Fail early rather than after receiving the whole file.
                    if self
                        .state
                        .store
                        .get_meeting(id)
                        .await
                        .map_err(store_error)?
                        .is_none()
                    {
                        return Err(meeting_not_found(id));
                    }
                    meeting = Some(id);
                    if let Some(total) = message.total_bytes {
                        if total > limit as u64 {
                            return Err(too_large(limit));
                        }
                        declared_total = Some(total);
                    }
                }
                Some(id)
                    if !message.meeting_id.is_empty()
                        && message.meeting_id.trim() != id.to_string() =>
                {
                    return Err(Status::invalid_argument(format!(
                        "meeting_id changed within one upload (from {id} to '{}')",
                        message.meeting_id
                    )));
                }
                Some(_) => {}
            }
            if !message.format_hint.is_empty() {
                if message.format_hint.chars().count() > MAX_FORMAT_HINT_CHARS {
                    return Err(Status::invalid_argument("format_hint is too long"));
                }
                format_hint = message.format_hint;
            }
            if bytes.len() + message.chunk.len() > limit {
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&message.chunk);
            if let Some(total) = declared_total {
                if bytes.len() as u64 > total {
                    return Err(Status::invalid_argument(format!(
                        "the upload sent more than the {total} bytes its total_bytes declared; nothing was stored"
                    )));
                }
            }
        }
        let Some(meeting) = meeting else {
            return Err(Status::invalid_argument(
                "the upload stream was empty: no meeting_id and no audio",
            ));
        };
        if let Some(total) = declared_total {
            if bytes.len() as u64 != total {
                return Err(Status::invalid_argument(format!(
                    "the upload ended after {} of the {total} bytes its total_bytes declared (was the sender interrupted?); nothing was stored",
                    bytes.len()
                )));
            }
        }
        if bytes.is_empty() {
            return Err(Status::invalid_argument(
                "the upload contained no audio bytes",
            ));
        }
        let hint = normalise_hint(&format_hint);
        let (bytes, duration_secs, warnings) = check_audio(bytes, hint.clone()).await?;
        let size_bytes = bytes.len() as u64;
        self.state
            .store
            .put_audio(
                meeting,
                StoredAudio {
                    bytes,
                    duration_secs,
                    format_hint: hint,
                },
            )
            .await
            .map_err(store_error)?;
        tracing::info!(%meeting, size_bytes, duration_secs, ?warnings, "audio stored");
        Ok(pb::UploadAudioResponse {
            meeting_id: meeting.to_string(),
            size_bytes,
            duration_seconds: duration_secs,
            warnings,
        })
    }

    async fn import(
        &self,
        request: pb::ImportSegmentsRequest,
    ) -> Result<pb::ImportSegmentsResponse, Status> {
        let meeting = parse_meeting_id("meeting_id", &request.meeting_id)?;
        if request.segments.len() > MAX_SEGMENTS {
            return Err(Status::invalid_argument(format!(
                "too many segments ({}); a meeting may have at most {MAX_SEGMENTS}",
                request.segments.len()
            )));
        }
        let segments = request
            .segments
            .into_iter()
            .enumerate()
            .map(|(i, s)| validate_segment(i, s))
            .collect::<Result<Vec<_>, _>>()?;
        let count = self
            .state
            .store
            .replace_segments(meeting, segments)
            .await
            .map_err(store_error)?;
        Ok(pb::ImportSegmentsResponse {
            segment_count: count,
        })
    }

    async fn list_segments(
        &self,
        request: pb::ListSegmentsRequest,
    ) -> Result<pb::ListSegmentsResponse, Status> {
        let id = parse_meeting_id("meeting_id", &request.meeting_id)?;
        let page_size = match request.page_size {
            0 => DEFAULT_SEGMENT_PAGE,
            n if n > MAX_SEGMENT_PAGE => {
                return Err(Status::invalid_argument(format!(
                    "page_size must be at most {MAX_SEGMENT_PAGE}, got {n}"
                )))
            }
            n => n,
        };
        // A token is bound to its meeting: one from another meeting's listing is refused.
        let scope = format!("segments:{id}");
        let from = match request.page_token.trim() {
            "" => 0,
            token => self.state.page_tokens.redeem(&scope, token)?,
        };
        let meeting = self
            .state
            .store
            .get_meeting(id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| meeting_not_found(id))?;
        let count = meeting.segments.len();
        // Positions are segment indices (0..count in order), so a page continues after the last
        // index it held even if the transcript was re-imported meanwhile.
        let start = meeting
            .segments
            .partition_point(|s| i64::from(s.index) < from);
        let segments =
            convert::segments_within_budget(&meeting.segments[start..], page_size as usize);
        let next_page_token = match segments.last() {
            Some(last) if start + segments.len() < count => self
                .state
                .page_tokens
                .issue(&scope, i64::from(last.index) + 1),
            _ => String::new(),
        };
        Ok(pb::ListSegmentsResponse {
            segments,
            next_page_token,
            segment_count: count as u32,
        })
    }

    async fn delete(&self, id: MeetingId) -> Result<pb::DeleteMeetingResponse, Status> {
        let running = self
            .state
            .store
            .list_jobs(
                &JobFilter {
                    meeting_id: Some(id),
                    state: Some(JobState::Running),
                },
                100,
                None,
            )
            .await
            .map_err(store_error)?;
        if !self
            .state
            .store
            .delete_meeting(id)
            .await
            .map_err(store_error)?
        {
            return Err(meeting_not_found(id));
        }
        // The rows are gone; stop this process's runs of them without writing anything.
        for job in &running.jobs {
            self.state.runner.abandon(job.id);
            self.state.events.changed(job.id);
        }
        tracing::info!(meeting = %id, "meeting deleted");
        Ok(pb::DeleteMeetingResponse { deleted: true })
    }
}

/// INVALID_ARGUMENT rather than RESOURCE_EXHAUSTED: clients retry the latter, and sending the same
/// file again cannot succeed.
fn too_large(limit: usize) -> Status {
    Status::invalid_argument(format!(
        "the upload exceeds the server's limit of {} MiB; nothing was stored",
        limit / (1024 * 1024)
    ))
}

fn normalise_hint(hint: &str) -> Option<String> {
    let hint = hint.trim().to_ascii_lowercase();
    let hint = hint
        .rsplit('/')
        .next()
        .unwrap_or(&hint)
        .trim_start_matches('.');
    let hint = match hint {
        "" => return None,
        "x-wav" | "wave" | "vnd.wave" => "wav",
        "mpeg" | "mpeg3" | "x-mpeg-3" => "mp3",
        "x-flac" => "flac",
        "vorbis" => "ogg",
        other => other,
    };
    Some(hint.to_string())
}

/// Owned upload bytes the decoder can read without a copy; handed back afterwards.
struct SharedUpload(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedUpload {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Decodes the upload on a blocking thread to prove it is audio the engine can read; returns the
/// bytes, the audio's length in seconds and warnings for people about what was found.
async fn check_audio(
    bytes: Vec<u8>,
    hint: Option<String>,
) -> Result<(Vec<u8>, f64, Vec<String>), Status> {
    let shared = Arc::new(bytes);
    let for_decoder = SharedUpload(shared.clone());
    let decoded = tokio::task::spawn_blocking(move || {
        noteflow_diarize::audio::decode_bytes_with_report(for_decoder, hint.as_deref())
            .map(|(audio, report)| (audio.duration_secs(), report))
    })
    .await
    .map_err(|e| Status::internal(format!("audio check crashed: {e}")))?;
    let (duration, report) = decoded.map_err(|e| {
        Status::invalid_argument(format!(
            "the uploaded audio cannot be used: {e}; nothing was stored"
        ))
    })?;
    let warnings = decode_warnings(&report, duration);
    // The decoder's reference is dropped once decoding ends, so this is the only one left.
    let bytes = Arc::try_unwrap(shared).unwrap_or_else(|still_shared| (*still_shared).clone());
    Ok((bytes, duration, warnings))
}

/// What a person should know about audio that was accepted. A recording cut short is common (a
/// crash, a full disk, a closed laptop) and diarizing the part that exists is useful, so it is
/// stored with a warning rather than refused.
fn decode_warnings(report: &noteflow_diarize::audio::DecodeReport, duration: f64) -> Vec<String> {
    let mut warnings = Vec::new();
    if report.truncated {
        warnings.push(format!(
            "the audio is truncated: it ends before the length its header announces (was the recording interrupted?); the {duration:.1} s that decode were stored and will be diarized"
        ));
    }
    if report.skipped_packets + report.gaps > 0 {
        warnings.push(format!(
            "the audio is damaged in {} place(s); the damaged stretches were replaced by silence",
            report.skipped_packets + report.gaps
        ));
    }
    warnings
}

fn validate_segment(i: usize, s: pb::Segment) -> Result<SegmentInput, Status> {
    let bad = |why: String| Status::invalid_argument(format!("segments[{i}]: {why}"));
    if !s.start_seconds.is_finite() || !s.end_seconds.is_finite() {
        return Err(bad(
            "start_seconds and end_seconds must be finite numbers".into()
        ));
    }
    if s.start_seconds < 0.0 {
        return Err(bad(format!(
            "start_seconds ({}) is negative",
            s.start_seconds
        )));
    }
    if s.end_seconds <= s.start_seconds {
        return Err(bad(format!(
            "end_seconds ({}) must be after start_seconds ({})",
            s.end_seconds, s.start_seconds
        )));
    }
    if s.text.len() > MAX_SEGMENT_TEXT_BYTES {
        return Err(bad(format!(
            "text is longer than {MAX_SEGMENT_TEXT_BYTES} bytes"
        )));
    }
    let speaker = match s.speaker {
        Some(label) if label.chars().count() > MAX_SPEAKER_LABEL_CHARS => {
            return Err(bad(format!(
                "speaker is longer than {MAX_SPEAKER_LABEL_CHARS} characters"
            )));
        }
        Some(label) if label.trim().is_empty() => None,
        other => other,
    };
    Ok(SegmentInput {
        start: s.start_seconds,
        end: s.end_seconds,
        text: s.text,
        speaker,
    })
}

#[tonic::async_trait]
impl MeetingService for Meetings {
    async fn create_meeting(
        &self,
        request: Request<pb::CreateMeetingRequest>,
    ) -> Result<Response<pb::Meeting>, Status> {
        let title = request.into_inner().title;
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(Status::invalid_argument(format!(
                "title is longer than {MAX_TITLE_CHARS} characters"
            )));
        }
        let meeting = self
            .state
            .store
            .create_meeting(title.trim())
            .await
            .map_err(store_error)?;
        Ok(Response::new(convert::meeting(&meeting)))
    }

    async fn upload_audio(
        &self,
        request: Request<Streaming<pb::UploadAudioRequest>>,
    ) -> Result<Response<pb::UploadAudioResponse>, Status> {
        let caller = Caller::of(&request);
        self.upload(caller, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn import_segments(
        &self,
        request: Request<pb::ImportSegmentsRequest>,
    ) -> Result<Response<pb::ImportSegmentsResponse>, Status> {
        self.import(request.into_inner()).await.map(Response::new)
    }

    async fn get_meeting(
        &self,
        request: Request<pb::GetMeetingRequest>,
    ) -> Result<Response<pb::Meeting>, Status> {
        let id = parse_meeting_id("meeting_id", &request.get_ref().meeting_id)?;
        match self
            .state
            .store
            .get_meeting(id)
            .await
            .map_err(store_error)?
        {
            Some(meeting) => Ok(Response::new(convert::meeting(&meeting))),
            None => Err(meeting_not_found(id)),
        }
    }

    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        self.list_segments(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_meetings(
        &self,
        request: Request<pb::ListMeetingsRequest>,
    ) -> Result<Response<pb::ListMeetingsResponse>, Status> {
        let request = request.into_inner();
        let limit = convert::page_size(request.page_size)?;
        let after = match request.page_token.trim() {
            "" => None,
            token => Some(convert::decode_meeting_token(token)?),
        };
        let page = self
            .state
            .store
            .list_meetings(limit, after)
            .await
            .map_err(store_error)?;
        Ok(Response::new(pb::ListMeetingsResponse {
            meetings: page.meetings.iter().map(convert::meeting).collect(),
            next_page_token: page
                .next_after
                .map(convert::encode_meeting_token)
                .unwrap_or_default(),
        }))
    }

    async fn delete_meeting(
        &self,
        request: Request<pb::DeleteMeetingRequest>,
    ) -> Result<Response<pb::DeleteMeetingResponse>, Status> {
        let id = parse_meeting_id("meeting_id", &request.get_ref().meeting_id)?;
        self.delete(id).await.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_hints_are_normalised() {
        assert_eq!(normalise_hint("audio/x-wav").as_deref(), Some("wav"));
        assert_eq!(normalise_hint(".FLAC").as_deref(), Some("flac"));
        assert_eq!(normalise_hint("audio/mpeg").as_deref(), Some("mp3"));
        assert_eq!(normalise_hint("  "), None);
    }

    #[test]
    fn segments_are_checked_with_their_position_in_the_message() {
        let segment = |start, end| pb::Segment {
            start_seconds: start,
            end_seconds: end,
            ..Default::default()
        };
        assert!(validate_segment(0, segment(0.0, 1.0)).is_ok());
        let err = validate_segment(3, segment(2.0, 1.0)).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().starts_with("segments[3]: end_seconds (1)"),
            "{}",
            err.message()
        );
        assert!(validate_segment(0, segment(f64::NAN, 1.0)).is_err());
        assert!(validate_segment(0, segment(-1.0, 1.0)).is_err());
    }
}
