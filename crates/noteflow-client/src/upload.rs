//! The messages of an audio upload, read from memory or from a file while the call sends them: a
//! file is never held in memory whole, and every attempt reads its source again from the start (the
//! server stores an upload only once its stream has ended, so a retry sends all of it again).

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use futures::Stream;
use noteflow_proto::v1 as pb;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;

/// Where an upload's bytes come from.
#[derive(Clone)]
pub(crate) enum AudioSource {
    Memory(Arc<Vec<u8>>),
    File(PathBuf),
}

/// Bytes shared with every attempt, readable through a cursor without a copy.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The upload stream of one attempt: `chunk_bytes` per message, the first one naming the meeting
/// and the format. A read error is sent on the returned receiver and the stream then stays open
/// without ending, because an ended stream would be stored as a (truncated) upload: the caller
/// drops the call instead, which resets the stream on the server.
pub(crate) fn messages(
    source: &AudioSource,
    chunk_bytes: usize,
    meeting_id: String,
    format_hint: String,
    total_bytes: u64,
) -> (
    impl Stream<Item = pb::UploadAudioRequest> + Send + 'static,
    oneshot::Receiver<std::io::Error>,
) {
    let (failed, read_error) = oneshot::channel();
    let reading = Reading {
        source: source.clone(),
        reader: None,
        chunk_bytes: chunk_bytes.max(1),
        header: Some((meeting_id, format_hint, total_bytes)),
        failed: Some(failed),
    };
    let stream = futures::stream::unfold(reading, |mut reading| async move {
        match reading.next_message().await {
            Ok(Some(message)) => Some((message, reading)),
            Ok(None) => None,
            Err(error) => {
                if let Some(failed) = reading.failed.take() {
                    let _ = failed.send(error);
                }
                std::future::pending().await
            }
        }
    });
    (stream, read_error)
}

struct Reading {
    source: AudioSource,
    /// Opened on the first message, so an attempt that never starts opens nothing.
    reader: Option<Box<dyn AsyncRead + Send + Unpin>>,
    chunk_bytes: usize,
    /// The meeting id, format hint and declared size, until the first message has taken them. The
    /// size lets the server refuse an upload cut short (a file that shrank while it was read)
    /// instead of storing part of it.
    header: Option<(String, String, u64)>,
    failed: Option<oneshot::Sender<std::io::Error>>,
}

impl Reading {
    async fn next_message(&mut self) -> std::io::Result<Option<pb::UploadAudioRequest>> {
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => self.reader.insert(match &self.source {
                AudioSource::Memory(bytes) => Box::new(Cursor::new(SharedBytes(bytes.clone()))),
                AudioSource::File(path) => Box::new(tokio::fs::File::open(path).await?),
            }),
        };
        let mut chunk = Vec::with_capacity(self.chunk_bytes);
        reader
            .take(self.chunk_bytes as u64)
            .read_to_end(&mut chunk)
            .await?;
        let header = self.header.take();
        if chunk.is_empty() && header.is_none() {
            return Ok(None);
        }
        // Empty audio is still one message, so the server sees the meeting and refuses it.
        let (meeting_id, format_hint, total_bytes) = match header {
            Some((meeting_id, format_hint, total)) => (meeting_id, format_hint, Some(total)),
            None => Default::default(),
        };
        Ok(Some(pb::UploadAudioRequest {
            meeting_id,
            format_hint,
            chunk,
            total_bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn sent(source: AudioSource, chunk_bytes: usize) -> Vec<pb::UploadAudioRequest> {
        let (stream, _) = messages(&source, chunk_bytes, "m".into(), "wav".into(), 2500);
        stream.collect().await
    }

    #[tokio::test]
    async fn a_file_is_sent_in_chunks_with_the_header_on_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audio.wav");
        let bytes: Vec<u8> = (0..=255).cycle().take(2500).collect();
        std::fs::write(&path, &bytes).unwrap();
        for source in [
            AudioSource::File(path),
            AudioSource::Memory(Arc::new(bytes.clone())),
        ] {
            let messages = sent(source, 1000).await;
            let sizes: Vec<usize> = messages.iter().map(|m| m.chunk.len()).collect();
            assert_eq!(sizes, [1000, 1000, 500]);
            assert_eq!(
                (
                    &*messages[0].meeting_id,
                    &*messages[0].format_hint,
                    messages[0].total_bytes
                ),
                ("m", "wav", Some(2500))
            );
            assert!(messages[1..].iter().all(|m| m.meeting_id.is_empty()
                && m.format_hint.is_empty()
                && m.total_bytes.is_none()));
            let joined: Vec<u8> = messages.into_iter().flat_map(|m| m.chunk).collect();
            assert_eq!(joined, bytes);
        }
    }

    #[tokio::test]
    async fn empty_audio_is_one_message_naming_the_meeting() {
        let messages = sent(AudioSource::Memory(Arc::new(Vec::new())), 1000).await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].meeting_id, "m");
        assert!(messages[0].chunk.is_empty());
    }

    #[tokio::test]
    async fn a_read_error_is_reported_and_the_stream_does_not_end() {
        let dir = tempfile::tempdir().unwrap();
        let (stream, failed) = messages(
            &AudioSource::File(dir.path().join("absent.wav")),
            1000,
            "m".into(),
            "wav".into(),
            0,
        );
        let mut stream = Box::pin(stream);
        let mut next = stream.next();
        tokio::select! {
            message = &mut next => panic!("the stream went on after the error: {message:?}"),
            error = failed => assert_eq!(error.unwrap().kind(), std::io::ErrorKind::NotFound),
        }
        assert!(
            futures::poll!(next).is_pending(),
            "an ended stream would store a truncated upload"
        );
    }
}
