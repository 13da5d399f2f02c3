//! `noteflow`: diarize audio locally, score RTTM, benchmark the engine.

mod bench;
mod diarize;
mod eval;
mod remote;
mod serve;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
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
    Jobs(remote::JobsArgs),
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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The service logs its lifecycle; one-shot commands only warnings.
    let default_filter = match cli.command {
        Command::Serve(_) => "info",
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
        Command::Eval(args) => eval::run(args).map(|()| remote::EXIT_OK),
        Command::Bench(args) => bench::run(args).map(|()| remote::EXIT_OK),
        Command::Serve(args) => serve::run(args).map(|()| remote::EXIT_OK),
        Command::Jobs(args) => remote::jobs(args),
    };
    match code {
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            eprintln!("Error: {error:?}");
            std::process::ExitCode::from(remote::EXIT_ERROR)
        }
    }
}
