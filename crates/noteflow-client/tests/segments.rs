//! A meeting with the most segments a meeting may have, all labelled by a job, stays readable by a
//! client with gRPC's default 4 MiB receive limit: GetMeeting carries the first segments only and
//! says so, and ListSegments pages return every segment exactly once. Before the limit on
//! GetMeeting, such a meeting's answer was over 4 MiB and every default client got
//! RESOURCE_EXHAUSTED.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use noteflow_client::proto as pb;
use noteflow_client::proto::meeting_service_client::MeetingServiceClient;
use noteflow_client::{Client, SpeakerRequest};
use noteflow_server::testing::ControlledDiarizer;
use prost::Message;
use support::*;

const SEGMENTS: usize = 20_000;

fn transcript(count: usize) -> Vec<pb::Segment> {
    // 175 bytes of text each: the import (about 4.0 MB) still fits the server's 4 MiB request limit,
    // and the speaker labels a job adds take the whole meeting past 4 MiB.
    (0..count)
        .map(|i| pb::Segment {
            start_seconds: i as f64 * 0.001,
            end_seconds: i as f64 * 0.001 + 0.0009,
            text: format!("{i:>8} {}", "words ".repeat(30))[..175].to_string(),
            ..Default::default()
        })
        .collect()
}

#[tokio::test]
async fn a_meeting_with_the_most_segments_is_readable_with_default_limits_and_pages_return_each_once(
) {
    let diarizer = Arc::new(ControlledDiarizer::completing());
    let server = TestServer::start(diarizer).await;
    let client = Client::new(&server.url(), fast_config(true)).unwrap();
    // A plain generated client with gRPC's defaults (4 MiB receive limit).
    let mut plain = MeetingServiceClient::connect(server.url()).await.unwrap();

    let meeting = client.create_meeting("long").await.unwrap();
    client
        .upload_audio(&meeting, tone_wav(20.0), "wav")
        .await
        .unwrap();
    // One more than the limit is refused with the limit in the message.
    let e = plain
        .import_segments(pb::ImportSegmentsRequest {
            meeting_id: meeting.clone(),
            segments: vec![
                pb::Segment {
                    start_seconds: 0.0,
                    end_seconds: 1.0,
                    ..Default::default()
                };
                SEGMENTS + 1
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("at most 20000"), "{}", e.message());
    let imported = plain
        .import_segments(pb::ImportSegmentsRequest {
            meeting_id: meeting.clone(),
            segments: transcript(SEGMENTS),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.segment_count as usize, SEGMENTS);
    // A job labels every segment (the double's turns cover the whole audio).
    let started = client
        .start_job(&meeting, SpeakerRequest::default())
        .await
        .unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        client.follow(&started.job_id).finish(),
    )
    .await
    .expect("the job ends within 60 s")
    .unwrap();
    assert_eq!(
        outcome.job().status(),
        pb::JobStatus::Completed,
        "{outcome:?}"
    );

    let got = plain
        .get_meeting(pb::GetMeetingRequest {
            meeting_id: meeting.clone(),
        })
        .await
        .expect("GetMeeting fits a default client")
        .into_inner();
    assert_eq!(got.segment_count as usize, SEGMENTS);
    assert!(got.segments_truncated);
    assert_eq!(got.segments.len(), 1000);
    assert!(got.encoded_len() < 3 * 1024 * 1024 + 64 * 1024);

    // Pages of the default size, through the client, then of the largest size through the plain
    // client: every segment exactly once, in order, labelled.
    let all = client.all_segments(&meeting).await.unwrap();
    let indices: Vec<u32> = all.iter().map(|s| s.index).collect();
    assert_eq!(indices, (0..SEGMENTS as u32).collect::<Vec<_>>());
    assert!(
        all.iter().all(|s| s.speaker.is_some()),
        "unlabelled segments"
    );
    let mut seen = BTreeSet::new();
    let mut total_bytes = 0;
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = plain
            .list_segments(pb::ListSegmentsRequest {
                meeting_id: meeting.clone(),
                page_size: 1000,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        total_bytes += page.encoded_len();
        assert_eq!(page.segment_count as usize, SEGMENTS);
        assert!(page.segments.len() <= 1000);
        for s in &page.segments {
            assert!(seen.insert(s.index), "segment {} returned twice", s.index);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), SEGMENTS);
    assert_eq!(pages, 20);
    // The whole transcript is more than a default client could take in one answer.
    assert!(
        total_bytes > 4 * 1024 * 1024,
        "the test meeting is too small to prove anything: {total_bytes} bytes"
    );

    // A token is bound to its meeting, and a made-up one is refused.
    let other = client.create_meeting("other").await.unwrap();
    let first = client.list_segments(&meeting, 10, "").await.unwrap();
    for (meeting_id, page_token) in [
        (other.clone(), first.next_page_token.clone()),
        (meeting.clone(), "p10".to_string()),
    ] {
        let e = plain
            .list_segments(pb::ListSegmentsRequest {
                meeting_id,
                page_size: 10,
                page_token,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("page_token"), "{}", e.message());
    }
}
