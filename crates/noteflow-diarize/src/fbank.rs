//! Kaldi-compatible 80-bin log-mel filterbank, the front end CAM++ was trained with.
//!
//! Settings follow `torchaudio.compliance.kaldi.fbank` as 3D-Speaker calls it: 25 ms frames every
//! 10 ms, snip edges, DC offset removed, pre-emphasis 0.97, Povey window, 512-point FFT, power
//! spectrum, mel bins from 20 Hz to 8 kHz, natural log floored at f32 epsilon, no dither.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

pub const NUM_MEL_BINS: usize = 80;
/// 25 ms at 16 kHz.
pub const FRAME_LENGTH: usize = 400;
/// 10 ms at 16 kHz.
pub const FRAME_SHIFT: usize = 160;
const FFT_SIZE: usize = 512;
const PREEMPHASIS: f32 = 0.97;
const LOW_FREQ: f32 = 20.0;
const HIGH_FREQ: f32 = 8000.0;
const SAMPLE_RATE: f32 = 16000.0;

/// Reusable filterbank extractor (window, mel matrix and FFT plan computed once).
pub struct Fbank {
    window: Vec<f32>,
    /// For each mel bin: first FFT bin index and its weights.
    mel_banks: Vec<(usize, Vec<f32>)>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl Default for Fbank {
    fn default() -> Self {
        Self::new()
    }
}

fn mel_scale(freq: f32) -> f32 {
    1127.0 * (1.0 + freq / 700.0).ln()
}

impl Fbank {
    pub fn new() -> Self {
        let window = (0..FRAME_LENGTH)
            .map(|i| {
                let hann = 0.5
                    - 0.5
                        * (2.0 * std::f64::consts::PI * i as f64 / (FRAME_LENGTH - 1) as f64).cos();
                hann.powf(0.85) as f32
            })
            .collect();

        let num_fft_bins = FFT_SIZE / 2;
        let fft_bin_width = SAMPLE_RATE / FFT_SIZE as f32;
        let mel_low = mel_scale(LOW_FREQ);
        let mel_high = mel_scale(HIGH_FREQ);
        let mel_delta = (mel_high - mel_low) / (NUM_MEL_BINS + 1) as f32;
        let mel_banks = (0..NUM_MEL_BINS)
            .map(|bin| {
                let left = mel_low + bin as f32 * mel_delta;
                let center = left + mel_delta;
                let right = center + mel_delta;
                let weights: Vec<(usize, f32)> = (0..num_fft_bins)
                    .filter_map(|i| {
                        let mel = mel_scale(fft_bin_width * i as f32);
                        if mel > left && mel < right {
                            let w = if mel <= center {
                                (mel - left) / (center - left)
                            } else {
                                (right - mel) / (right - center)
                            };
                            Some((i, w))
                        } else {
                            None
                        }
                    })
                    .collect();
                let first = weights.first().map_or(0, |(i, _)| *i);
                (first, weights.into_iter().map(|(_, w)| w).collect())
            })
            .collect();

        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT_SIZE);
        Self {
            window,
            mel_banks,
            fft,
        }
    }

    /// Number of frames for `num_samples` samples (snip edges: only whole frames).
    pub fn num_frames(num_samples: usize) -> usize {
        if num_samples < FRAME_LENGTH {
            0
        } else {
            1 + (num_samples - FRAME_LENGTH) / FRAME_SHIFT
        }
    }

    /// Log-mel features of 16 kHz `samples`, row-major `[frames, 80]`, appended to `out`.
    /// Sample scale does not matter to CAM++: the per-utterance mean is subtracted afterwards,
    /// which removes any constant gain in the log domain.
    pub fn compute(&self, samples: &[f32], out: &mut Vec<f32>) {
        let frames = Self::num_frames(samples.len());
        out.reserve(frames * NUM_MEL_BINS);
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; FFT_SIZE / 2 + 1];
        for f in 0..frames {
            let chunk = &samples[f * FRAME_SHIFT..f * FRAME_SHIFT + FRAME_LENGTH];
            let mean = chunk.iter().sum::<f32>() / FRAME_LENGTH as f32;
            for (dst, &s) in frame.iter_mut().zip(chunk) {
                *dst = s - mean;
            }
            for i in (1..FRAME_LENGTH).rev() {
                frame[i] -= PREEMPHASIS * frame[i - 1];
            }
            frame[0] -= PREEMPHASIS * frame[0];
            for (x, w) in frame.iter_mut().zip(&self.window) {
                *x *= w;
            }
            frame[FRAME_LENGTH..].fill(0.0);
            self.fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .expect("buffers are sized by the planner");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (first, weights) in &self.mel_banks {
                let energy: f32 = weights
                    .iter()
                    .zip(&power[*first..])
                    .map(|(w, p)| w * p)
                    .sum();
                out.push(energy.max(f32::EPSILON).ln());
            }
        }
    }
}

