//! `noteflow diarize FILE`: the main job, end to end. By default it starts the job service in this
//! process (embedded SQLite, bundled models, an ephemeral loopback port) and goes through the same
//! lifecycle a remote client does: create a meeting, upload the audio over gRPC, start a job, watch
//! it to the end, fetch the result. `--engine-only` calls the engine directly instead.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use noteflow_diarize::{Diarization, Diarizer, Turn};
use noteflow_proto::v1 as pb;
use noteflow_proto::v1::diarization_service_client::DiarizationServiceClient;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use noteflow_server::{Application, DatabaseConfig, ServerConfig};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::{EngineArgs, SpeakerArgs};

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Rttm,
    Json,
}

#[derive(Args)]
pub struct DiarizeArgs {
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
    /// Keep the job service's SQLite database here (default: a temporary directory, removed after).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run the engine directly, without the job service.
    #[arg(long, conflicts_with = "server")]
    engine_only: bool,
    /// Send the job to a running `noteflow serve` at this address instead (e.g.
    /// http://127.0.0.1:50051): upload, follow with retries, print the turns; Ctrl-C cancels it.
    #[arg(long, conflicts_with = "data_dir")]
    server: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
}

const UPLOAD_CHUNK: usize = 1 << 20;

/// Returns the process exit code (see `remote` for their meanings).
pub fn run(args: DiarizeArgs) -> Result<u8> {
    let constraints = args.speakers.constraints()?;
    if let Some(server) = &args.server {
        return crate::remote::diarize(
            &args.file,
            &args.speakers,
            args.format,
            &crate::remote::ServerArgs::at(server),
        );
    }
    let diarizer = args.engine.load()?;
    let result = if args.engine_only {
        engine_only(&args, &diarizer, constraints)?
    } else {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        runtime.block_on(through_the_service(&args, diarizer))?
    };
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
    Ok(0)
}

fn engine_only(
    args: &DiarizeArgs,
    diarizer: &Diarizer,
    constraints: noteflow_diarize::SpeakerConstraints,
) -> Result<Diarization> {
    let audio = noteflow_diarize::decode_file(&args.file)
        .with_context(|| format!("cannot read audio from {}", args.file.display()))?;
    let mut last = -1i32;
    let mut progress = |fraction: f32| show_progress(args, fraction, &mut last);
    let result = diarizer.diarize(&audio, constraints, &mut progress, &AtomicBool::new(false));
    if args.progress {
        eprintln!();
    }
    Ok(result?)
}

fn show_progress(args: &DiarizeArgs, fraction: f32, last: &mut i32) {
    let percent = (fraction * 100.0) as i32;
    if args.progress && percent != *last {
        *last = percent;
        eprint!("\rdiarizing {}: {percent:3}%", args.file.display());
    }
}

async fn through_the_service(args: &DiarizeArgs, diarizer: Diarizer) -> Result<Diarization> {
    let temporary;
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::tempdir().context("cannot create a temporary data directory")?;
            temporary.path().to_path_buf()
        }
    };
    let mut config = ServerConfig::ephemeral(DatabaseConfig::Sqlite { data_dir });
    config.metrics_addr = None;
    config.runner.concurrency = 1;
    let app = Application::build(config, Arc::new(diarizer)).await?;
    let endpoint = format!("http://{}", app.grpc_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let result = follow_one_job(args, &endpoint).await;
    let _ = stop.send(());
    server.await.context("the in-process server crashed")??;
    result
}

async fn follow_one_job(args: &DiarizeArgs, endpoint: &str) -> Result<Diarization> {
    let channel = Channel::from_shared(endpoint.to_string())?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {endpoint}"))?;
    let mut meetings = MeetingServiceClient::new(channel.clone());
    let mut jobs = DiarizationServiceClient::new(channel);
    let name = args.file.display().to_string();

    let meeting = meetings
        .create_meeting(pb::CreateMeetingRequest {
            title: name.clone(),
        })
        .await?
        .into_inner()
        .id;
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {name}"))?;
    let hint = args
        .file
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut chunks: Vec<pb::UploadAudioRequest> = bytes
        .chunks(UPLOAD_CHUNK)
        .map(|chunk| pb::UploadAudioRequest {
            chunk: chunk.to_vec(),
            ..Default::default()
        })
        .collect();
    if chunks.is_empty() {
        chunks.push(pb::UploadAudioRequest::default());
    }
    chunks[0].meeting_id = meeting.clone();
    chunks[0].format_hint = hint;
    let uploaded = meetings
        .upload_audio(tokio_stream::iter(chunks))
        .await
        .map_err(|status| anyhow::anyhow!("cannot use {name}: {}", status.message()))?
        .into_inner();

    let speakers = &args.speakers;
    let started = jobs
        .refine_speaker_diarization(pb::RefineSpeakerDiarizationRequest {
            meeting_id: meeting,
            num_speakers: speakers.speakers.map(|n| n as u32),
            min_speakers: speakers.min_speakers.map(|n| n as u32),
            max_speakers: speakers.max_speakers.map(|n| n as u32),
            request_id: String::new(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("cannot start the job: {}", status.message()))?
        .into_inner();

    let mut stream = jobs
        .watch_diarization_job(pb::WatchDiarizationJobRequest {
            job_id: started.job_id.clone(),
        })
        .await?
        .into_inner();
    let mut last_percent = -1;
    let mut last = None;
    while let Some(update) = stream.next().await {
        let update = update?;
        show_progress(args, update.progress_percent / 100.0, &mut last_percent);
        last = Some(update);
    }
    if args.progress {
        eprintln!();
    }
    let job = last.context("the job stream ended without any status")?;
    match pb::JobStatus::try_from(job.status) {
        Ok(pb::JobStatus::Completed) => {}
        Ok(status) => bail!(
            "job {} ended {}: {}",
            job.job_id,
            status.as_str_name(),
            job.error_message
        ),
        Err(_) => bail!("job {} ended in an unknown state", job.job_id),
    }
    let result = jobs
        .get_diarization_result(pb::GetDiarizationResultRequest { job_id: job.job_id })
        .await?
        .into_inner();
    Ok(Diarization {
        turns: result
            .turns
            .into_iter()
            .map(|t| Turn::new(t.start_seconds, t.end_seconds, t.speaker))
            .collect(),
        speakers: result.speaker_ids,
        duration: uploaded.duration_seconds,
    })
}
