//! Benchmark of the status path: many concurrent clients calling GetDiarizationJobStatus, each on
//! its own connection, against a server on SQLite. Reports requests per second and latency
//! percentiles per concurrency level.
//!
//! ```text
//! cargo run --release -p noteflow-server --example status_bench -- \
//!     [--server http://127.0.0.1:50051] [--clients 1,16,64,256] [--seconds 10] [--jobs 100]
//! ```
//! Without `--server` it starts a server in this process (SQLite in a temporary directory, a
//! diarizer double that completes at once); `scripts/bench-status.sh` runs it against a real
//! `noteflow serve` process instead, which is what BENCHMARKS.md records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use noteflow_proto::v1 as pb;
use noteflow_proto::v1::diarization_service_client::DiarizationServiceClient;
use noteflow_proto::v1::meeting_service_client::MeetingServiceClient;
use noteflow_server::testing::ControlledDiarizer;
use noteflow_server::{Application, DatabaseConfig, ServerConfig};
use tonic::transport::Channel;

struct Options {
    server: Option<String>,
    clients: Vec<usize>,
    seconds: f64,
    jobs: usize,
}

fn options() -> Options {
    let mut options = Options {
        server: None,
        clients: vec![1, 16, 64, 256],
        seconds: 10.0,
        jobs: 100,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--server" => options.server = Some(value),
            "--clients" => {
                options.clients = value
                    .split(',')
                    .map(|n| n.trim().parse().expect("--clients: numbers"))
                    .collect()
            }
            "--seconds" => options.seconds = value.parse().expect("--seconds: a number"),
            "--jobs" => options.jobs = value.parse().expect("--jobs: a number"),
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    options
}

async fn seed(channel: Channel, jobs: usize) -> Vec<String> {
    let mut meetings = MeetingServiceClient::new(channel.clone());
    let mut diarization = DiarizationServiceClient::new(channel);
    let audio = noteflow_server::testing::tone_wav(1.0);
    let mut ids = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let meeting = meetings
            .create_meeting(pb::CreateMeetingRequest {
                title: "bench".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .id;
        let upload = pb::UploadAudioRequest {
            meeting_id: meeting.clone(),
            format_hint: "wav".into(),
            chunk: audio.clone(),
            total_bytes: None,
        };
        meetings
            .upload_audio(tokio_stream::iter([upload]))
            .await
            .unwrap();
        let job = diarization
            .refine_speaker_diarization(pb::RefineSpeakerDiarizationRequest {
                meeting_id: meeting,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .job_id;
        ids.push(job);
    }
    ids
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run_level(endpoint: &str, job_ids: Arc<Vec<String>>, clients: usize, seconds: f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let channel = Channel::from_shared(endpoint.to_string())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let ids = job_ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = DiarizationServiceClient::new(channel);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut i = c;
            while Instant::now() < deadline {
                let job_id = ids[i % ids.len()].clone();
                i += 7;
                let started = Instant::now();
                match client
                    .get_diarization_job_status(pb::GetDiarizationJobStatusRequest { job_id })
                    .await
                {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.unwrap();
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64().max(seconds);
    all.sort();
    println!(
        "| {clients:>4} | {:>8.0} | {:>7.2} | {:>7.2} | {:>8.2} | {errors} |",
        all.len() as f64 / elapsed,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        percentile(&all, 0.999).as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let options = options();
    let mut _in_process = None;
    let endpoint = match &options.server {
        Some(server) => server.clone(),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let mut config = ServerConfig::ephemeral(DatabaseConfig::Sqlite {
                data_dir: dir.path().to_path_buf(),
            });
            config.metrics_addr = None;
            let app = Application::build(config, Arc::new(ControlledDiarizer::completing()))
                .await
                .unwrap();
            let endpoint = format!("http://{}", app.grpc_addr());
            tokio::spawn(app.run_until(std::future::pending()));
            _in_process = Some(dir);
            endpoint
        }
    };
    let channel = Channel::from_shared(endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let ids = Arc::new(seed(channel.clone(), options.jobs).await);
    // Measure the status path alone: wait until the seeded jobs have finished running.
    let mut client = DiarizationServiceClient::new(channel);
    for id in ids.iter() {
        loop {
            let job = client
                .get_diarization_job_status(pb::GetDiarizationJobStatusRequest {
                    job_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            if job.status >= pb::JobStatus::Completed as i32 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "seeded {} jobs on {endpoint}; {} s per level",
        ids.len(),
        options.seconds
    );
    println!("| clients | requests/s | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---|---|---|---|");
    for &clients in &options.clients {
        run_level(&endpoint, ids.clone(), clients, options.seconds).await;
    }
}
