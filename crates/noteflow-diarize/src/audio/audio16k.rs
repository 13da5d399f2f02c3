//! [`Audio16k`]: mono 16 kHz audio stored as `i16`, and the `f32` <-> `i16` conversion shared
//! with the resampler.

use std::fmt;

use crate::audio::limits::SAMPLE_RATE;

/// i16 full scale used for both directions of the i16 <-> f32 conversion, so that 16-bit
/// 16 kHz input survives a decode bit-exactly (symphonia scales i16 by 1/32768 too).
pub(super) const I16_SCALE: f32 = 32_768.0;

/// Mono audio at [`SAMPLE_RATE`], stored as `i16` to halve the memory of long meetings.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Audio16k {
    samples: Vec<i16>,
}

impl fmt::Debug for Audio16k {
    // Printing hundreds of millions of samples helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audio16k")
            .field("len", &self.samples.len())
            .field("duration_secs", &self.duration_secs())
            .finish()
    }
}

impl Audio16k {
    /// Builds audio from 16 kHz `f32` samples (tests, synthesised input). Values are clamped to
    /// [-1, 1]; NaN becomes 0.
    pub fn from_f32_16k(samples: &[f32]) -> Self {
        Self {
            samples: samples.iter().map(|&x| f32_to_i16(x)).collect(),
        }
    }

    /// Wraps 16 kHz `i16` samples without copying.
    pub fn from_i16_16k(samples: Vec<i16>) -> Self {
        Self { samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }

    /// The raw samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    /// Consumes the audio, returning the raw samples.
    pub fn into_samples(self) -> Vec<i16> {
        self.samples
    }

    /// Fills `out` with the samples from `start` on, scaled to [-1, 1), zero-padding past the
    /// end. Models consume fixed-size `f32` windows; converting one window at a time keeps the
    /// whole recording in `i16`.
    pub fn copy_window_f32(&self, start: usize, out: &mut [f32]) {
        let available = self.samples.get(start..).unwrap_or(&[]);
        let n = available.len().min(out.len());
        let (head, tail) = out.split_at_mut(n);
        for (o, &s) in head.iter_mut().zip(available) {
            *o = f32::from(s) * (1.0 / I16_SCALE);
        }
        tail.fill(0.0);
    }
}

/// Rounds and saturates; NaN maps to 0 (Rust's float-to-int cast semantics).
pub(super) fn f32_to_i16(x: f32) -> i16 {
    (x * I16_SCALE).round() as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_f32_clamps_and_copy_window_pads() {
        let a = Audio16k::from_f32_16k(&[0.0, 0.5, -0.5, 2.0, -2.0, f32::NAN]);
        assert_eq!(a.samples(), &[0, 16_384, -16_384, 32_767, -32_768, 0]);
        assert_eq!(a.len(), 6);
        assert!(!a.is_empty());
        assert!((a.duration_secs() - 6.0 / 16_000.0).abs() < 1e-12);
        let mut out = [9.0f32; 4];
        a.copy_window_f32(4, &mut out);
        assert_eq!(out, [-1.0, 0.0, 0.0, 0.0]);
        a.copy_window_f32(100, &mut out);
        assert_eq!(out, [0.0; 4]);
        a.copy_window_f32(1, &mut out);
        assert_eq!(out, [0.5, -0.5, 32_767.0 / 32_768.0, -1.0]);
        assert!(Audio16k::default().is_empty());
    }
}
