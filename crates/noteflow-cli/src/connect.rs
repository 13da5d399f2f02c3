//! Where the job service is and how patiently its jobs are followed: the arguments that make a
//! [`Client`]. Their defaults are the client's own ([`FollowConfig::default`]).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use noteflow_client::{Client, ClientConfig, FollowConfig};

/// The server's address and the follow settings (options of every `jobs` subcommand).
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The job service's address.
    #[arg(
        long,
        global = true,
        env = "NOTEFLOW_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    #[command(flatten)]
    pub follow: FollowArgs,
}

impl ServerArgs {
    /// A client of the server with these follow settings. Must be called within the runtime that
    /// will drive its connection.
    pub fn client(&self) -> Result<Client> {
        client(&self.server, self.follow.config()?)
    }
}

/// How patiently a job is followed.
#[derive(Args, Clone)]
pub struct FollowArgs {
    /// Seconds between status polls (when the watch stream is not available).
    #[arg(long, global = true, default_value_t = FollowConfig::default().poll_interval.as_secs_f64())]
    poll_interval: f64,
    /// Give up on a job whose status and progress did not change over this many polls.
    #[arg(long, global = true, default_value_t = FollowConfig::default().max_unchanged_polls)]
    max_unchanged_polls: u32,
    /// Give up on a job not finished after this many seconds (default: no limit).
    #[arg(long, global = true)]
    deadline: Option<f64>,
    /// Follow by polling only (no watch stream).
    #[arg(long, global = true)]
    no_watch: bool,
}

impl FollowArgs {
    pub fn config(&self) -> Result<FollowConfig> {
        let defaults = FollowConfig::default();
        Ok(FollowConfig {
            poll_interval: Duration::try_from_secs_f64(self.poll_interval)
                .ok()
                .filter(|d| !d.is_zero())
                .context("--poll-interval must be a positive number of seconds")?,
            max_unchanged_polls: self.max_unchanged_polls.max(1),
            overall_deadline: match self.deadline {
                Some(seconds) => Some(
                    Duration::try_from_secs_f64(seconds)
                        .context("--deadline must be a positive number of seconds")?,
                ),
                None => defaults.overall_deadline,
            },
            use_watch: defaults.use_watch && !self.no_watch,
            ..defaults
        })
    }
}

/// A client of the server at `address`, following jobs as `follow` says.
pub fn client(address: &str, follow: FollowConfig) -> Result<Client> {
    Ok(Client::new(
        address,
        ClientConfig {
            follow,
            ..ClientConfig::default()
        },
    )?)
}
