//! Store types to API messages, and API input to domain types (validated once, here).

use noteflow_proto::v1 as pb;
use noteflow_store::{
    IdError, Job, JobId, JobState, Meeting, MeetingCursor, MeetingId, Millis, Segment, StorageMode,
    StoreError,
};
use tonic::Status;

pub fn timestamp(millis: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn job_status(state: JobState) -> pb::JobStatus {
    match state {
        JobState::Queued => pb::JobStatus::Queued,
        JobState::Running => pb::JobStatus::Running,
        JobState::Completed => pb::JobStatus::Completed,
        JobState::Failed => pb::JobStatus::Failed,
        JobState::Cancelled => pb::JobStatus::Cancelled,
    }
}

pub fn storage_mode(mode: StorageMode) -> pb::StorageMode {
    match mode {
        StorageMode::Memory => pb::StorageMode::Memory,
        StorageMode::Sqlite => pb::StorageMode::Sqlite,
        StorageMode::Postgres => pb::StorageMode::Postgres,
    }
}

pub fn job(job: &Job, mode: StorageMode, warnings: &[String]) -> pb::DiarizationJob {
    pb::DiarizationJob {
        job_id: job.id.to_string(),
        meeting_id: job.meeting_id.to_string(),
        status: job_status(job.state) as i32,
        progress_percent: (job.progress * 100.0).clamp(0.0, 100.0),
        speaker_ids: job.speakers.clone(),
        segments_updated: job.segments_updated,
        error_message: job.error.clone().unwrap_or_default(),
        attempt: job.attempt,
        created_at: Some(timestamp(job.created_at)),
        started_at: job.started_at.map(timestamp),
        finished_at: job.finished_at.map(timestamp),
        storage_mode: storage_mode(mode) as i32,
        warnings: warnings.to_vec(),
        cancel_requested: job.cancel_requested,
    }
}

pub fn segment(segment: &Segment) -> pb::Segment {
    pb::Segment {
        index: segment.index,
        start_seconds: segment.start,
        end_seconds: segment.end,
        text: segment.text.clone(),
        speaker: segment.speaker.clone(),
    }
}

/// Most segments in a GetMeeting answer.
pub const MEETING_SEGMENTS: usize = 1000;

/// What the segments of one answer may take, so that with the rest of the message it stays well
/// under gRPC's default 4 MiB receive limit (a segment's text alone may be 64 KiB).
pub const SEGMENT_BYTES_BUDGET: usize = 3 * 1024 * 1024;

/// The first segments of `segments`, at most `max` and at most [`SEGMENT_BYTES_BUDGET`] encoded.
pub fn segments_within_budget(segments: &[Segment], max: usize) -> Vec<pb::Segment> {
    let mut used = 0;
    let mut out = Vec::new();
    for s in segments.iter().take(max) {
        let message = segment(s);
        // The segment's bytes plus its field tag and length prefix in the enclosing message.
        let len = prost::Message::encoded_len(&message);
        let framed = 1 + prost::length_delimiter_len(len) + len;
        if used + framed > SEGMENT_BYTES_BUDGET {
            break;
        }
        used += framed;
        out.push(message);
    }
    out
}

/// The meeting as GetMeeting answers it: its first segments only (see [`MEETING_SEGMENTS`]).
pub fn meeting(meeting: &Meeting) -> pb::Meeting {
    let segments = segments_within_budget(&meeting.segments, MEETING_SEGMENTS);
    pb::Meeting {
        id: meeting.id.to_string(),
        title: meeting.title.clone(),
        created_at: Some(timestamp(meeting.created_at)),
        has_audio: meeting.audio.is_some(),
        audio_duration_seconds: meeting.audio.as_ref().map_or(0.0, |a| a.duration_secs),
        audio_size_bytes: meeting.audio.as_ref().map_or(0, |a| a.size_bytes),
        segment_count: meeting.segments.len() as u32,
        segments_truncated: segments.len() < meeting.segments.len(),
        segments,
    }
}

/// The default and largest page of a listing.
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 500;

/// A listing's `page_size`: 0 means the default; more than the maximum is refused.
pub fn page_size(requested: u32) -> Result<u32, Status> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n > MAX_PAGE_SIZE => Err(Status::invalid_argument(format!(
            "page_size must be at most {MAX_PAGE_SIZE}, got {n}"
        ))),
        n => Ok(n),
    }
}

