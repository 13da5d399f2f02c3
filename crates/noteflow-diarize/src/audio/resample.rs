//! The streaming resampler: mono `f32` at any source rate in, 16 kHz `i16` out, aligned in time
//! with the input (see the module docs on timing) and capped in length.

use rubato::{
    calculate_cutoff, FftFixedInOut, SincFixedIn, SincInterpolationParameters,
    SincInterpolationType, VecResampler, WindowFunction,
};

use crate::audio::audio16k::f32_to_i16;
use crate::audio::error::AudioError;
use crate::audio::limits::{output_len, SAMPLE_RATE};

/// Target FFT block for the synchronous FFT resampler, in input frames. Longer blocks give a
/// longer (sharper) anti-aliasing filter and fewer FFT calls per sample; 2048 keeps the block a
/// few tens of kilobytes.
const FFT_TARGET_BLOCK: usize = 2_048;

/// If the exact rational FFT block for a rate pair would exceed this many input frames (rates
/// like 44 101 Hz whose ratio to 16 kHz has no small denominator), the sinc resampler is used
/// instead: it handles any ratio with fixed, small buffers.
const FFT_MAX_BLOCK: usize = 1 << 16;

/// Input chunk of the sinc resampler fallback, in frames.
const SINC_CHUNK: usize = 4_096;

/// Streaming mono pipeline: resamples each run of constant source rate to 16 kHz and appends
/// to the `i16` output. A rate change mid-stream (chained Ogg, concatenated MP3) flushes the
/// current resampler and starts a new one.
pub(super) struct Pipeline {
    out: Vec<i16>,
    stage: Option<Stage>,
    /// Output length limit ([`MAX_SAMPLES`](crate::audio::limits::MAX_SAMPLES) outside tests).
    max_samples: usize,
}

enum Stage {
    /// The source is already 16 kHz: convert only.
    Passthrough,
    Resample(Box<ResampleStage>),
}

struct ResampleStage {
    rate: u32,
    resampler: Box<dyn VecResampler<f32>>,
    /// One channel of the resampler's fixed input chunk size; `filled` frames are valid.
    input: Vec<Vec<f32>>,
    filled: usize,
    output: Vec<Vec<f32>>,
    /// Output samples still to drop at the start: the resampler's group delay, so that output
    /// sample 0 corresponds to input time 0.
    skip: usize,
    in_frames: u64,
    emitted: u64,
}

impl Pipeline {
    pub(super) fn new(reserve: usize, max_samples: usize) -> Self {
        Self {
            out: Vec::with_capacity(reserve.min(max_samples)),
            stage: None,
            max_samples,
        }
    }

    pub(super) fn push(&mut self, rate: u32, mono: &[f32]) -> Result<(), AudioError> {
        let same_rate = match &self.stage {
            None => false,
            Some(Stage::Passthrough) => rate == SAMPLE_RATE,
            Some(Stage::Resample(s)) => s.rate == rate,
        };
        if !same_rate {
            self.flush_stage()?;
            self.stage = Some(if rate == SAMPLE_RATE {
                Stage::Passthrough
            } else {
                Stage::Resample(Box::new(ResampleStage::new(rate)?))
            });
        }
        match &mut self.stage {
            Some(Stage::Passthrough) => {
                self.out.extend(mono.iter().map(|&x| f32_to_i16(x)));
            }
            Some(Stage::Resample(s)) => s.push(mono, &mut self.out)?,
            None => {}
        }
        if self.out.len() > self.max_samples {
            return Err(AudioError::TooLong);
        }
        Ok(())
    }

