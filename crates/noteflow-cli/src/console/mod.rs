//! `noteflow console`: a local web app over the job service. This side is the app's back end: it
//! serves the page (embedded in the binary, see `assets`) and a small HTTP API (`api`) that does
//! everything through [`noteflow_client::Client`] — uploads, starts, follows (pushed to the page as
//! server-sent events), confirmed cancels. The page only shows what the client reports: retries,
//! stalls, cancel outcomes are decided here, never re-implemented in the browser.
//!
//! With no `--server` the job service runs in this process on embedded SQLite, as
//! `noteflow diarize` does. The console listens on loopback unless told otherwise.

mod api;
mod assets;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};

use crate::connect::{self, FollowArgs};
use crate::local::LocalServer;
use crate::EngineArgs;

#[derive(Args)]
pub struct ConsoleArgs {
    /// Use a running `noteflow serve` at this address (default: run the job service in this
    /// process, on embedded SQLite).
    #[arg(long, env = "NOTEFLOW_SERVER")]
    server: Option<String>,
    /// Where the console's web page is served (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve the page on a non-loopback address. The console has no authentication: anyone who
    /// can reach it can upload, read and delete meetings.
    #[arg(long)]
    allow_remote: bool,
    /// Keep the in-process service's database and the console's copies of uploaded audio here
    /// (default: a temporary directory, removed on exit).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    follow: FollowArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

pub fn run(args: ConsoleArgs) -> Result<()> {
    if !args.listen.ip().is_loopback() && !args.allow_remote {
        bail!(
            "refusing to serve the console on {}: it has no authentication, so anyone who can \
             reach that address could read and delete meetings; listen on 127.0.0.1 or pass \
             --allow-remote",
            args.listen
        );
    }
    let follow = args.follow.config()?;
    // The models load only when the service runs in this process.
    let diarizer = match args.server {
        Some(_) => None,
        None => Some(args.engine.load()?),
    };
    crate::runtime()?.block_on(async move {
        let temporary;
        let data_dir = match &args.data_dir {
            Some(dir) => dir.clone(),
            None => {
                temporary =
                    tempfile::tempdir().context("cannot create a temporary data directory")?;
                temporary.path().to_path_buf()
            }
        };
        let local = match diarizer {
            Some(diarizer) => Some(LocalServer::start(Some(&data_dir), diarizer).await?),
            None => None,
        };
        let server_address = match (&args.server, &local) {
            (Some(address), _) => address.clone(),
            (None, Some(local)) => local.address().to_string(),
            (None, None) => unreachable!("a local server runs when no --server is given"),
        };
        let client = connect::client(&server_address, follow)?;
        let audio_dir = data_dir.join("console-audio");
        tokio::fs::create_dir_all(&audio_dir)
            .await
            .with_context(|| format!("cannot create {}", audio_dir.display()))?;
        // Raised on SIGINT/SIGTERM: the page's event streams end, so the graceful stop is not
        // held up by browsers that keep them open.
        let (stopping, stop_seen) = tokio::sync::watch::channel(false);
        let app = api::router(api::Console::new(
            client,
            server_address.clone(),
            local.is_some(),
            audio_dir,
            stop_seen,
        ));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        // Tests and people read this line to find the page.
        println!("console: http://{address}/ (job service: {server_address})");
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
                let _ = stopping.send(true);
            })
            .await
            .context("the console's web server failed")?;
        if let Some(local) = local {
            local.stop().await?;
        }
        Ok(())
    })
}
