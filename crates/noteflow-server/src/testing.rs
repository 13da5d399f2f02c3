//! A controllable [`SpeakerDiarizer`] for lifecycle tests: it blocks until released (or cancelled),
//! fails on demand, and reports how many runs started, so tests of cancel, timeout, races and restarts
//! are deterministic. End-to-end tests use the real engine instead.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use noteflow_diarize::{Audio16k, Diarization, SpeakerConstraints, Turn};

use crate::diarizer::{RunError, SpeakerDiarizer};

/// The longest a run blocks.
const MAX_BLOCK: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Control {
    released: bool,
    fail_with: Option<String>,
    honour_cancel: bool,
    speakers: usize,
}

/// See the module documentation. Share it as `Arc<ControlledDiarizer>`.
#[derive(Debug)]
pub struct ControlledDiarizer {
    control: Mutex<Control>,
    changed: Condvar,
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl ControlledDiarizer {
    /// Runs block (reporting no progress) until [`release`](Self::release) or a cancel.
    pub fn blocking() -> Self {
        Self {
            control: Mutex::new(Control {
                released: false,
                fail_with: None,
                honour_cancel: true,
                speakers: 2,
            }),
            changed: Condvar::new(),
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
        }
    }

    /// Runs complete at once.
    pub fn completing() -> Self {
        let this = Self::blocking();
        this.release();
        this
    }

    /// Lets every blocked and future run go on.
    pub fn release(&self) {
        self.control.lock().unwrap().released = true;
        self.changed.notify_all();
    }

    /// Runs that start from now on block again until the next [`release`](Self::release).
    pub fn block_again(&self) {
        self.control.lock().unwrap().released = false;
    }

    /// Released runs fail with `message` instead of producing a result.
    pub fn fail_with(&self, message: impl Into<String>) {
        self.control.lock().unwrap().fail_with = Some(message.into());
        self.changed.notify_all();
    }

    /// When false, a blocked run ignores its cancel flag (a worker that does not stop in time).
    pub fn honour_cancel(&self, honour: bool) {
        self.control.lock().unwrap().honour_cancel = honour;
        self.changed.notify_all();
    }

    /// How many speakers a result has.
    pub fn speakers(&self, n: usize) {
        self.control.lock().unwrap().speakers = n.max(1);
    }

    pub fn runs_started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn runs_finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    /// Waits (polling; for tests) until at least `n` runs have started.
    pub async fn wait_for_runs(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.runs_started() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl SpeakerDiarizer for ControlledDiarizer {
    fn diarize(
        &self,
        audio: &Audio16k,
        _constraints: SpeakerConstraints,
        progress: &mut dyn FnMut(f32),
        cancel: &AtomicBool,
    ) -> Result<Diarization, RunError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let _finished = FinishGuard(&self.finished);
        let mut control = self.control.lock().unwrap();
        let started = Instant::now();
        loop {
            if control.honour_cancel && cancel.load(Ordering::SeqCst) {
                return Err(RunError::Cancelled);
            }
            // A test that fails before releasing must end rather than hang: the runtime waits for
            // blocking threads when it shuts down.
            if started.elapsed() > MAX_BLOCK {
                return Err(RunError::Failed(
                    "the test double was never released".into(),
                ));
            }
            if control.released {
                break;
            }
            // Short waits so a raised cancel flag (which does not notify) is seen quickly.
            control = self
                .changed
                .wait_timeout(control, Duration::from_millis(5))
                .unwrap()
                .0;
        }
        if let Some(message) = control.fail_with.clone() {
            return Err(RunError::Failed(message));
        }
        let speakers = control.speakers;
        drop(control);
        for step in 1..=4 {
            progress(step as f32 / 4.0);
        }
        Ok(alternating_turns(audio.duration_secs(), speakers))
    }
}

struct FinishGuard<'a>(&'a AtomicUsize);

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `speakers` speakers taking turns of equal length over the whole audio.
fn alternating_turns(duration: f64, speakers: usize) -> Diarization {
    let turns_count = speakers * 2;
    let length = duration / turns_count as f64;
    let label = |i: usize| format!("SPEAKER_{:02}", i % speakers);
    let turns = (0..turns_count)
        .map(|i| Turn::new(i as f64 * length, (i + 1) as f64 * length, label(i)))
        .collect();
    Diarization {
        turns,
        speakers: (0..speakers).map(label).collect(),
        duration,
    }
}

/// A mono 16 kHz 16-bit WAV of `seconds` of a 440 Hz tone: audio the server accepts, for tests and
/// benchmarks that do not care what is said.
pub fn tone_wav(seconds: f64) -> Vec<u8> {
    let rate = 16_000u32;
    let n = (seconds * rate as f64) as u32;
    let mut wav = Vec::with_capacity(44 + 2 * n as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let sample =
            (0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() * i16::MAX as f64) as i16;
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}
