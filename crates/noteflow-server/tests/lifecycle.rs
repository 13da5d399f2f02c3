//! The job lifecycle through the real server over real gRPC, with a controllable diarizer so that
//! timing is deterministic: cancel (queued, running, racing completion), failures, timeouts,
//! idempotent starts, watch, listing, recovery after a restart, memory mode and metrics.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use noteflow_proto::v1 as pb;
use noteflow_server::testing::ControlledDiarizer;
use noteflow_server::MEMORY_MODE_WARNING;
use support::*;
use tokio_stream::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

fn blocking() -> Arc<ControlledDiarizer> {
    Arc::new(ControlledDiarizer::blocking())
}

async fn start_job(jobs: &mut Jobs, meeting: &str) -> String {
    jobs.refine_speaker_diarization(refine(meeting))
        .await
        .unwrap()
        .into_inner()
        .job_id
}

#[tokio::test]
async fn a_job_runs_to_completion_and_relabels_the_transcript() {
    let diarizer = Arc::new(ControlledDiarizer::completing());
    diarizer.speakers(2);
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let meeting = meeting_with_audio(&mut meetings, 4.0).await;
    // The double's turns: SPEAKER_00 0-1 s, SPEAKER_01 1-2 s, SPEAKER_00 2-3 s, SPEAKER_01 3-4 s.
    let segments = [
        (0.0, 0.9, None),
        (1.1, 1.9, Some("old")),
        (2.0, 2.8, None),
        (9.0, 9.5, Some("kept")),
    ]
    .into_iter()
    .map(
        |(start, end, speaker): (f64, f64, Option<&str>)| pb::Segment {
            start_seconds: start,
            end_seconds: end,
            text: "words".into(),
            speaker: speaker.map(String::from),
            index: 0,
        },
    )
    .collect();
    meetings
        .import_segments(pb::ImportSegmentsRequest {
            meeting_id: meeting.clone(),
            segments,
        })
        .await
        .unwrap();

    let started = jobs
        .refine_speaker_diarization(refine(&meeting))
        .await
        .unwrap()
        .into_inner();
    assert!(started.created);
    assert_eq!(started.storage_mode, pb::StorageMode::Sqlite as i32);
    assert!(started.warnings.is_empty());
    let done = wait_until(&mut jobs, &started.job_id, WAIT, is_terminal).await;
    assert!(is_status(&done, pb::JobStatus::Completed), "{done:?}");
    assert_eq!(done.speaker_ids, ["SPEAKER_00", "SPEAKER_01"]);
    assert_eq!(done.segments_updated, 3);
    assert_eq!(done.progress_percent, 100.0);
    assert_eq!(done.attempt, 1);
    assert!(done.started_at.is_some() && done.finished_at.is_some());

    let labels: Vec<Option<String>> = meetings
        .get_meeting(pb::GetMeetingRequest {
            meeting_id: meeting.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .segments
        .into_iter()
        .map(|s| s.speaker)
        .collect();
    let label = |s: &str| Some(s.to_string());
    assert_eq!(
        labels,
        [
            label("SPEAKER_00"),
            label("SPEAKER_01"),
            label("SPEAKER_00"),
            label("kept")
        ]
    );

    let result = jobs
        .get_diarization_result(pb::GetDiarizationResultRequest {
            job_id: started.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(result.turns.len(), 4);
    assert_eq!(result.rttm.lines().count(), 4);
    assert!(
        result
            .rttm
            .starts_with(&format!("SPEAKER {meeting} 1 0.000 1.000")),
        "{}",
        result.rttm
    );
    server.stop().await;
}

fn code_and_message<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> (tonic::Code, String) {
    let e = result.unwrap_err();
    (e.code(), e.message().to_string())
}

#[tokio::test]
async fn every_mistake_gets_its_own_status_code_and_the_server_keeps_working() {
    use tonic::Code;
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |c| {
        c.max_queued = 1;
        c.max_upload_bytes = 200_000;
        c.max_concurrent_uploads = 1;
    })
    .await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let unknown = "123e4567-e89b-12d3-a456-426614174000";

    // Ids.
    let (code, message) = code_and_message(
        jobs.get_diarization_job_status(pb::GetDiarizationJobStatusRequest {
            job_id: unknown.into(),
        })
        .await,
    );
    assert_eq!(code, Code::NotFound);
    assert!(message.contains(unknown), "{message}");
    let (code, message) = code_and_message(
        jobs.get_diarization_job_status(pb::GetDiarizationJobStatusRequest {
            job_id: "job-42".into(),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.starts_with("job_id: 'job-42' is not a valid job id"),
        "{message}"
    );
    let (code, message) = code_and_message(
        jobs.cancel_diarization_job(pb::CancelDiarizationJobRequest {
            job_id: String::new(),
        })
        .await,
    );
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "job_id is required")
    );
    let (code, _) = code_and_message(
        jobs.cancel_diarization_job(pb::CancelDiarizationJobRequest {
            job_id: unknown.into(),
        })
        .await,
    );
    assert_eq!(code, Code::NotFound);
    let (code, _) = code_and_message(
        meetings
            .get_meeting(pb::GetMeetingRequest {
                meeting_id: unknown.into(),
            })
            .await,
    );
    assert_eq!(code, Code::NotFound);
    // Only the canonical spelling of an id: the same UUID in upper case is not accepted.
    let (code, message) = code_and_message(
        meetings
            .get_meeting(pb::GetMeetingRequest {
                meeting_id: unknown.to_uppercase(),
            })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("canonical form"), "{message}");
    let (code, _) = code_and_message(
        meetings
            .delete_meeting(pb::DeleteMeetingRequest {
                meeting_id: "x".into(),
            })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    let (code, _) = code_and_message(jobs.refine_speaker_diarization(refine(unknown)).await);
    assert_eq!(code, Code::NotFound);

    // A meeting without audio, and bad uploads that store nothing.
    let meeting = meetings
        .create_meeting(pb::CreateMeetingRequest { title: "m".into() })
        .await
        .unwrap()
        .into_inner()
        .id;
    let (code, message) = code_and_message(jobs.refine_speaker_diarization(refine(&meeting)).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("no audio"), "{message}");
    let e = upload(
        &mut meetings,
        &meeting,
        b"this is not audio at all, just text",
        "wav",
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("cannot be used"), "{}", e.message());
    let e = upload(&mut meetings, &meeting, b"", "").await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = upload(&mut meetings, &meeting, &tone_wav(10.0), "wav")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("limit"), "{}", e.message());
    let e = upload(&mut meetings, unknown, &tone_wav(1.0), "wav")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let got = meetings
        .get_meeting(pb::GetMeetingRequest {
            meeting_id: meeting.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!got.has_audio, "a failed upload stored something");
    // While one upload is open, a second is refused (the server bounds the audio it holds).
    let open_upload = |meetings: &Meetings| {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.try_send(pb::UploadAudioRequest {
            meeting_id: meeting.clone(),
            format_hint: String::new(),
            chunk: vec![0; 10],
            total_bytes: None,
        })
        .unwrap();
        let mut client = meetings.clone();
        let task = tokio::spawn(async move {
            client
                .upload_audio(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
        });
        (tx, task)
    };
    let (open_tx, open) = open_upload(&meetings);
    // The open upload holds the only slot once the server counts it in progress.
    let text = server
        .wait_for_metric("noteflow_uploads_in_progress", 1.0, WAIT)
        .await;
    assert_eq!(
        metric_value(&text, "noteflow_uploads_in_progress"),
        Some(1.0),
        "{text}"
    );
    let refused = upload(&mut meetings, &meeting, &tone_wav(1.0), "wav")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("too many uploads"),
        "{}",
        refused.message()
    );
    drop(open_tx);
    let e = open.await.unwrap().unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "ten zero bytes are not audio"
    );

    // Bad parameters.
    upload(&mut meetings, &meeting, &tone_wav(1.0), "wav")
        .await
        .unwrap();
    for (request, needle) in [
        (
            pb::RefineSpeakerDiarizationRequest {
                num_speakers: Some(0),
                ..refine(&meeting)
            },
            "between 1 and",
        ),
        (
            pb::RefineSpeakerDiarizationRequest {
                num_speakers: Some(65),
                ..refine(&meeting)
            },
            "between 1 and",
        ),
        (
            pb::RefineSpeakerDiarizationRequest {
                min_speakers: Some(4),
                max_speakers: Some(2),
                ..refine(&meeting)
            },
            "greater than",
        ),
        (
            pb::RefineSpeakerDiarizationRequest {
                num_speakers: Some(2),
                min_speakers: Some(1),
                ..refine(&meeting)
            },
            "cannot be combined",
        ),
        (
            pb::RefineSpeakerDiarizationRequest {
                request_id: "r".repeat(129),
                ..refine(&meeting)
            },
            "request_id",
        ),
    ] {
        let (code, message) = code_and_message(jobs.refine_speaker_diarization(request).await);
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.contains(needle), "{message}");
    }
    let bad_segment = pb::Segment {
        start_seconds: 5.0,
        end_seconds: 1.0,
        ..Default::default()
    };
    let (code, message) = code_and_message(
        meetings
            .import_segments(pb::ImportSegmentsRequest {
                meeting_id: meeting.clone(),
                segments: vec![bad_segment],
            })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.starts_with("segments[0]"), "{message}");
    let (code, _) = code_and_message(
        jobs.list_diarization_jobs(pb::ListDiarizationJobsRequest {
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    let (code, _) = code_and_message(
        jobs.list_diarization_jobs(pb::ListDiarizationJobsRequest {
            page_size: 501,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    let (code, _) = code_and_message(
        jobs.list_diarization_jobs(pb::ListDiarizationJobsRequest {
            status: 42,
            ..Default::default()
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);

    // A full queue: one running, one queued (the limit), the third refused.
    let running = start_job(&mut jobs, &meeting).await;
    assert!(diarizer.wait_for_runs(1, WAIT).await);
    let (code, _) = code_and_message(
        jobs.get_diarization_result(pb::GetDiarizationResultRequest {
            job_id: running.clone(),
        })
        .await,
    );
    assert_eq!(code, Code::FailedPrecondition);
    let e = upload(&mut meetings, &meeting, &tone_wav(1.0), "wav")
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Code::FailedPrecondition,
        "audio replaced under a running job"
    );
    let (code, message) = code_and_message(
        meetings
            .import_segments(pb::ImportSegmentsRequest {
                meeting_id: meeting.clone(),
                segments: vec![],
            })
            .await,
    );
    assert_eq!(
        code,
        Code::FailedPrecondition,
        "segments replaced under a running job: {message}"
    );
    let second = meeting_with_audio(&mut meetings, 1.0).await;
    let queued = start_job(&mut jobs, &second).await;
    let third = meeting_with_audio(&mut meetings, 1.0).await;
    let e = jobs
        .refine_speaker_diarization(refine(&third))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.metadata().get("grpc-retry-pushback-ms").is_some());

    // Nothing was harmed: both jobs complete.
    diarizer.release();
    for job in [running, queued] {
        let done = wait_until(&mut jobs, &job, WAIT, is_terminal).await;
        assert!(is_status(&done, pb::JobStatus::Completed), "{done:?}");
    }
    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"noteflow_rpc_requests_total{method="GetDiarizationJobStatus",code="NotFound"}"#
        ),
        Some(1.0)
    );
    assert!(
        !metrics.contains(r#"code="Internal""#),
        "a user's mistake became INTERNAL:\n{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_retried_start_returns_the_same_job() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let meeting = meeting_with_audio(&mut meetings, 1.0).await;
    let with_key = pb::RefineSpeakerDiarizationRequest {
        request_id: "req-1".into(),
        ..refine(&meeting)
    };

    let first = jobs
        .refine_speaker_diarization(with_key.clone())
        .await
        .unwrap()
        .into_inner();
    let retry = jobs
        .refine_speaker_diarization(with_key.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(first.created && !retry.created);
    assert_eq!(first.job_id, retry.job_id);
    // Another start while that job is active returns it too.
    let other = jobs
        .refine_speaker_diarization(refine(&meeting))
        .await
        .unwrap()
        .into_inner();
    assert!(!other.created);
    assert_eq!(other.job_id, first.job_id);
    // The same key for another meeting is a client bug.
    let second_meeting = meeting_with_audio(&mut meetings, 1.0).await;
    let e = jobs
        .refine_speaker_diarization(pb::RefineSpeakerDiarizationRequest {
            request_id: "req-1".into(),
            ..refine(&second_meeting)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::AlreadyExists);

    // The same key with other settings is a different request.
    let e = jobs
        .refine_speaker_diarization(pb::RefineSpeakerDiarizationRequest {
            num_speakers: Some(3),
            ..with_key.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("other speaker settings"),
        "{}",
        e.message()
    );

    diarizer.release();
    wait_until(&mut jobs, &first.job_id, WAIT, is_terminal).await;
    // After it ended, the same key still names that job; a start without it makes a new job.
    let again = jobs
        .refine_speaker_diarization(with_key)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.job_id.as_str(), again.created),
        (first.job_id.as_str(), false)
    );
    assert_eq!(again.status, pb::JobStatus::Completed as i32);
    let fresh = jobs
        .refine_speaker_diarization(refine(&meeting))
        .await
        .unwrap()
        .into_inner();
    assert!(fresh.created);
    assert_ne!(fresh.job_id, first.job_id);
    let listed = jobs
        .list_diarization_jobs(pb::ListDiarizationJobsRequest {
            meeting_id: meeting,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.jobs.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn cancelling_a_queued_job_is_immediate_and_it_never_runs() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let first = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    assert!(diarizer.wait_for_runs(1, WAIT).await);
    let queued = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;

    let answer = jobs
        .cancel_diarization_job(pb::CancelDiarizationJobRequest {
            job_id: queued.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.cancelled);
    assert_eq!(answer.status, pb::JobStatus::Cancelled as i32);
    assert_eq!(
        status(&mut jobs, &queued).await.error_message,
        "cancelled before it started"
    );

    // Queued behind the cancelled job: the runner takes the oldest job first, so once this one has
    // run, the runner has passed the cancelled one.
    let later = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    diarizer.release();
    let done = wait_until(&mut jobs, &first, WAIT, is_terminal).await;
    assert!(is_status(&done, pb::JobStatus::Completed));
    let later_done = wait_until(&mut jobs, &later, WAIT, is_terminal).await;
    assert!(is_status(&later_done, pb::JobStatus::Completed));
    assert_eq!(
        diarizer.runs_started(),
        2,
        "the cancelled job ran (only the first and the later one may)"
    );

    // Cancelling a terminal job changes nothing and says so.
    let again = jobs
        .cancel_diarization_job(pb::CancelDiarizationJobRequest {
            job_id: first.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.cancelled);
    assert_eq!(again.status, pb::JobStatus::Completed as i32);
    assert!(again.message.contains("already ended"), "{}", again.message);
    server.stop().await;
}

#[tokio::test]
async fn cancelling_a_running_job_answers_with_its_final_state_within_the_bound() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let job = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    assert!(diarizer.wait_for_runs(1, WAIT).await);
    wait_until(&mut jobs, &job, WAIT, |j| {
        is_status(j, pb::JobStatus::Running)
    })
    .await;

    let asked = Instant::now();
    let answer = jobs
        .cancel_diarization_job(pb::CancelDiarizationJobRequest {
            job_id: job.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "cancel took {:?}",
        asked.elapsed()
    );
    assert!(answer.cancelled, "{answer:?}");
    assert_eq!(answer.status, pb::JobStatus::Cancelled as i32);
    let stored = status(&mut jobs, &job).await;
    assert!(is_status(&stored, pb::JobStatus::Cancelled));
    assert_eq!(stored.error_message, "cancelled while running");
    assert_eq!(diarizer.runs_finished(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_worker_that_does_not_stop_in_time_gets_an_honest_answer() {
    let diarizer = blocking();
    diarizer.honour_cancel(false);
    let server = TestServer::start(diarizer.clone(), |c| {
        c.cancel_wait = Duration::from_millis(300)
    })
    .await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let job = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    assert!(diarizer.wait_for_runs(1, WAIT).await);

    let answer = jobs
        .cancel_diarization_job(pb::CancelDiarizationJobRequest {
            job_id: job.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.cancelled);
    assert_eq!(answer.status, pb::JobStatus::Running as i32);
    assert!(answer.job.unwrap().cancel_requested);
    // It then finishes: a result that arrives is kept, and the stored state says so.
    diarizer.release();
    let done = wait_until(&mut jobs, &job, WAIT, is_terminal).await;
    assert!(is_status(&done, pb::JobStatus::Completed), "{done:?}");
    server.stop().await;
}

/// Rounds of cancel-versus-completion on one server: in some the cancel is recorded before the run
/// may finish, in some the run finishes first, in the rest both go at once. Every answer must match
/// the stored final state, and both outcomes must occur.
async fn cancel_races(server: TestServer, diarizer: Arc<ControlledDiarizer>) {
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..24 {
        diarizer.block_again();
        let meeting = meeting_with_audio(&mut meetings, 0.5).await;
        let job = start_job(&mut jobs, &meeting).await;
        assert!(diarizer.wait_for_runs(round + 1, WAIT).await);
        let mut canceller = jobs.clone();
        let job_id = job.clone();
        if round % 3 == 1 {
            diarizer.release();
            wait_until(&mut jobs, &job, WAIT, is_terminal).await;
        }
        let cancel = tokio::spawn(async move {
            canceller
                .cancel_diarization_job(pb::CancelDiarizationJobRequest { job_id })
                .await
                .unwrap()
                .into_inner()
        });
        if round % 3 == 0 {
            // The cancel reaches the running job before it may finish.
            wait_until(&mut jobs, &job, WAIT, |j| {
                j.cancel_requested || is_terminal(j)
            })
            .await;
        }
        diarizer.release();
        let answer = cancel.await.unwrap();
        let stored = wait_until(&mut jobs, &job, WAIT, is_terminal).await;
        assert_eq!(
            answer.status, stored.status,
            "round {round}: answered {answer:?}, stored {stored:?}"
        );
        assert_eq!(
            answer.cancelled,
            stored.status == pb::JobStatus::Cancelled as i32
        );
        seen.insert(pb::JobStatus::try_from(stored.status).unwrap());
    }
    assert_eq!(
        seen,
        [pb::JobStatus::Completed, pb::JobStatus::Cancelled].into(),
        "final states seen"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_cancel_racing_completion_always_reports_the_stored_final_state_on_sqlite() {
    let diarizer = blocking();
    cancel_races(TestServer::start(diarizer.clone(), |_| {}).await, diarizer).await;
}

#[tokio::test]
async fn a_cancel_racing_completion_always_reports_the_stored_final_state_in_memory() {
    let diarizer = blocking();
    cancel_races(
        TestServer::start_memory(diarizer.clone(), |_| {}).await,
        diarizer,
    )
    .await;
}

#[tokio::test]
async fn failures_and_timeouts_end_the_job_with_a_message() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |c| {
        c.runner.timeout_base = Duration::from_millis(300);
        c.runner.timeout_per_audio_second = 0.0;
    })
    .await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);

    let slow = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    let timed_out = wait_until(&mut jobs, &slow, WAIT, is_terminal).await;
    assert!(
        is_status(&timed_out, pb::JobStatus::Failed),
        "{timed_out:?}"
    );
    assert!(
        timed_out.error_message.starts_with("timed out after"),
        "{}",
        timed_out.error_message
    );

    diarizer.fail_with("the model exploded");
    diarizer.release();
    let failing = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    let failed = wait_until(&mut jobs, &failing, WAIT, is_terminal).await;
    assert!(is_status(&failed, pb::JobStatus::Failed));
    assert_eq!(failed.error_message, "the model exploded");

    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"noteflow_jobs{state="FAILED"}"#),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"noteflow_job_duration_seconds_count{outcome="failed"}"#
        ),
        Some(2.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn jobs_run_at_most_concurrency_at_once() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |c| c.runner.concurrency = 2).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(start_job(&mut jobs, &meeting_with_audio(&mut meetings, 0.5).await).await);
    }
    assert!(diarizer.wait_for_runs(2, WAIT).await);
    assert_eq!(diarizer.runs_started(), 2);
    let queued = jobs
        .list_diarization_jobs(pb::ListDiarizationJobsRequest {
            status: pb::JobStatus::Queued as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.jobs.len(), 1);
    assert_eq!(queued.jobs[0].job_id, ids[2], "the oldest jobs run first");
    diarizer.release();
    for id in &ids {
        assert!(is_status(
            &wait_until(&mut jobs, id, WAIT, is_terminal).await,
            pb::JobStatus::Completed
        ));
    }
    // Over the whole test rather than at one moment: the first two runs were held until release,
    // so a third run starting early would have overlapped them.
    assert_eq!(diarizer.most_runs_at_once(), 2);
    server.stop().await;
}

#[tokio::test]
async fn watch_streams_every_change_until_the_job_ends() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let job = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    let mut stream = jobs
        .watch_diarization_job(pb::WatchDiarizationJobRequest {
            job_id: job.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert!(
        first.status == pb::JobStatus::Queued as i32
            || first.status == pb::JobStatus::Running as i32
    );
    let mut updates = vec![first];
    // Read until the stream has shown RUNNING, then let the job finish.
    while !is_status(updates.last().unwrap(), pb::JobStatus::Running) {
        updates.push(
            within(WAIT, "RUNNING on the stream", stream.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    diarizer.release();
    while let Some(update) = within(WAIT, "watch", stream.next()).await {
        updates.push(update.unwrap());
    }
    let last = updates.last().unwrap();
    assert!(is_status(last, pb::JobStatus::Completed), "{updates:?}");
    assert!(
        updates.iter().any(|u| is_status(u, pb::JobStatus::Running)),
        "{updates:?}"
    );
    let progress: Vec<f32> = updates.iter().map(|u| u.progress_percent).collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {progress:?}"
    );

    // A terminal job: its state once, then the end. An unknown job: NOT_FOUND.
    let mut again = jobs
        .watch_diarization_job(pb::WatchDiarizationJobRequest { job_id: job })
        .await
        .unwrap()
        .into_inner();
    assert!(is_status(
        &again.next().await.unwrap().unwrap(),
        pb::JobStatus::Completed
    ));
    assert!(within(WAIT, "end of stream", again.next()).await.is_none());
    let e = jobs
        .watch_diarization_job(pb::WatchDiarizationJobRequest {
            job_id: "123e4567-e89b-12d3-a456-426614174000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn listing_filters_and_pages_newest_first() {
    let server = TestServer::start(Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let meeting = meeting_with_audio(&mut meetings, 0.5).await;
    let mut started = Vec::new();
    for _ in 0..5 {
        let id = start_job(&mut jobs, &meeting).await;
        wait_until(&mut jobs, &id, WAIT, is_terminal).await;
        started.push(id);
    }
    let other = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 0.5).await).await;
    wait_until(&mut jobs, &other, WAIT, is_terminal).await;

    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = jobs
            .list_diarization_jobs(pb::ListDiarizationJobsRequest {
                meeting_id: meeting.clone(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.jobs.len() <= 2);
        listed.extend(page.jobs.into_iter().map(|j| j.job_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    started.reverse();
    assert_eq!(listed, started);
    // A token continues only its own listing: with another filter, or made up, it is refused.
    let first = jobs
        .list_diarization_jobs(pb::ListDiarizationJobsRequest {
            meeting_id: meeting.clone(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for request in [
        pb::ListDiarizationJobsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            ..Default::default()
        },
        pb::ListDiarizationJobsRequest {
            meeting_id: meeting.clone(),
            status: pb::JobStatus::Completed as i32,
            page_size: 2,
            page_token: first.next_page_token.clone(),
        },
        pb::ListDiarizationJobsRequest {
            meeting_id: meeting.clone(),
            page_size: 2,
            // The old format, which named the position in clear.
            page_token: "p1".into(),
            ..Default::default()
        },
    ] {
        let e = jobs.list_diarization_jobs(request).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(
            e.message().starts_with("page_token is not valid"),
            "{}",
            e.message()
        );
    }
    let completed = jobs
        .list_diarization_jobs(pb::ListDiarizationJobsRequest {
            status: pb::JobStatus::Completed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(completed.jobs.len(), 6);
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_meeting_stops_its_job_and_removes_everything() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let meeting = meeting_with_audio(&mut meetings, 1.0).await;
    let job = start_job(&mut jobs, &meeting).await;
    assert!(diarizer.wait_for_runs(1, WAIT).await);

    meetings
        .delete_meeting(pb::DeleteMeetingRequest {
            meeting_id: meeting.clone(),
        })
        .await
        .unwrap();
    let e = jobs
        .get_diarization_job_status(pb::GetDiarizationJobStatusRequest { job_id: job })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = meetings
        .get_meeting(pb::GetMeetingRequest {
            meeting_id: meeting.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = meetings
        .delete_meeting(pb::DeleteMeetingRequest {
            meeting_id: meeting,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(
        diarizer.wait_for_finished(1, WAIT).await,
        "the deleted meeting's run did not stop"
    );

    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(&metrics, "noteflow_stale_writes_total"),
        Some(0.0),
        "a delete is not a stale worker"
    );
    // The runner is free again.
    diarizer.release();
    let next = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    assert!(is_status(
        &wait_until(&mut jobs, &next, WAIT, is_terminal).await,
        pb::JobStatus::Completed
    ));
    server.stop().await;
}

#[tokio::test]
async fn a_graceful_restart_gives_the_running_job_back_without_using_an_attempt() {
    let diarizer = blocking();
    let server = TestServer::start(diarizer.clone(), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let job = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    assert!(diarizer.wait_for_runs(1, WAIT).await);
    let queued = start_job(&mut jobs, &meeting_with_audio(&mut meetings, 1.0).await).await;
    let dir = server.stop().await.unwrap();
    assert_eq!(
        diarizer.runs_finished(),
        1,
        "the run was stopped by the shutdown"
    );

    let server =
        TestServer::start_in(dir, Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let mut jobs = server.jobs().await;
    for id in [&job, &queued] {
        let done = wait_until(&mut jobs, id, WAIT, is_terminal).await;
        assert!(is_status(&done, pb::JobStatus::Completed), "{done:?}");
        assert_eq!(
            done.attempt, 1,
            "a graceful stop is not an interruption of the job"
        );
    }
    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"noteflow_jobs_recovered_total{action="requeued"}"#
        ),
        Some(0.0),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn memory_mode_warns_in_every_job_response_and_in_metrics() {
    let server = TestServer::start_memory(Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);
    let meeting = meeting_with_audio(&mut meetings, 0.5).await;
    let started = jobs
        .refine_speaker_diarization(refine(&meeting))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.storage_mode, pb::StorageMode::Memory as i32);
    assert_eq!(started.warnings, [MEMORY_MODE_WARNING]);
    let done = wait_until(&mut jobs, &started.job_id, WAIT, is_terminal).await;
    assert_eq!(done.storage_mode, pb::StorageMode::Memory as i32);
    assert_eq!(done.warnings, [MEMORY_MODE_WARNING]);
    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"noteflow_storage_mode{mode="memory"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, r#"noteflow_storage_mode{mode="sqlite"}"#),
        Some(0.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_stops_the_start_unless_memory_fallback_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"in the way").unwrap();
    let config = || {
        test_config(noteflow_server::DatabaseConfig::Sqlite {
            data_dir: not_a_dir.clone(),
        })
    };
    let diarizer: Arc<dyn noteflow_server::SpeakerDiarizer> =
        Arc::new(ControlledDiarizer::completing());

    let error = match noteflow_server::Application::build(config(), diarizer.clone()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("started on a database it cannot open"),
    };
    assert!(error.contains(&not_a_dir.display().to_string()), "{error}");
    assert!(error.contains("--fallback-to-memory"), "{error}");

    let mut fallback = config();
    fallback.fallback_to_memory = true;
    let app = noteflow_server::Application::build(fallback, diarizer)
        .await
        .unwrap();
    assert_eq!(app.storage_mode(), noteflow_store::StorageMode::Memory);
}

#[tokio::test]
async fn a_data_directory_in_use_is_refused_with_a_message_that_fits_even_with_memory_fallback() {
    let first = TestServer::start(Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let data_dir = first.data_dir.as_ref().unwrap().path().join("data");
    for fallback_to_memory in [false, true] {
        let mut config = test_config(noteflow_server::DatabaseConfig::Sqlite {
            data_dir: data_dir.clone(),
        });
        config.fallback_to_memory = fallback_to_memory;
        let error = match noteflow_server::Application::build(
            config,
            Arc::new(ControlledDiarizer::completing()),
        )
        .await
        {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a second server started on a data directory in use"),
        };
        assert!(
            error.contains("in use by another noteflow server"),
            "{error}"
        );
        assert!(error.contains("even with --fallback-to-memory"), "{error}");
        // Before, it told an operator who had passed --fallback-to-memory to pass it.
        assert!(!error.contains("pass --fallback-to-memory"), "{error}");
    }
    first.stop().await;
}

#[tokio::test]
async fn health_and_reflection_answer_standard_tools() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = TestServer::start(Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let mut health = HealthClient::new(server.channel().await);
    for service in [
        "",
        "noteflow.v1.DiarizationService",
        "noteflow.v1.MeetingService",
    ] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service}");
    }

    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "noteflow.v1.DiarizationService",
        "noteflow.v1.MeetingService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    server.stop().await;
}
