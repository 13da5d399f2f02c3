//! Test doubles and fixtures (feature `testing`): a controllable [`SpeakerDiarizer`] for lifecycle
//! tests, which blocks until released (or cancelled), fails on demand, and reports how many runs
//! started and finished, so tests of cancel, timeout, races and restarts are deterministic; and a WAV
//! writer for audio nobody listens to. End-to-end tests use the real engine instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use noteflow_diarize::{Audio16k, Diarization, SpeakerConstraints, Turn};
use tokio::sync::watch;

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

/// How many runs started and ended, and the most that were under way at once. Tests wait on it
/// changing rather than polling it.
#[derive(Debug, Clone, Copy, Default)]
struct Runs {
    started: usize,
    finished: usize,
    most_at_once: usize,
}

/// See the module documentation. Share it as `Arc<ControlledDiarizer>`.
#[derive(Debug)]
pub struct ControlledDiarizer {
    control: Mutex<Control>,
    changed: Condvar,
    runs: watch::Sender<Runs>,
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
            runs: watch::Sender::new(Runs::default()),
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
        self.runs.borrow().started
    }

    pub fn runs_finished(&self) -> usize {
        self.runs.borrow().finished
    }

    /// The most runs that were under way at the same time so far.
    pub fn most_runs_at_once(&self) -> usize {
        self.runs.borrow().most_at_once
    }

    /// Waits until at least `n` runs have started; false if `timeout` passes first.
    pub async fn wait_for_runs(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(|runs| runs.started >= n, timeout).await
    }

    /// Waits until at least `n` runs have ended; false if `timeout` passes first.
    pub async fn wait_for_finished(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(|runs| runs.finished >= n, timeout).await
    }

    async fn wait_for(&self, done: impl FnMut(&Runs) -> bool, timeout: Duration) -> bool {
        let mut runs = self.runs.subscribe();
        let reached = tokio::time::timeout(timeout, runs.wait_for(done)).await;
        matches!(reached, Ok(Ok(_)))
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
        self.runs.send_modify(|runs| {
            runs.started += 1;
            runs.most_at_once = runs.most_at_once.max(runs.started - runs.finished);
        });
        let _finished = FinishGuard(&self.runs);
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

/// Counts a run as finished however it ends.
struct FinishGuard<'a>(&'a watch::Sender<Runs>);

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|runs| runs.finished += 1);
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
    const RATE: u32 = 16_000;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let samples = (seconds * f64::from(RATE)) as u32;
    let mut wav = std::io::Cursor::new(Vec::with_capacity(44 + 2 * samples as usize));
    let mut writer = hound::WavWriter::new(&mut wav, spec).expect("a WAV header fits in memory");
    for i in 0..samples {
        let t = f64::from(i) / f64::from(RATE);
        let sample = 0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() * f64::from(i16::MAX);
        writer
            .write_sample(sample as i16)
            .expect("samples fit in memory");
    }
    writer.finalize().expect("a WAV in memory can be finished");
    wav.into_inner()
}
