//! Test support: the real server in-process on an ephemeral port, and a fault-injecting TCP proxy
//! between it and the client.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use noteflow_client::{ClientConfig, FollowConfig, RetryPolicy};
use noteflow_server::testing::ControlledDiarizer;
use noteflow_server::{Application, DatabaseConfig, ServerConfig, SpeakerDiarizer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle};

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    _data_dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(diarizer: Arc<dyn SpeakerDiarizer>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::ephemeral(DatabaseConfig::Sqlite {
            data_dir: dir.path().to_path_buf(),
        });
        Self::launch(config, diarizer, Some(dir)).await
    }

    pub async fn start_memory(diarizer: Arc<dyn SpeakerDiarizer>) -> Self {
        Self::launch(
            ServerConfig::ephemeral(DatabaseConfig::Memory),
            diarizer,
            None,
        )
        .await
    }

    async fn launch(
        mut config: ServerConfig,
        diarizer: Arc<dyn SpeakerDiarizer>,
        dir: Option<tempfile::TempDir>,
    ) -> Self {
        config.runner.heartbeat_interval = Duration::from_millis(20);
        config.runner.poll_interval = Duration::from_millis(50);
        config.shutdown_grace = Duration::from_secs(2);
        let app = Application::build(config, diarizer).await.unwrap();
        let (addr, metrics_addr) = (app.grpc_addr(), app.metrics_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            metrics_addr,
            _data_dir: dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap()).await;
    }

    /// Waits until the server has answered at least `count` GetDiarizationJobStatus calls.
    pub async fn wait_for_status_calls(&self, count: f64) {
        eventually(&format!("{count} status calls"), || async {
            self.status_calls().await >= count
        })
        .await;
    }

    /// How many GetDiarizationJobStatus calls the server has answered (any code), from /metrics.
    pub async fn status_calls(&self) -> f64 {
        let mut stream = TcpStream::connect(self.metrics_addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with(r#"noteflow_rpc_requests_total{method="GetDiarizationJobStatus""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Client settings scaled down so the suite stays fast: 20 ms polls, 50 ms first backoff.
pub fn fast_config(use_watch: bool) -> ClientConfig {
    ClientConfig {
        call_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        keepalive_interval: Duration::from_millis(300),
        keepalive_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(400),
            max_hint: Duration::from_secs(1),
            jitter: 0.1,
        },
        follow: FollowConfig {
            use_watch,
            poll_interval: Duration::from_millis(20),
            poll_jitter: 0.1,
            max_unchanged_polls: 1000,
            overall_deadline: None,
            cancel_confirm_timeout: Duration::from_secs(5),
        },
        upload_chunk_bytes: 64 * 1024,
    }
}

/// Waits until `check` holds, asking again every few milliseconds (for state that cannot be
/// subscribed to, such as a metric or a count); panics naming `what` after 20 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waiting = async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .is_err()
    {
        panic!("waited 20 s for {what}");
    }
}

pub fn blocking() -> Arc<ControlledDiarizer> {
    Arc::new(ControlledDiarizer::blocking())
}

pub use noteflow_server::testing::tone_wav;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Accept and close at once: the server looks down.
    Refuse,
    /// Forward the client's bytes but never the server's: calls get no answer.
    Blackhole,
}

/// A TCP proxy in front of the server whose faults tests switch on and off.
pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<ProxyMode>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(ProxyMode::Pass));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (mode_in, connections_in) = (mode.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mode = *mode_in.lock().unwrap();
                if mode == ProxyMode::Refuse {
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    if mode == ProxyMode::Blackhole {
                        let (mut from_client, _) = client.split();
                        let (_, mut to_server) = server.split();
                        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                        std::future::pending::<()>().await;
                    } else {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections_in.lock().unwrap().push(task.abort_handle());
            }
        });
        Self {
            addr,
            mode,
            connections,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Forwards again, and cuts the connections opened while faulty so the next call opens a
    /// healthy one.
    pub fn heal(&self) {
        self.set_mode(ProxyMode::Pass);
        self.drop_connections();
    }

    /// Cuts every open connection (both sides see them close).
    pub fn drop_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.drop_connections();
    }
}
