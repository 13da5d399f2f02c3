//! The sample rate every decode produces and the bounds every input is held to.

/// Sample rate of every [`Audio16k`](crate::audio::Audio16k): what the segmentation and
/// embedding models expect.
pub const SAMPLE_RATE: u32 = 16_000;

/// Shortest audio accepted by the decoders: 0.1 s at 16 kHz.
///
/// Anything shorter cannot hold a single word, let alone a speaker turn, and the models'
/// feature extractors need at least a few frames; rejecting it here gives a clear error instead
/// of an empty diarization or an obscure shape error further down.
pub const MIN_SAMPLES: usize = SAMPLE_RATE as usize / 10;

/// Longest audio accepted: 12 hours (1.4 GB as 16 kHz `i16`).
///
/// Compressed formats can expand enormously (a FLAC frame of silence is ~15 bytes for 65535
/// samples), so a small upload could otherwise decode to more audio than memory holds. No
/// meeting is longer; the limit turns such a file into
/// [`AudioError::TooLong`](crate::audio::AudioError::TooLong).
pub const MAX_DURATION_SECS: u64 = 12 * 3600;

/// [`MAX_DURATION_SECS`] in 16 kHz samples.
pub(super) const MAX_SAMPLES: usize = (MAX_DURATION_SECS * SAMPLE_RATE as u64) as usize;

/// Lowest source sample rate accepted. Real recordings start at 8 kHz (telephony); a lower
/// declared rate means a broken header, and resampling from it would need absurd upsampling.
pub const MIN_SOURCE_RATE: u32 = 1_000;

/// Highest source sample rate accepted (1 MHz). Higher declared rates are broken headers.
pub const MAX_SOURCE_RATE: u32 = 1_000_000;

/// Number of 16 kHz samples for `frames` at `rate`, rounded to nearest: the length of every
/// decode (see the module docs on timing).
pub(super) fn output_len(frames: u64, rate: u32) -> u64 {
    let num = u128::from(frames) * u128::from(SAMPLE_RATE) + u128::from(rate) / 2;
    u64::try_from(num / u128::from(rate)).unwrap_or(u64::MAX)
}
