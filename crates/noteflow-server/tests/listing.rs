//! ListMeetings and GetServerInfo over real gRPC: what a console needs before it shows anything.

mod support;

use std::sync::Arc;

use noteflow_proto::v1 as pb;
use noteflow_server::testing::ControlledDiarizer;
use noteflow_server::MEMORY_MODE_WARNING;
use support::*;

#[tokio::test]
async fn list_meetings_pages_newest_first_with_audio_facts() {
    let server = TestServer::start(Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let mut meetings = server.meetings().await;
    let mut created = Vec::new();
    for i in 0..5 {
        let meeting = meetings
            .create_meeting(pb::CreateMeetingRequest {
                title: format!("meeting {i}"),
            })
            .await
            .unwrap()
            .into_inner();
        created.push(meeting.id);
    }
    let with_audio = meeting_with_audio(&mut meetings, 1.5).await;
    created.push(with_audio.clone());

    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = meetings
            .list_meetings(pb::ListMeetingsRequest {
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.meetings.len() <= 2);
        listed.extend(page.meetings);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let ids: Vec<&str> = listed.iter().map(|m| m.id.as_str()).collect();
    let mut expected: Vec<&str> = created.iter().map(String::as_str).collect();
    // Newest first; meetings made within one millisecond are ordered by id (descending).
    let created_at = |id: &str| {
        let m = listed.iter().find(|m| m.id == id).unwrap();
        let t = m.created_at.unwrap();
        (t.seconds, t.nanos)
    };
    expected.sort_by(|a, b| (created_at(b), *b).cmp(&(created_at(a), *a)));
    assert_eq!(ids, expected);
    let audio = listed.iter().find(|m| m.id == with_audio).unwrap();
    assert!(audio.has_audio);
    assert!((audio.audio_duration_seconds - 1.5).abs() < 0.01);
    assert!(listed
        .iter()
        .filter(|m| m.id != with_audio)
        .all(|m| !m.has_audio));

    for (page_size, page_token, what) in [
        (501, String::new(), "page_size must be at most 500"),
        (
            0,
            "not-a-token".to_string(),
            "page_token is not one this server issued",
        ),
        (
            0,
            "6162".to_string(),
            "page_token is not one this server issued",
        ),
    ] {
        let refused = meetings
            .list_meetings(pb::ListMeetingsRequest {
                page_size,
                page_token,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(refused.message().contains(what), "{}", refused.message());
    }
    server.stop().await;
}

#[tokio::test]
async fn server_info_says_where_jobs_are_kept() {
    let sqlite = TestServer::start(Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let info = sqlite
        .jobs()
        .await
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.storage_mode, pb::StorageMode::Sqlite as i32);
    assert!(info.warnings.is_empty());
    assert!(info.max_upload_bytes > 0);
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    sqlite.stop().await;

    let memory = TestServer::start_memory(Arc::new(ControlledDiarizer::completing()), |_| {}).await;
    let info = memory
        .jobs()
        .await
        .get_server_info(pb::GetServerInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.storage_mode, pb::StorageMode::Memory as i32);
    assert_eq!(info.warnings, [MEMORY_MODE_WARNING]);
    memory.stop().await;
}
