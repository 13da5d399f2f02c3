//! Upload slots cannot be held hostage: a stalled upload is ended by the idle timeout, a trickling
//! one by the overall deadline, one caller cannot take every slot, and an upload that ends short of
//! its declared size stores nothing. Real server, real gRPC over loopback sockets; the timeouts are
//! set short in the server's config, and the tests wait on the server's answers, never on sleeps.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use noteflow_proto::v1 as pb;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use noteflow_server::testing::ControlledDiarizer;
use support::*;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(10);

fn diarizer() -> Arc<ControlledDiarizer> {
    Arc::new(ControlledDiarizer::completing())
}

async fn new_meeting(meetings: &mut Meetings) -> String {
    meetings
        .create_meeting(pb::CreateMeetingRequest { title: "m".into() })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn has_audio(meetings: &mut Meetings, meeting: &str) -> bool {
    meetings
        .get_meeting(pb::GetMeetingRequest {
            meeting_id: meeting.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .has_audio
}

/// An upload that sends `first` and then nothing until the returned sender is dropped or used.
fn stalled_upload(
    meetings: &Meetings,
    first: pb::UploadAudioRequest,
) -> (
    mpsc::Sender<pb::UploadAudioRequest>,
    JoinHandle<Result<tonic::Response<pb::UploadAudioResponse>, tonic::Status>>,
) {
    let (tx, rx) = mpsc::channel(4);
    tx.try_send(first).unwrap();
    let mut client = meetings.clone();
    let task = tokio::spawn(async move {
        client
            .upload_audio(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    (tx, task)
}

fn first_message(meeting: &str, chunk: &[u8]) -> pb::UploadAudioRequest {
    pb::UploadAudioRequest {
        meeting_id: meeting.into(),
        format_hint: "wav".into(),
        chunk: chunk.to_vec(),
        total_bytes: None,
    }
}

/// A client whose connections come from `local` (another loopback address is another caller).
async fn meetings_from(local: IpAddr, server: SocketAddr) -> Meetings {
    let channel: Channel = Endpoint::from_shared(format!("http://{server}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(local, 0))?;
            let stream = socket.connect(server).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }))
        .await
        .unwrap();
    MeetingServiceClient::new(channel)
}

#[tokio::test]
async fn a_stalled_upload_is_ended_by_the_idle_timeout_and_stores_nothing() {
    let server = TestServer::start(diarizer(), |c| {
        c.upload_idle_timeout = Duration::from_millis(300);
        c.max_concurrent_uploads = 1;
    })
    .await;
    let mut meetings = server.meetings().await;
    let meeting = new_meeting(&mut meetings).await;
    let audio = tone_wav(2.0);
    // Half a valid file, then silence: before the fix this held the slot until the client went
    // away, and a stream ended then stored the partial audio.
    let (held_open, task) = stalled_upload(
        &meetings,
        first_message(&meeting, &audio[..audio.len() / 2]),
    );
    let e = within(WAIT, "the idle timeout", task)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(
        e.message().contains("no audio arrived for 0.3 s")
            && e.message().contains("nothing was stored"),
        "{}",
        e.message()
    );
    drop(held_open);
    assert!(!has_audio(&mut meetings, &meeting).await);
    // The slot is free again: a whole upload goes through.
    upload(&mut meetings, &meeting, &audio, "wav")
        .await
        .unwrap();
    let text = server
        .wait_for_metric("noteflow_uploads_in_progress", 0.0, WAIT)
        .await;
    assert_eq!(
        metric_value(
            &text,
            "noteflow_uploads_refused_total{reason=\"idle_timeout\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn an_upload_past_the_overall_deadline_is_ended_however_it_trickles() {
    // The deadline is shorter than the idle timeout, so only the deadline can end this upload.
    let server = TestServer::start(diarizer(), |c| {
        c.upload_idle_timeout = Duration::from_secs(60);
        c.upload_deadline = Duration::from_millis(300);
    })
    .await;
    let mut meetings = server.meetings().await;
    let meeting = new_meeting(&mut meetings).await;
    let (held_open, task) = stalled_upload(&meetings, first_message(&meeting, &[0; 100]));
    let e = within(WAIT, "the upload deadline", task)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    assert!(
        e.message().contains("took longer than 0.3 s"),
        "{}",
        e.message()
    );
    drop(held_open);
    assert!(!has_audio(&mut meetings, &meeting).await);
    let text = server.metrics().await;
    assert_eq!(
        metric_value(&text, "noteflow_uploads_refused_total{reason=\"deadline\"}"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn one_caller_cannot_hold_every_upload_slot() {
    let server = TestServer::start(diarizer(), |c| {
        c.max_concurrent_uploads = 3;
        c.max_uploads_per_caller = 2;
    })
    .await;
    let mut greedy = server.meetings().await;
    let meeting = new_meeting(&mut greedy).await;
    // The greedy caller (127.0.0.1) opens two uploads and stalls.
    let (tx1, _task1) = stalled_upload(&greedy, first_message(&meeting, &[0; 10]));
    let (tx2, _task2) = stalled_upload(&greedy, first_message(&meeting, &[0; 10]));
    let text = server
        .wait_for_metric("noteflow_uploads_in_progress", 2.0, WAIT)
        .await;
    assert_eq!(
        metric_value(&text, "noteflow_uploads_in_progress"),
        Some(2.0),
        "{text}"
    );
    // Its third is refused, with a message about its own uploads.
    let e = upload(&mut greedy, &meeting, &tone_wav(1.0), "wav")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message().contains("from this caller (at most 2"),
        "{}",
        e.message()
    );
    // Another caller still gets the remaining slot.
    let mut other = meetings_from(IpAddr::from([127, 0, 0, 2]), server.addr).await;
    let uploaded = upload(&mut other, &meeting, &tone_wav(1.0), "wav")
        .await
        .unwrap();
    assert!((uploaded.duration_seconds - 1.0).abs() < 0.01);
    let text = server.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "noteflow_uploads_refused_total{reason=\"caller_busy\"}"
        ),
        Some(1.0),
        "{text}"
    );
    drop((tx1, tx2));
}

#[tokio::test]
async fn an_upload_that_ends_short_of_its_declared_size_stores_nothing() {
    let server = TestServer::start(diarizer(), |_| {}).await;
    let mut meetings = server.meetings().await;
    let meeting = new_meeting(&mut meetings).await;
    let audio = tone_wav(2.0);
    let half = audio.len() / 2;
    // The sender declared the whole file but its stream ended half way (a sender interrupted
    // cleanly, e.g. a file truncated while it was read).
    let short = pb::UploadAudioRequest {
        total_bytes: Some(audio.len() as u64),
        ..first_message(&meeting, &audio[..half])
    };
    let e = meetings
        .upload_audio(tokio_stream::iter([short]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message()
            .contains(&format!("ended after {half} of the {} bytes", audio.len())),
        "{}",
        e.message()
    );
    // More than declared is refused as soon as it arrives.
    let long = pb::UploadAudioRequest {
        total_bytes: Some(half as u64),
        ..first_message(&meeting, &audio)
    };
    let e = meetings
        .upload_audio(tokio_stream::iter([long]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("more than the"), "{}", e.message());
    assert!(!has_audio(&mut meetings, &meeting).await);
    // The declared size matching the stream is accepted.
    let whole = pb::UploadAudioRequest {
        total_bytes: Some(audio.len() as u64),
        ..first_message(&meeting, &audio)
    };
    let stored = meetings
        .upload_audio(tokio_stream::iter([whole]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.size_bytes, audio.len() as u64);
}

#[tokio::test]
async fn a_recording_cut_short_is_stored_with_a_warning() {
    let server = TestServer::start(diarizer(), |_| {}).await;
    let mut meetings = server.meetings().await;
    let meeting = new_meeting(&mut meetings).await;
    // The header announces 10 s; the file holds the first 5 s (44-byte header, 16-bit mono).
    let whole = tone_wav(10.0);
    let cut = &whole[..44 + (whole.len() - 44) / 2];
    let stored = upload(&mut meetings, &meeting, cut, "wav").await.unwrap();
    assert!((stored.duration_seconds - 5.0).abs() < 0.01, "{stored:?}");
    assert_eq!(stored.warnings.len(), 1, "{stored:?}");
    assert!(
        stored.warnings[0].starts_with("the audio is truncated")
            && stored.warnings[0].contains("the 5.0 s that decode were stored"),
        "{}",
        stored.warnings[0]
    );
    assert!(has_audio(&mut meetings, &meeting).await);
    // A whole file has no warnings.
    let whole = upload(&mut meetings, &meeting, &whole, "wav")
        .await
        .unwrap();
    assert!(whole.warnings.is_empty(), "{whole:?}");
}
