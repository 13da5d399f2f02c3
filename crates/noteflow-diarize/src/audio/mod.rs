//! Audio decoding for the diarization pipeline: any supported file in, mono 16 kHz out.
//!
//! The segmentation and embedding models both expect mono audio at [`SAMPLE_RATE`], so every
//! input (WAV, FLAC, MP3, Ogg Vorbis; any sample rate and channel count) is decoded with
//! symphonia, down-mixed to mono (mean of the channels) and resampled with rubato's
//! band-limited resamplers.
//!
//! # Memory
//!
//! Decoding is streaming: packets are decoded, down-mixed and resampled one at a time, so the
//! file is never held at its original rate and channel count. What stays in memory is the
//! caller's compressed input (for [`decode_bytes`]), the 16 kHz output stored as `i16`
//! (2 bytes per sample: a 4-hour meeting costs ~460 MB instead of ~920 MB as `f32`) and a few
//! small fixed-size buffers.
//!
//! # Timing
//!
//! Output sample `n` is the input at time `n / 16000` s (within half a sample): the
//! resamplers' delay is removed, MP3 encoder delay and padding are trimmed (gapless mode), and
//! audio lost to damage is replaced by silence of the same length, so diarization timestamps
//! stay right after a damaged stretch. The length is `round(frames * 16000 / rate)`.
//!
//! # Robustness
//!
//! Uploaded files are untrusted. Every failure is an [`AudioError`] that says what is wrong in
//! words a person can act on. Packets that fail to decode are skipped and counted, as players
//! do (and replaced by silence, see above); decoding fails only when nothing at all decodes.
//! [`DecodeReport`] tells the caller about damage in a file that still decoded. Output is
//! capped at [`MAX_DURATION_SECS`] against decompression bombs.
//!
//! symphonia 0.5 can panic on some malformed headers (for example a WAV `fmt ` chunk with a
//! 0 Hz sample rate panics in `TimeBase::new`, an IMA ADPCM block smaller than its header
//! overflows a `u16`). The WAV header is checked before symphonia sees it, and the whole
//! decode runs under `catch_unwind` as a last resort, so that no input can take the process
//! down. This relies on `panic = "unwind"` (the default); the default panic hook still prints
//! the message to stderr.
//!
//! # Layout
//!
//! One file per job, in the order data flows, each with its tests:
//! - `limits`: sample rate and the bounds every input is held to.
//! - `error`: [`AudioError`], the message a person gets for a bad file.
//! - `wav_header`: the WAV header check that runs before symphonia sees the bytes.
//! - `track`: picking the audio track and building its decoder.
//! - `downmix`: channels to mono.
//! - `resample`: the streaming 16 kHz resampler and the output buffer.
//! - `decode`: the public entry points and the packet loop tying the above together.
//! - `audio16k` and `report`: what a decode returns.

mod audio16k;
mod decode;
mod downmix;
mod error;
mod limits;
mod report;
mod resample;
mod track;
mod wav_header;

#[cfg(test)]
mod test_support;

pub use audio16k::Audio16k;
pub use decode::{decode_bytes, decode_bytes_with_report, decode_file, decode_file_with_report};
pub use error::AudioError;
pub use limits::{MAX_DURATION_SECS, MAX_SOURCE_RATE, MIN_SAMPLES, MIN_SOURCE_RATE, SAMPLE_RATE};
pub use report::DecodeReport;
