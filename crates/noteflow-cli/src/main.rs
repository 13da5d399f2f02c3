//! `noteflow`: diarize audio (through the job service, in this process or on a server), run the
//! service, follow and manage its jobs, score RTTM, benchmark the engine.
//!
//! Layout (each module imports only those listed after it, and the arguments shared here):
//! - `diarize`: `noteflow diarize`, in-process or `--server`, one path through the client;
//! - `jobs`: `noteflow jobs start|status|watch|cancel|list`;
//! - `console`: `noteflow console`, a local web app over the client (its page embedded);
//! - `serve`: `noteflow serve`, the job service;
//! - `eval`, `bench`: scoring RTTM, measuring the engine;
//! - `local`: the job service run in this process (for `diarize` and `console`);
//! - `connect`: the server's address and the follow settings, made into a client;
//! - `output`: everything printed (turns, JSON, statuses, event lines, the progress bar);
//! - `exit`: the exit codes.

mod bench;
mod connect;
mod console;
mod diarize;
mod eval;
mod exit;
mod jobs;
mod local;
mod output;
mod serve;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use noteflow_client::SpeakerRequest;
use noteflow_diarize::{BackendKind, Diarizer, ModelDir, PipelineConfig, SpeakerConstraints};

#[derive(Parser)]
#[command(
    name = "noteflow",
    version,
    about = "Who spoke when: speaker diarization for meetings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Diarize an audio file and print its speaker turns (runs the job service in-process).
    Diarize(diarize::DiarizeArgs),
    /// Score hypothesis RTTM files against reference RTTM files (DER, JER).
    Eval(eval::EvalArgs),
    /// Measure compute time per audio second and peak memory of the whole pipeline.
    Bench(bench::BenchArgs),
    /// Run the diarization job service (gRPC).
    Serve(serve::ServeArgs),
    /// Start, follow, cancel and list jobs on a running service (exit codes: 0 ok, 1 error,
    /// 2 job failed, 3 cancelled, 4 timed out, 5 server unreachable).
    Jobs(jobs::JobsArgs),
    /// Open a local web console: upload meetings, watch jobs live, cancel, see who spoke when.
    Console(console::ConsoleArgs),
}

/// Where the models are and which back-end runs them.
#[derive(Args, Clone)]
pub struct EngineArgs {
    /// Directory holding the ONNX models [default: $NOTEFLOW_MODELS, else the project's models/].
    #[arg(long, env = "NOTEFLOW_MODELS")]
    models: Option<PathBuf>,
    /// Inference back-end: tract (pure Rust) or onnxruntime (needs the `onnxruntime` feature).
    #[arg(long, default_value = "tract", value_parser = parse_backend)]
    backend: BackendKind,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn parse_backend(s: &str) -> Result<BackendKind, String> {
    s.parse()
}

impl EngineArgs {
    pub fn load(&self) -> Result<Diarizer> {
        let models = self
            .models
            .clone()
            .map_or_else(ModelDir::default_location, ModelDir::new);
        let config = PipelineConfig {
            threads: self.threads,
            ..PipelineConfig::default()
        };
        Diarizer::load(self.backend, &models, config)
            .with_context(|| format!("loading models from {}", models.path().display()))
    }
}

/// How many speakers to expect.
#[derive(Args, Clone)]
pub struct SpeakerArgs {
    /// Exact number of speakers.
    #[arg(long, conflicts_with_all = ["min_speakers", "max_speakers"])]
    speakers: Option<usize>,
    /// At least this many speakers.
    #[arg(long)]
    min_speakers: Option<usize>,
    /// At most this many speakers.
    #[arg(long)]
    max_speakers: Option<usize>,
}

impl SpeakerArgs {
    pub fn constraints(&self) -> Result<SpeakerConstraints> {
        Ok(match self.speakers {
            Some(n) => SpeakerConstraints::exact(n)?,
            None => SpeakerConstraints::bounds(self.min_speakers, self.max_speakers)?,
        })
    }

    /// The same counts as the job service takes them.
    pub fn request(&self) -> SpeakerRequest {
        let count = |n: Option<usize>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        SpeakerRequest {
            exactly: count(self.speakers),
            min: count(self.min_speakers),
            max: count(self.max_speakers),
        }
    }
}

/// The async runtime of the commands that talk to the job service (or run it).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // --help and --version are not errors. A usage error is bad input: exit 1, not clap's
            // own 2, which here means that a job failed.
            let code = if error.use_stderr() {
                exit::ERROR
            } else {
                exit::OK
            };
            return std::process::ExitCode::from(code);
        }
    };
    // The service logs its lifecycle; one-shot commands only warnings.
    let default_filter = match cli.command {
        Command::Serve(_) | Command::Console(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match cli.command {
        Command::Diarize(args) => diarize::run(args),
        Command::Eval(args) => eval::run(args).map(|()| exit::OK),
        Command::Bench(args) => bench::run(args).map(|()| exit::OK),
        Command::Serve(args) => serve::run(args).map(|()| exit::OK),
        Command::Jobs(args) => jobs::run(args),
        Command::Console(args) => console::run(args).map(|()| exit::OK),
    };
    match code {
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            eprintln!("Error: {error:?}");
            std::process::ExitCode::from(exit::ERROR)
        }
    }
}
