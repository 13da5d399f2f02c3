//! The job service run inside this process, for the commands that need one and were given no
//! `--server` (`diarize`, `console`): embedded SQLite (in a temporary directory unless one is given),
//! the bundled models, an ephemeral loopback port.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use noteflow_diarize::Diarizer;
use noteflow_server::{Application, DatabaseConfig, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct LocalServer {
    address: String,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), noteflow_server::ServeError>>,
    /// Removed when the server is dropped (after it has stopped).
    _temporary: Option<tempfile::TempDir>,
}

impl LocalServer {
    /// Starts the service; `data_dir` keeps its database (default: a temporary directory).
    pub async fn start(data_dir: Option<&Path>, diarizer: Diarizer) -> Result<Self> {
        let (data_dir, temporary) = match data_dir {
            Some(dir) => (dir.to_path_buf(), None),
            None => {
                let dir =
                    tempfile::tempdir().context("cannot create a temporary data directory")?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let mut config = ServerConfig::ephemeral(DatabaseConfig::Sqlite { data_dir });
        config.metrics_addr = None;
        config.runner.concurrency = 1;
        let app = Application::build(config, Arc::new(diarizer)).await?;
        let address = format!("http://{}", app.grpc_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            address,
            stop,
            server,
            _temporary: temporary,
        })
    }

    /// The gRPC address a client connects to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops the service gracefully (running jobs go back to the queue). Drop every client of it
    /// first, so no open connection holds the stop up.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.server
            .await
            .context("the in-process server crashed")??;
        Ok(())
    }
}
