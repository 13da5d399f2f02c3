//! Channels to mono: the mean of the channels, as `f32`.

use symphonia::core::audio::{AudioBuffer, AudioBufferRef, Signal};
use symphonia::core::conv::IntoSample;
use symphonia::core::sample::Sample;

/// Mean of the channels, as `f32`, into `mono`.
pub(super) fn downmix(buf: &AudioBufferRef<'_>, mono: &mut Vec<f32>) {
    match buf {
        AudioBufferRef::U8(b) => downmix_typed(b, mono),
        AudioBufferRef::U16(b) => downmix_typed(b, mono),
        AudioBufferRef::U24(b) => downmix_typed(b, mono),
        AudioBufferRef::U32(b) => downmix_typed(b, mono),
        AudioBufferRef::S8(b) => downmix_typed(b, mono),
        AudioBufferRef::S16(b) => downmix_typed(b, mono),
        AudioBufferRef::S24(b) => downmix_typed(b, mono),
        AudioBufferRef::S32(b) => downmix_typed(b, mono),
        AudioBufferRef::F32(b) => downmix_typed(b, mono),
        AudioBufferRef::F64(b) => downmix_typed(b, mono),
    }
}

fn downmix_typed<S>(buf: &AudioBuffer<S>, mono: &mut Vec<f32>)
where
    S: Sample + IntoSample<f32>,
{
    let channels = buf.spec().channels.count();
    mono.clear();
    mono.resize(buf.frames(), 0.0);
    for c in 0..channels {
        for (m, &s) in mono.iter_mut().zip(buf.chan(c)) {
            *m += IntoSample::<f32>::into_sample(s);
        }
    }
    if channels > 1 {
        let inv = 1.0 / channels as f32;
        mono.iter_mut().for_each(|m| *m *= inv);
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use crate::audio::decode_bytes_with_report;
    use crate::audio::test_support::*;

    #[test]
    fn six_channel_wav_is_averaged() {
        // Amplitudes 0.1..0.6 average to 0.35.
        let frames = 48_000;
        let bytes = wav(48_000, 6, Fmt::S16, frames, |t, c| {
            0.1 * (c + 1) as f64 * (2.0 * PI * 440.0 * t).sin()
        });
        let (audio, report) = decode_bytes_with_report(bytes, Some("wav")).unwrap();
        assert_eq!(report.source_channels, 6);
        check_tone(&audio, frames, 48_000, 0.35, 0.5);
    }
}
