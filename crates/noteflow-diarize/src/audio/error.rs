//! [`AudioError`]: why a file could not be decoded, in words the person who uploaded it can act
//! on.

use std::io;

use crate::audio::limits::{
    MAX_DURATION_SECS, MAX_SOURCE_RATE, MIN_SAMPLES, MIN_SOURCE_RATE, SAMPLE_RATE,
};

/// Why audio could not be decoded. Each message is meant to be shown to the person who
/// uploaded the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("cannot read {what}: {source}")]
    Io {
        /// The path, or "in-memory audio".
        what: String,
        #[source]
        source: io::Error,
    },
    /// The input has 0 bytes.
    #[error("the audio file is empty (0 bytes)")]
    Empty,
    /// The content is not a container symphonia recognises (for example a text file named
    /// `.wav`). Detection is by content; the extension is only a hint.
    #[error(
        "the file is not a recognised audio format{}; supported formats are WAV, FLAC, MP3 \
         and Ogg Vorbis",
        .hint.as_deref().map(|h| format!(" (although its name ends in .{h})")).unwrap_or_default()
    )]
    UnsupportedFormat {
        /// The extension hint given by the caller, if any.
        hint: Option<String>,
    },
    /// The container is recognised but its audio codec is not supported (for example Opus in
    /// Ogg or ADPCM in WAV).
    #[error(
        "the audio codec {codec} is not supported; convert the file to WAV, FLAC, MP3 or Ogg \
         Vorbis"
    )]
    UnsupportedCodec {
        /// Human-readable codec name.
        codec: String,
    },
    /// The container holds no audio track.
    #[error("the file contains no audio track")]
    NoAudioTrack,
    /// The declared sample rate is 0 or outside [`MIN_SOURCE_RATE`]..=[`MAX_SOURCE_RATE`].
    #[error(
        "the file declares an invalid sample rate of {0} Hz (supported: {MIN_SOURCE_RATE} to \
         {MAX_SOURCE_RATE} Hz); its header is probably corrupt"
    )]
    InvalidSampleRate(u32),
    /// The header or stream is malformed and nothing usable could be read.
    #[error("the audio file is corrupt: {0}")]
    Corrupt(String),
    /// The file ends before the audio its header announces (for example a WAV header followed
    /// by no data), so nothing could be decoded.
    #[error("the audio file is truncated: {0}")]
    Truncated(String),
    /// Every audio packet failed to decode.
    #[error(
        "none of the {failed_packets} audio packets could be decoded (last error: \
         {last_error}); the file is corrupt"
    )]
    Undecodable {
        /// Number of packets that failed.
        failed_packets: usize,
        /// The last decoder error message.
        last_error: String,
    },
    /// The audio is longer than [`MAX_DURATION_SECS`] (12 h).
    #[error(
        "the audio is longer than the supported maximum of {} hours; split the recording",
        MAX_DURATION_SECS / 3600
    )]
    TooLong,
    /// The file is well-formed but contains zero samples.
    #[error("the file contains no audio samples")]
    NoAudio,
    /// The decoded audio is shorter than [`MIN_SAMPLES`] (0.1 s).
    #[error(
        "the audio is too short: {samples} samples at 16 kHz ({:.3} s); at least {MIN_SAMPLES} \
         samples (0.1 s) are needed",
        *.samples as f64 / f64::from(SAMPLE_RATE)
    )]
    TooShort {
        /// Number of 16 kHz samples decoded.
        samples: usize,
    },
    /// A floating-point file contains NaN or infinite samples (or values beyond the f32
    /// range): it was written by a broken program, and such values would poison every
    /// downstream computation.
    #[error(
        "the audio contains invalid sample values (NaN or infinity) at {at_secs:.3} s; the file \
         was written incorrectly"
    )]
    NonFiniteSamples {
        /// Position of the first bad frame, in seconds from the start.
        at_secs: f64,
    },
    /// The decoding library panicked on this input (caught; see the module docs).
    #[error(
        "the audio decoder failed on this file (internal error: {0}); the file is probably corrupt"
    )]
    DecoderPanic(String),
    /// A resampler could not be built or failed; this indicates a bug, not a bad file.
    #[error("internal resampling error: {0}")]
    Resample(String),
}
