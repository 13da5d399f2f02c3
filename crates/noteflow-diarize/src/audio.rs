//! TEMPORARY placeholder until the real decoder lands (16-bit mono 16 kHz WAV only).
use std::path::Path;
pub const SAMPLE_RATE: u32 = 16_000;
#[derive(Debug, thiserror::Error)]
pub enum AudioError { #[error("io: {0}")] Io(#[from] std::io::Error), #[error("unsupported")] UnsupportedFormat }
pub struct Audio16k { samples: Vec<i16> }
impl Audio16k {
    pub fn len(&self) -> usize { self.samples.len() }
    pub fn is_empty(&self) -> bool { self.samples.is_empty() }
    pub fn duration_secs(&self) -> f64 { self.samples.len() as f64 / SAMPLE_RATE as f64 }
    pub fn samples(&self) -> &[i16] { &self.samples }
    pub fn copy_window_f32(&self, start: usize, out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() { *o = self.samples.get(start + i).map_or(0.0, |&s| s as f32 / 32768.0); }
    }
    pub fn from_f32_16k(s: &[f32]) -> Self { Self { samples: s.iter().map(|x| (x.clamp(-1.0, 1.0) * 32767.0) as i16).collect() } }
}
pub fn decode_file(path: &Path) -> Result<Audio16k, AudioError> {
    let b = std::fs::read(path)?;
    let mut i = 12;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4]; let sz = u32::from_le_bytes(b[i + 4..i + 8].try_into().unwrap()) as usize;
        if id == b"data" { let d = &b[i + 8..(i + 8 + sz).min(b.len())]; return Ok(Audio16k { samples: d.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect() }); }
        i += 8 + sz;
    }
    Err(AudioError::UnsupportedFormat)
}