/// A meeting listing's page token: opaque to clients; inside, the position of the last meeting
/// listed (a forged one only moves the listing, it reveals nothing).
pub fn encode_meeting_token(cursor: MeetingCursor) -> String {
    let plain = format!("{}.{}", cursor.created_at, cursor.id);
    plain.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_meeting_token(token: &str) -> Result<MeetingCursor, Status> {
    let refused = || Status::invalid_argument("page_token is not one this server issued");
    if token.len() % 2 != 0 || !token.is_ascii() {
        return Err(refused());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| refused())?;
    let plain = String::from_utf8(bytes).map_err(|_| refused())?;
    let (created_at, id) = plain.split_once('.').ok_or_else(refused)?;
    Ok(MeetingCursor {
        created_at: created_at.parse().map_err(|_| refused())?,
        id: id.parse().map_err(|_| refused())?,
    })
}

fn invalid_id(field: &str, e: IdError) -> Status {
    if e.value.is_empty() {
        Status::invalid_argument(format!("{field} is required"))
    } else {
        Status::invalid_argument(format!("{field}: {e}"))
    }
}

/// Whether `value` is a UUID in the canonical text form the server writes: 36 characters, lower-case
/// hexadecimal digits in 8-4-4-4-12 groups joined by hyphens. The UUID parser also reads braces,
/// `urn:uuid:`, upper case and the unhyphenated form; accepting those would give one id several
/// spellings (in logs, in clients' caches, in comparisons such as an upload's repeated meeting_id).
fn is_canonical_uuid(value: &str) -> bool {
    value.len() == 36
        && value.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

fn parse_id<T: std::str::FromStr<Err = IdError>>(
    field: &str,
    kind: &'static str,
    value: &str,
) -> Result<T, Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field} is required")));
    }
    if !is_canonical_uuid(value) {
        let shown: String = value.chars().take(80).collect();
        return Err(Status::invalid_argument(format!(
            "{field}: '{shown}' is not a valid {kind} id (expected a UUID in its canonical form: lower-case hexadecimal digits in 8-4-4-4-12 groups joined by hyphens, such as 123e4567-e89b-12d3-a456-426614174000)"
        )));
    }
    value.parse().map_err(|e| invalid_id(field, e))
}

pub fn parse_meeting_id(field: &str, value: &str) -> Result<MeetingId, Status> {
    parse_id(field, "meeting", value)
}

pub fn parse_job_id(field: &str, value: &str) -> Result<JobId, Status> {
    parse_id(field, "job", value)
}

pub fn job_not_found(id: JobId) -> Status {
    Status::not_found(format!("diarization job {id} not found"))
}

pub fn meeting_not_found(id: MeetingId) -> Status {
    Status::not_found(format!("meeting {id} not found"))
}

/// Store failures as gRPC statuses: a client's mistake gets its own code and the store's message;
/// only the server's own failures are INTERNAL (or UNAVAILABLE when the database is busy or
/// unreachable, which a retry can fix).
pub fn store_error(e: StoreError) -> Status {
    let message = e.to_string();
    match e {
        StoreError::MeetingNotFound(_) => Status::not_found(message),
        StoreError::NoAudio(_) | StoreError::MeetingBusy(_) => Status::failed_precondition(message),
        StoreError::QueueFull { .. } => {
            let mut status = Status::resource_exhausted(message);
            // gRPC's retry pushback hint, in milliseconds.
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", "5000".parse().expect("ascii"));
            status
        }
        StoreError::RequestIdConflict { .. } => Status::already_exists(message),
        StoreError::InvalidInput(_) => Status::invalid_argument(message),
        ref busy if busy.is_busy() => {
            Status::unavailable(format!("the database is busy; retry shortly ({message})"))
        }
        ref passing if passing.is_retryable() => Status::unavailable(format!(
            "the database cannot be reached at the moment; retry shortly ({message})"
        )),
        other => {
            tracing::error!(error = %other, "store failure");
            Status::internal(format!("the server could not access its database: {other}"))
        }
    }
}

#[cfg(test)]
mod store_error_tests {
    use noteflow_store::BackendErrorKind;
    use tonic::Code;

    use super::*;

    #[test]
    fn passing_database_failures_are_unavailable_and_lasting_ones_internal() {
        let code = |kind| store_error(StoreError::backend(kind, "the driver's message")).code();
        assert_eq!(code(BackendErrorKind::Contention), Code::Unavailable);
        assert_eq!(code(BackendErrorKind::Unavailable), Code::Unavailable);
        assert_eq!(code(BackendErrorKind::Other), Code::Internal);
    }

    #[test]
    fn only_the_canonical_form_of_an_id_is_accepted() {
        let canonical = "123e4567-e89b-12d3-a456-426614174000";
        assert!(parse_job_id("job_id", canonical).is_ok());
        for other in [
            "123E4567-E89B-12D3-A456-426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
            "123e4567e89b12d3a456426614174000",
            " 123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400g",
            "123e4567+e89b-12d3-a456-426614174000",
        ] {
            let e = parse_meeting_id("meeting_id", other).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{other}");
            assert!(
                e.message().contains("canonical form") && e.message().contains(canonical),
                "{}",
                e.message()
            );
        }
        assert_eq!(
            parse_job_id("job_id", "").unwrap_err().message(),
            "job_id is required"
        );
    }
}

#[cfg(test)]
mod page_token_tests {
    use super::*;

    #[test]
    fn meeting_tokens_round_trip_and_strangers_are_refused() {
        let cursor = MeetingCursor {
            created_at: 1_764_000_000_123,
            id: "123e4567-e89b-12d3-a456-426614174000".parse().unwrap(),
        };
        let token = encode_meeting_token(cursor);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(decode_meeting_token(&token).unwrap(), cursor);
        for stranger in ["", "zz", "abc", "6162", "p12", "é0"] {
            let refused = decode_meeting_token(stranger).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{stranger}");
        }
    }
}
