//! Test helpers shared by the audio tests: WAV builders, fixtures and signal measurements.

use std::f64::consts::PI;

use crate::audio::audio16k::Audio16k;
use crate::audio::limits::SAMPLE_RATE;

pub(super) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/audio/");

pub(super) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {path}: {e}"))
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Fmt {
    U8,
    S16,
    S24,
    S32,
    F32,
    F64,
}

impl Fmt {
    pub(super) fn bytes(self) -> u16 {
        match self {
            Fmt::U8 => 1,
            Fmt::S16 => 2,
            Fmt::S24 => 3,
            Fmt::S32 | Fmt::F32 => 4,
            Fmt::F64 => 8,
        }
    }

    pub(super) fn tag(self) -> u16 {
        match self {
            Fmt::F32 | Fmt::F64 => 3,
            _ => 1,
        }
    }

    pub(super) fn encode(self, v: f64, out: &mut Vec<u8>) {
        let c = v.clamp(-1.0, 1.0);
        match self {
            Fmt::U8 => out.push((c * 127.0 + 128.0).round() as u8),
            Fmt::S16 => out.extend(((c * 32767.0).round() as i16).to_le_bytes()),
            Fmt::S24 => out.extend(&((c * 8_388_607.0).round() as i32).to_le_bytes()[..3]),
            Fmt::S32 => out.extend(((c * 2_147_483_647.0).round() as i32).to_le_bytes()),
            Fmt::F32 => out.extend((v as f32).to_le_bytes()),
            Fmt::F64 => out.extend(v.to_le_bytes()),
        }
    }
}

/// A canonical 44-byte WAV header announcing `data_len` bytes of audio.
pub(super) fn wav_header(rate: u32, channels: u16, fmt: Fmt, data_len: u32) -> Vec<u8> {
    let block_align = channels * fmt.bytes();
    let mut h = Vec::with_capacity(44);
    h.extend(b"RIFF");
    h.extend(36u32.saturating_add(data_len).to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes());
    h.extend(fmt.tag().to_le_bytes());
    h.extend(channels.to_le_bytes());
    h.extend(rate.to_le_bytes());
    h.extend((rate * u32::from(block_align)).to_le_bytes());
    h.extend(block_align.to_le_bytes());
    h.extend((fmt.bytes() * 8).to_le_bytes());
    h.extend(b"data");
    h.extend(data_len.to_le_bytes());
    h
}

/// A WAV file of `frames` frames; `signal(t_secs, channel)` gives each sample.
pub(super) fn wav(
    rate: u32,
    channels: u16,
    fmt: Fmt,
    frames: usize,
    signal: impl Fn(f64, usize) -> f64,
) -> Vec<u8> {
    let data_len = frames * usize::from(channels) * usize::from(fmt.bytes());
    let mut w = wav_header(rate, channels, fmt, data_len as u32);
    w.reserve(data_len);
    for i in 0..frames {
        let t = i as f64 / f64::from(rate);
        for c in 0..usize::from(channels) {
            fmt.encode(signal(t, c), &mut w);
        }
    }
    w
}

pub(super) fn sine(freq: f64, amp: f64) -> impl Fn(f64, usize) -> f64 {
    move |t, _| amp * (2.0 * PI * freq * t).sin()
}

pub(super) fn to_f32(a: &Audio16k) -> Vec<f32> {
    let mut v = vec![0.0; a.len()];
    a.copy_window_f32(0, &mut v);
    v
}

/// Frequency from interpolated upward zero crossings.
pub(super) fn zero_crossing_freq(x: &[f32]) -> f64 {
    let mut first = None;
    let mut last = 0.0;
    let mut count = 0usize;
    for i in 1..x.len() {
        let (a, b) = (f64::from(x[i - 1]), f64::from(x[i]));
        if a < 0.0 && b >= 0.0 {
            let t = (i - 1) as f64 + a / (a - b);
            first.get_or_insert(t);
            last = t;
            count += 1;
        }
    }
    let first = first.expect("no zero crossing");
    (count - 1) as f64 * f64::from(SAMPLE_RATE) / (last - first)
}

/// Amplitude and time shift (in 16 kHz samples, positive = late) of a sine of known
/// frequency that started at phase 0 at t = 0, fitted over whole cycles of `x[from..to]`.
pub(super) fn sine_fit(x: &[f32], freq: f64, from: usize, to: usize) -> (f64, f64) {
    let w = 2.0 * PI * freq / f64::from(SAMPLE_RATE);
    let period = f64::from(SAMPLE_RATE) / freq;
    let cycles = ((to - from) as f64 / period).floor();
    let n_end = from + (cycles * period).round() as usize;
    let (mut s, mut c) = (0.0, 0.0);
    for (n, &y) in x.iter().enumerate().take(n_end).skip(from) {
        s += f64::from(y) * (w * n as f64).sin();
        c += f64::from(y) * (w * n as f64).cos();
    }
    let len = (n_end - from) as f64;
    let (a, b) = (2.0 * s / len, 2.0 * c / len);
    // y = A sin(w (n - d)) = A cos(wd) sin(wn) - A sin(wd) cos(wn)
    let amp = a.hypot(b);
    let delay = (-b).atan2(a) / w;
    (amp, delay)
}

/// Checks length, pitch, amplitude and timing of a decoded 440 Hz sine.
pub(super) fn check_tone(
    audio: &Audio16k,
    in_frames: usize,
    in_rate: u32,
    amp: f64,
    delay_tol: f64,
) {
    let expected = (in_frames as f64 * 16_000.0 / f64::from(in_rate)).round() as i64;
    let got = audio.len() as i64;
    assert!(
        (got - expected).abs() <= 1,
        "length {got}, expected {expected} (±1)"
    );
    let x = to_f32(audio);
    // Skip the edges, where the band-limited resampler rings against the implicit
    // silence around the file.
    let (from, to) = (800, x.len() - 800);
    let f = zero_crossing_freq(&x[from..to]);
    assert!((f - 440.0).abs() < 1.0, "frequency {f} Hz, expected 440 Hz");
    let (a, d) = sine_fit(&x, 440.0, from, to);
    assert!(
        (a - amp).abs() < 0.01 * amp.max(0.1),
        "amplitude {a}, expected {amp}"
    );
    assert!(d.abs() < delay_tol, "time shift {d} samples");
}

/// Deterministic xorshift, so failures reproduce.
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