    fn flush_stage(&mut self) -> Result<(), AudioError> {
        if let Some(Stage::Resample(s)) = self.stage.take() {
            s.finish(&mut self.out)?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<Vec<i16>, AudioError> {
        self.flush_stage()?;
        // Give back a reservation that the header over-estimated (e.g. truncated file).
        if self.out.capacity() - self.out.len() > self.out.len() / 64 + 4096 {
            self.out.shrink_to_fit();
        }
        Ok(self.out)
    }
}

impl ResampleStage {
    fn new(rate: u32) -> Result<Self, AudioError> {
        let Resampler16k {
            resampler,
            pre_pad,
            skip,
        } = make_resampler(rate)?;
        let input = vec![vec![0.0f32; resampler.input_frames_max()]];
        let output = resampler.output_buffer_allocate(true);
        Ok(Self {
            rate,
            resampler,
            input,
            // The input buffer starts zeroed: leading silence that delays the output.
            filled: pre_pad,
            output,
            skip,
            in_frames: 0,
            emitted: 0,
        })
    }

    fn push(&mut self, mut mono: &[f32], out: &mut Vec<i16>) -> Result<(), AudioError> {
        self.in_frames += mono.len() as u64;
        while !mono.is_empty() {
            let need = self.resampler.input_frames_next();
            let take = (need - self.filled).min(mono.len());
            self.input[0][self.filled..self.filled + take].copy_from_slice(&mono[..take]);
            self.filled += take;
            mono = &mono[take..];
            if self.filled == need {
                self.process(out, u64::MAX)?;
            }
        }
        Ok(())
    }

    /// Resamples the full input chunk and appends at most `limit - emitted` samples.
    fn process(&mut self, out: &mut Vec<i16>, limit: u64) -> Result<(), AudioError> {
        let (_, produced) = self
            .resampler
            .process_into_buffer(&self.input, &mut self.output, None)
            .map_err(|e| AudioError::Resample(e.to_string()))?;
        self.filled = 0;
        let mut produced = &self.output[0][..produced];
        let skip = self.skip.min(produced.len());
        self.skip -= skip;
        produced = &produced[skip..];
        let room = usize::try_from(limit.saturating_sub(self.emitted)).unwrap_or(usize::MAX);
        let produced = &produced[..produced.len().min(room)];
        out.extend(produced.iter().map(|&x| f32_to_i16(x)));
        self.emitted += produced.len() as u64;
        Ok(())
    }

    /// Pads the final partial chunk with zeros and keeps feeding silence until the delayed
    /// tail has come out, then stops at exactly round(in_frames * 16000 / rate) samples.
    fn finish(mut self, out: &mut Vec<i16>) -> Result<(), AudioError> {
        let target = output_len(self.in_frames, self.rate);
        // Each call yields at least one output frame once the delay is consumed; the bound
        // only guards against a resampler that stops producing.
        let mut guard = 0u32;
        while self.emitted < target {
            let need = self.resampler.input_frames_next();
            self.input[0][self.filled..need].fill(0.0);
            self.process(out, target)?;
            guard += 1;
            if guard > 10_000 {
                return Err(AudioError::Resample(
                    "resampler stopped producing output while flushing".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A resampler plus the bookkeeping that makes its output start at input time 0.
struct Resampler16k {
    resampler: Box<dyn VecResampler<f32>>,
    /// Zero input frames to feed first (delays the output).
    pre_pad: usize,
    /// Output samples to drop first (advances the output).
    skip: usize,
}

/// Builds a mono resampler from `rate` to 16 kHz.
///
/// The synchronous FFT resampler is exact for rational ratios and fast; its block is a
/// multiple of the ratio's reduced denominator. The multiple is kept even so the filter's
/// group delay (`output_delay`, half a block) is a whole number of output samples: dropping it
/// leaves no time shift. Rates whose reduced ratio needs huge blocks fall back to the sinc
/// resampler.
///
/// rubato 0.16's `SincFixedIn` already centres its kernel (its `output_delay()` does not
/// describe the output): measured, output sample `j` lies at input time `(j + 1) / 16000 s`
/// minus one input sample, i.e. the output is early by `1 - r` output samples, where
/// `r = 16000 / rate`. Feeding `k` zero input frames delays it by `k * r`, dropping `m` outputs
/// advances it by `m`; `k` and `m` are chosen to leave less than half an output sample. The
/// `odd_rate_*` tests pin this behaviour.
fn make_resampler(rate: u32) -> Result<Resampler16k, AudioError> {
    let rate_in = rate as usize;
    let rate_out = SAMPLE_RATE as usize;
    let g = gcd(rate_in, rate_out);
    let min_in = rate_in / g;
    let mut k = FFT_TARGET_BLOCK.div_ceil(min_in).max(2);
    k += k % 2;
    let block = min_in * k;
    let err = |e: rubato::ResamplerConstructionError| AudioError::Resample(e.to_string());
    if block <= FFT_MAX_BLOCK {
        let r = FftFixedInOut::<f32>::new(rate_in, rate_out, block, 1).map_err(err)?;
        let skip = rubato::Resampler::output_delay(&r);
        return Ok(Resampler16k {
            resampler: Box::new(r),
            pre_pad: 0,
            skip,
        });
    }
    let sinc_len = 256;
    let window = WindowFunction::BlackmanHarris2;
    let params = SincInterpolationParameters {
        sinc_len,
        f_cutoff: calculate_cutoff(sinc_len, window),
        interpolation: SincInterpolationType::Cubic,
        oversampling_factor: 256,
        window,
    };
    let ratio = rate_out as f64 / rate_in as f64;
    let r = SincFixedIn::<f32>::new(ratio, 1.0, params, SINC_CHUNK, 1).map_err(err)?;
    // Both values are small: ratio is within [0.016, 16] for the accepted rates.
    let (pre_pad, skip) = if ratio < 1.0 {
        ((1.0 / ratio - 1.0).round() as usize, 0)
    } else {
        (0, (ratio - 1.0).round() as usize)
    };
    Ok(Resampler16k {
        resampler: Box::new(r),
        pre_pad,
        skip,
    })
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::*;
    use crate::audio::test_support::*;
    use crate::audio::{decode_bytes, decode_bytes_with_report, decode_file};
    use std::path::Path;

    #[test]
    fn tone_44k1_stereo_16bit_keeps_length_pitch_amplitude_and_timing() {
        // Odd frame count: the last resampler chunk is partial. Channels differ so that the
        // down-mix must be the mean (0.6 and 0.2 -> 0.4), not the sum or the left channel.
        let frames = 44_100 * 2 + 37;
        let bytes = wav(44_100, 2, Fmt::S16, frames, |t, c| {
            let amp = if c == 0 { 0.6 } else { 0.2 };
            amp * (2.0 * PI * 440.0 * t).sin()
        });
        let (audio, report) = decode_bytes_with_report(bytes, Some("wav")).unwrap();
        assert_eq!(audio.len(), 32_013); // round(88237 * 16000 / 44100) = 32013.4
        check_tone(&audio, frames, 44_100, 0.4, 0.5);
        assert_eq!(report.source_rate, 44_100);
        assert_eq!(report.source_channels, 2);
        assert_eq!(report.source_frames, frames as u64);
        assert_eq!(
            (report.gaps, report.skipped_packets, report.concealed_frames),
            (0, 0, 0)
        );
        assert_eq!(report.container_errors, 0);
        assert!(!report.truncated);
    }

    #[test]
    fn tone_48k_24bit() {
        let frames = 48_000 + 11;
        let bytes = wav(48_000, 1, Fmt::S24, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, None).unwrap();
        check_tone(&audio, frames, 48_000, 0.5, 0.5);
    }

    #[test]
    fn tone_8k_is_upsampled() {
        let frames = 8_000 + 3;
        let bytes = wav(8_000, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, Some("wav")).unwrap();
        check_tone(&audio, frames, 8_000, 0.5, 0.5);
    }

    #[test]
    fn tone_float32_and_float64_wav() {
        for fmt in [Fmt::F32, Fmt::F64] {
            let frames = 22_050;
            let bytes = wav(22_050, 2, fmt, frames, sine(440.0, 0.5));
            let audio = decode_bytes(bytes, Some("wav")).unwrap();
            check_tone(&audio, frames, 22_050, 0.5, 0.5);
        }
    }

    #[test]
    fn tone_8bit_and_32bit_int_wav() {
        for fmt in [Fmt::U8, Fmt::S32] {
            let frames = 32_000 + 5;
            let bytes = wav(32_000, 1, fmt, frames, sine(440.0, 0.5));
            let audio = decode_bytes(bytes, None).unwrap();
            check_tone(&audio, frames, 32_000, 0.5, 0.5);
        }
    }

    #[test]
    fn odd_rate_uses_sinc_fallback_and_stays_aligned() {
        // gcd(44101, 16000) = 1: the exact FFT block would be huge, so the sinc resampler runs.
        let frames = 44_101 + 999;
        let bytes = wav(44_101, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, None).unwrap();
        check_tone(&audio, frames, 44_101, 0.5, 0.5);
        // Upsampling through the sinc path (gcd(8001, 16000) = 1).
        let frames = 8_001 + 77;
        let bytes = wav(8_001, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, None).unwrap();
        check_tone(&audio, frames, 8_001, 0.5, 0.5);
    }

    #[test]
    fn sixteen_khz_16bit_passes_through_bit_exact() {
        let frames = 16_000;
        let bytes = wav(16_000, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let expected: Vec<i16> = bytes[44..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let audio = decode_bytes(bytes, None).unwrap();
        assert_eq!(audio.samples(), &expected[..]);
    }

    #[test]
    fn project_speech_sample_decodes_bit_exact() {
        // Real 16 kHz mono speech with a LIST chunk before the data.
        let path = format!("{FIXTURES}../pyannote-sample.wav");
        let raw = std::fs::read(&path).unwrap();
        let data = raw.windows(4).position(|w| w == b"data").unwrap() + 8;
        let expected: Vec<i16> = raw[data..]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let audio = decode_file(Path::new(&path)).unwrap();
        assert_eq!(audio.len(), 480_000);
        assert!(audio.samples() == &expected[..]);
    }

    #[test]
    fn ten_minutes_of_44k1_stereo_decode_to_the_right_length() {
        // 441 Hz at 44.1 kHz repeats every 100 frames: build one period and tile it, so the
        // test spends its time decoding rather than synthesising.
        let rate = 44_100u32;
        let frames = 10 * 60 * rate as usize + 77;
        let mut period = Vec::with_capacity(400);
        for i in 0..100 {
            let v = 0.5 * (2.0 * PI * 441.0 * i as f64 / f64::from(rate)).sin();
            Fmt::S16.encode(v, &mut period);
            Fmt::S16.encode(-v, &mut period);
        }
        let data_len = frames * 4;
        let mut bytes = wav_header(rate, 2, Fmt::S16, data_len as u32);
        bytes.reserve(data_len);
        for _ in 0..frames / 100 {
            bytes.extend_from_slice(&period);
        }
        bytes.extend_from_slice(&period[..(frames % 100) * 4]);
        let start = std::time::Instant::now();
        let (audio, report) = decode_bytes_with_report(bytes, Some("wav")).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(report.source_frames, frames as u64);
        let expected = (frames as f64 * 16_000.0 / 44_100.0).round() as usize;
        assert!(
            audio.len().abs_diff(expected) <= 1,
            "{} vs {expected}",
            audio.len()
        );
        // Opposite-phase channels cancel in the mean: the output must be near silence.
        let peak = audio.samples().iter().map(|s| s.unsigned_abs()).max();
        assert!(peak.unwrap_or(0) <= 2, "peak {peak:?}");
        eprintln!("10 min of 44.1 kHz stereo decoded in {elapsed:?}");
    }

    #[test]
    fn long_input_tone_is_resampled_correctly_across_many_chunks() {
        let frames = 44_100 * 20;
        let bytes = wav(44_100, 1, Fmt::S16, frames, sine(440.0, 0.5));
        let audio = decode_bytes(bytes, None).unwrap();
        check_tone(&audio, frames, 44_100, 0.5, 0.5);
    }

    #[test]
    fn resampling_is_band_limited() {
        // Above the 8 kHz output Nyquist frequency a tone must vanish instead of aliasing
        // (12 kHz would fold to 4 kHz); below it, it must pass at full amplitude.
        let rms_of = |freq: f64, rate: u32| {
            let bytes = wav(rate, 1, Fmt::F32, rate as usize, sine(freq, 0.5));
            let x = to_f32(&decode_bytes(bytes, None).unwrap());
            let mid = &x[2_000..14_000];
            (mid.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / mid.len() as f64).sqrt()
        };
        let full = 0.5 / 2f64.sqrt();
        for rate in [44_100, 48_000, 44_101] {
            let alias = rms_of(12_000.0, rate);
            assert!(
                alias < full * 1e-3,
                "{rate} Hz: 12 kHz leaks at rms {alias}"
            );
            let pass = rms_of(7_000.0, rate);
            assert!(
                (pass / full - 1.0).abs() < 0.02,
                "{rate} Hz: 7 kHz at {pass}"
            );
        }
    }

    #[test]
    fn decompression_bombs_are_rejected() {
        // A WAV header cannot be a bomb (PCM is as big as its audio), but a forged huge data
        // length must not make the decoder reserve that much memory; with the data present
        // only up to 1 s it simply decodes 1 s.
        let mut bytes = wav_header(16_000, 1, Fmt::S16, u32::MAX - 64);
        bytes.resize(44 + 32_000, 0);
        let (audio, report) = decode_bytes_with_report(bytes, None).unwrap();
        assert_eq!(audio.len(), 16_000);
        assert!(report.truncated);
        // The pipeline refuses to grow past its limit (MAX_SAMPLES in real decodes; 10 s here
        // so the test stays fast), through both the pass-through and the resampling path.
        for rate in [SAMPLE_RATE, 44_100] {
            let mut p = Pipeline::new(usize::MAX, 160_000);
            let block = vec![0.1f32; rate as usize];
            let mut result = Ok(());
            for _ in 0..11 {
                result = p.push(rate, &block);
                if result.is_err() {
                    break;
                }
            }
            assert!(matches!(result, Err(AudioError::TooLong)), "{result:?}");
        }
        let mut p = Pipeline::new(0, 160_000);
        p.push(48_000, &vec![0.1f32; 480_000]).unwrap();
        assert_eq!(p.finish().unwrap().len(), 160_000);
    }
}