/// Subtract the per-bin mean over time (CAM++ expects mean-normalised features).
pub fn subtract_mean(features: &mut [f32]) {
    let frames = features.len() / NUM_MEL_BINS;
    if frames == 0 {
        return;
    }
    let mut mean = [0f32; NUM_MEL_BINS];
    for row in features.chunks_exact(NUM_MEL_BINS) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    for m in &mut mean {
        *m /= frames as f32;
    }
    for row in features.chunks_exact_mut(NUM_MEL_BINS) {
        for (v, m) in row.iter_mut().zip(&mean) {
            *v -= m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_follows_snip_edges() {
        assert_eq!(Fbank::num_frames(399), 0);
        assert_eq!(Fbank::num_frames(400), 1);
        assert_eq!(Fbank::num_frames(16000), 98);
    }

    #[test]
    fn a_tone_lights_the_mel_bin_holding_its_frequency() {
        let fbank = Fbank::new();
        let tone: Vec<f32> = (0..16000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin() * 0.5)
            .collect();
        let mut feats = Vec::new();
        fbank.compute(&tone, &mut feats);
        let row = &feats[NUM_MEL_BINS * 10..NUM_MEL_BINS * 11];
        let peak = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        // 1 kHz is 1000.0 mel on Kaldi's scale; bins are spaced (mel(8k)-mel(20))/81 ≈ 26.4 mel apart.
        let expected = ((mel_scale(1000.0) - mel_scale(LOW_FREQ))
            / ((mel_scale(HIGH_FREQ) - mel_scale(LOW_FREQ)) / 81.0))
            .round() as usize
            - 1;
        assert!(
            peak.abs_diff(expected) <= 1,
            "peak bin {peak}, expected about {expected}"
        );
    }

    /// The fixed signal of `scripts/fbank_golden.py`, sample for sample: three tones and
    /// seeded LCG noise, computed in f64 and rounded to f32 once.
    fn golden_signal() -> Vec<f32> {
        use std::f64::consts::PI;
        let mut state = 12_345u64;
        (0..8_000)
            .map(|n| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (state >> 40) as f64 / (1u64 << 24) as f64;
                let t = n as f64 / 16_000.0;
                let x = 0.30 * (2.0 * PI * 440.0 * t).sin()
                    + 0.20 * (2.0 * PI * 1234.5 * t + 0.7).sin()
                    + 0.10 * (2.0 * PI * 3100.0 * t).sin()
                    + 0.05 * (u - 0.5);
                x as f32
            })
            .collect()
    }

    // Generated by scripts/fbank_golden.py on 2026-12-02 with torch 2.15.0+cu132, torchaudio
    // 2.11.1+cu132 (CPU path), numpy 2.4.6, Python 3.11.7:
    //   python3 -m venv /tmp/fbank-venv && /tmp/fbank-venv/bin/pip install torch torchaudio numpy
    //   /tmp/fbank-venv/bin/python scripts/fbank_golden.py
    // torchaudio.compliance.kaldi.fbank(num_mel_bins=80, frame_length=25, frame_shift=10,
    // dither=0, sample_frequency=16000, window_type="povey", preemphasis_coefficient=0.97,
    // remove_dc_offset=True, round_to_power_of_two=True, low_freq=20, high_freq=0 (Nyquist),
    // snip_edges=True, use_energy=False, use_power=True, use_log_fbank=True) on the float32
    // signal: 48 frames x 80 bins, values from -14.34 to 5.46.
    const GOLDEN_FRAMES: [usize; 5] = [0, 6, 12, 18, 24];
    const GOLDEN_BINS: [usize; 12] = [0, 3, 7, 11, 18, 25, 32, 40, 50, 60, 70, 79];
    #[rustfmt::skip]
    const GOLDEN: [[f32; 12]; 5] = [
        [-11.6777, -10.8921, -8.95333, -3.59276, -5.92314, -5.83066, 3.74027, -2.59616, -2.29956, -1.03955, -1.00954, -0.0330814],
        [-10.1868, -9.46584, -7.80404, -3.69591, -5.53605, -4.77615, 3.70454, -2.55088, -2.58825, -0.442871, -0.676998, -0.285212],
        [-9.83714, -9.90578, -6.56255, -3.66168, -4.83299, -4.02007, 3.70875, -2.72195, -1.94527, -0.868631, -0.00890284, 0.644416],
        [-9.85478, -9.16133, -9.01774, -3.63116, -6.76168, -4.92617, 3.70355, -3.02639, -2.05507, -1.37461, -0.272526, -0.117224],
        [-11.9535, -10.1519, -7.88635, -3.77138, -5.34703, -4.46524, 3.72311, -3.8215, -3.60548, -1.4366, -0.80666, 0.470896],
    ];
    /// Sum over the 80 bins of each of the first 25 frames.
    #[rustfmt::skip]
    const GOLDEN_FRAME_SUMS: [f64; 25] = [
        -224.5424, -231.4319, -228.5850, -206.9360, -212.5523,
        -218.1595, -214.6984, -216.1135, -219.0983, -230.1547,
        -222.0034, -219.7128, -204.8751, -218.4821, -224.0973,
        -242.1643, -217.9492, -214.8319, -215.9880, -213.7921,
        -217.2830, -226.2620, -212.9577, -230.8998, -229.0734,
    ];

    #[test]
    fn matches_torchaudio_kaldi_fbank_golden_values() {
        // Tolerances: torchaudio itself moves by up to 2.4e-4 per value (5.3e-4 per frame sum)
        // between float32 and float64 evaluation of the same signal, which is the rounding
        // noise any float32 implementation carries; the limits allow about four times that.
        // A real difference (window, pre-emphasis, mel edges, log floor, power vs magnitude)
        // moves values by 1e-2 or more.
        const VALUE_TOL: f32 = 1e-3;
        const SUM_TOL: f64 = 2e-3;
        let signal = golden_signal();
        let mut feats = Vec::new();
        Fbank::new().compute(&signal, &mut feats);
        assert_eq!(Fbank::num_frames(signal.len()), 48);
        assert_eq!(feats.len(), 48 * NUM_MEL_BINS);
        let mut worst = 0f32;
        for (row, &frame) in GOLDEN_FRAMES.iter().enumerate() {
            for (col, &bin) in GOLDEN_BINS.iter().enumerate() {
                let got = feats[frame * NUM_MEL_BINS + bin];
                let want = GOLDEN[row][col];
                worst = worst.max((got - want).abs());
                assert!(
                    (got - want).abs() <= VALUE_TOL,
                    "frame {frame} bin {bin}: {got}, torchaudio {want}"
                );
            }
        }
        let mut worst_sum = 0f64;
        for (frame, &want) in GOLDEN_FRAME_SUMS.iter().enumerate() {
            let got: f64 = feats[frame * NUM_MEL_BINS..(frame + 1) * NUM_MEL_BINS]
                .iter()
                .map(|&v| f64::from(v))
                .sum();
            worst_sum = worst_sum.max((got - want).abs());
            assert!(
                (got - want).abs() <= SUM_TOL,
                "frame {frame} sum: {got}, torchaudio {want}"
            );
        }
        eprintln!(
            "fbank vs torchaudio: max |diff| {worst:e} per value, {worst_sum:e} per frame sum"
        );
    }

    #[test]
    fn mean_subtraction_zeroes_each_bin_mean() {
        let mut feats: Vec<f32> = (0..NUM_MEL_BINS * 3).map(|i| i as f32).collect();
        subtract_mean(&mut feats);
        for bin in 0..NUM_MEL_BINS {
            let s: f32 = (0..3).map(|f| feats[f * NUM_MEL_BINS + bin]).sum();
            assert!(s.abs() < 1e-4);
        }
    }
}
