//! `noteflow`: diarize audio locally, score RTTM, benchmark the engine.

mod bench;
mod eval;
mod serve;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
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
    /// Diarize an audio file locally and print its speaker turns.
    Diarize(DiarizeArgs),
    /// Score hypothesis RTTM files against reference RTTM files (DER, JER).
    Eval(eval::EvalArgs),
    /// Measure compute time per audio second and peak memory of the whole pipeline.
    Bench(bench::BenchArgs),
    /// Run the diarization job service (gRPC).
    Serve(serve::ServeArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Rttm,
    Json,
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

#[derive(Args)]
struct DiarizeArgs {
    /// Audio file (WAV, FLAC, MP3, Ogg Vorbis).
    file: PathBuf,
    #[command(flatten)]
    speakers: SpeakerArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "rttm")]
    format: OutputFormat,
    /// Show progress on stderr.
    #[arg(long)]
    progress: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

fn diarize(args: DiarizeArgs) -> Result<()> {
    let constraints = args.speakers.constraints()?;
    let diarizer = args.engine.load()?;
    let audio = noteflow_diarize::decode_file(&args.file)
        .with_context(|| format!("cannot read audio from {}", args.file.display()))?;
    let mut last = -1i32;
    let mut progress = |fraction: f32| {
        let percent = (fraction * 100.0) as i32;
        if args.progress && percent != last {
            last = percent;
            eprint!("\rdiarizing {}: {percent:3}%", args.file.display());
        }
    };
    let result = diarizer.diarize(&audio, constraints, &mut progress, &AtomicBool::new(false));
    if args.progress {
        eprintln!();
    }
    let result = result?;
    match args.format {
        OutputFormat::Rttm => {
            let file_id = args
                .file
                .file_stem()
                .map_or("audio".into(), |s| s.to_string_lossy());
            print!("{}", result.to_rttm(&file_id));
        }
        OutputFormat::Json => println!("{}", result.to_json()),
    }
    Ok(())
}

fn main() -> Result<()> {
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
    match cli.command {
        Command::Diarize(args) => diarize(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
    }
}
