//! `noteflow bench`: how fast and how big the whole pipeline is, file by file.
//!
//! Reports wall-clock and CPU seconds per audio second (decode + diarize; model loading is shown
//! apart, as a server pays it once) and the process's peak resident memory. Run one file per
//! process to read each file's own peak (scripts/bench.sh does).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use noteflow_diarize::rttm::read_rttm_file;
use noteflow_diarize::scoring::{self, ScoringOptions};
use noteflow_diarize::SpeakerConstraints;

use crate::EngineArgs;

#[derive(Args)]
pub struct BenchArgs {
    /// Audio files. A `.rttm` beside a file (same stem) is used to report DER too.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

/// CPU time (user + system) of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full rusage into the pointer we pass; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Peak resident set size of this process, in MiB (VmHWM).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn run(args: BenchArgs) -> Result<()> {
    let started = Instant::now();
    let diarizer = args.engine.load()?;
    println!(
        "backend {} threads {} | model load {:.2} s | rss after load {:.0} MiB",
        diarizer.backend_name(),
        match args.engine.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        },
        started.elapsed().as_secs_f64(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    println!(
        "{:<36} {:>9} {:>8} {:>9} {:>11} {:>10} {:>5} {:>7} {:>9}",
        "file", "audio_s", "wall_s", "cpu_s", "wall/audio", "cpu/audio", "spk", "DER%", "peak_MiB"
    );
    for file in &args.files {
        let wall = Instant::now();
        let cpu = cpu_seconds();
        let audio = noteflow_diarize::decode_file(file)
            .with_context(|| format!("cannot read audio from {}", file.display()))?;
        let result = diarizer.diarize(
            &audio,
            SpeakerConstraints::auto(),
            &mut |_| {},
            &AtomicBool::new(false),
        )?;
        let wall = wall.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let seconds = audio.duration_secs();
        drop(audio);
        let der = read_rttm_file(file.with_extension("rttm"))
            .ok()
            .and_then(|r| {
                let reference: Vec<_> = r.into_values().flatten().collect();
                (!reference.is_empty()).then(|| {
                    scoring::der(&reference, &result.turns, None, &ScoringOptions::default()).der
                        * 100.0
                })
            });
        println!(
            "{:<36} {:>9.1} {:>8.2} {:>9.2} {:>11.4} {:>10.4} {:>5} {:>7} {:>9.0}",
            file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into()
            ),
            seconds,
            wall,
            cpu,
            wall / seconds,
            cpu / seconds,
            result.speakers.len(),
            der.map_or("-".to_string(), |d| format!("{d:.2}")),
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
