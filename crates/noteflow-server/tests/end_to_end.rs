//! The whole flow on the real engine with the real sample clip, through the real server over real
//! gRPC: upload in chunks, import the transcript, refine, follow the job, read the relabelled
//! transcript and the RTTM result.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use noteflow_diarize::rttm::{parse_rttm, read_rttm_file};
use noteflow_diarize::scoring::{der, ScoringOptions};
use noteflow_diarize::{BackendKind, Diarizer, ModelDir, PipelineConfig};
use noteflow_proto::v1 as pb;
use support::*;
use tokio_stream::StreamExt;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

/// The sample's reference transcript: (start, end, speaker, text) per line of the STM file.
fn transcript() -> Vec<(f64, f64, String, String)> {
    std::fs::read_to_string(testdata("pyannote-sample.stm"))
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(6, ' ').collect();
            (
                fields[3].parse().unwrap(),
                fields[4].parse().unwrap(),
                fields[2].to_string(),
                fields[5].to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_meeting_is_diarized_and_its_transcript_relabelled() {
    let diarizer = Diarizer::load(
        BackendKind::Tract,
        &ModelDir::default_location(),
        PipelineConfig::default(),
    )
    .expect("the bundled models load");
    let server = TestServer::start(Arc::new(diarizer), |_| {}).await;
    let (mut meetings, mut jobs) = (server.meetings().await, server.jobs().await);

    let meeting = meetings
        .create_meeting(pb::CreateMeetingRequest {
            title: "Diane and Sheila".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let audio = std::fs::read(testdata("pyannote-sample.wav")).unwrap();
    let uploaded = upload(&mut meetings, &meeting, &audio, "audio/wav")
        .await
        .unwrap();
    assert_eq!(uploaded.size_bytes, audio.len() as u64);
    assert!(
        (uploaded.duration_seconds - 30.0).abs() < 0.1,
        "{}",
        uploaded.duration_seconds
    );

    let lines = transcript();
    let segments = lines
        .iter()
        .map(|(start, end, _, text)| pb::Segment {
            start_seconds: *start,
            end_seconds: *end,
            text: text.clone(),
            ..Default::default()
        })
        .collect();
    let imported = meetings
        .import_segments(pb::ImportSegmentsRequest {
            meeting_id: meeting.clone(),
            segments,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.segment_count, lines.len() as u32);

    let started = jobs
        .refine_speaker_diarization(pb::RefineSpeakerDiarizationRequest {
            meeting_id: meeting.clone(),
            request_id: "e2e-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut watch = jobs
        .watch_diarization_job(pb::WatchDiarizationJobRequest {
            job_id: started.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(update) = within(Duration::from_secs(120), "the real job", watch.next()).await {
        last = Some(update.unwrap());
    }
    let done = last.unwrap();
    assert_eq!(done.status, pb::JobStatus::Completed as i32, "{done:?}");
    assert_eq!(done.speaker_ids.len(), 2, "{done:?}");
    assert_eq!(done.segments_updated, lines.len() as u32);
    // Polling agrees with the stream.
    assert_eq!(status(&mut jobs, &started.job_id).await, done);

    // Every transcript line is labelled, and the labels follow the real speakers: under the best
    // one-to-one mapping, all but at most one line (the 0.5 s "Hello?" exchanges) agree.
    let relabelled = meetings
        .get_meeting(pb::GetMeetingRequest {
            meeting_id: meeting.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .segments;
    let mut votes: HashMap<(String, String), usize> = HashMap::new();
    for (segment, (_, _, truth, _)) in relabelled.iter().zip(&lines) {
        let label = segment.speaker.clone().expect("every line overlaps speech");
        *votes.entry((truth.clone(), label)).or_default() += 1;
    }
    let (a, b) = (&done.speaker_ids[0], &done.speaker_ids[1]);
    let agree = |diane: &str, sheila: &str| {
        votes
            .get(&("Diane".into(), diane.into()))
            .copied()
            .unwrap_or(0)
            + votes
                .get(&("Sheila".into(), sheila.into()))
                .copied()
                .unwrap_or(0)
    };
    let best = agree(a, b).max(agree(b, a));
    assert!(
        best + 1 >= lines.len(),
        "labels agree with the speakers on only {best} of {} lines: {votes:?}",
        lines.len()
    );

    // The result, as RTTM, scores like the engine run directly (5.6 % DER).
    let result = jobs
        .get_diarization_result(pb::GetDiarizationResultRequest {
            job_id: started.job_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let hypothesis: Vec<_> = parse_rttm(&result.rttm)
        .unwrap()
        .remove(&meeting)
        .expect("file id is the meeting id");
    assert_eq!(hypothesis.len(), result.turns.len());
    let reference: Vec<_> = read_rttm_file(testdata("pyannote-sample.rttm"))
        .unwrap()
        .into_values()
        .flatten()
        .collect();
    let report = der(&reference, &hypothesis, None, &ScoringOptions::default());
    assert!(report.der < 0.08, "DER {:.2} %", report.der * 100.0);

    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"noteflow_jobs{state="COMPLETED"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "noteflow_stale_writes_total"),
        Some(0.0),
        "{metrics}"
    );
    server.stop().await;
}
