//! In-process notice board of job changes: the runner and the RPC handlers post a job's id whenever
//! they change it, and watchers (WatchDiarizationJob, a cancel waiting for the end) re-read that job.
//! A notice carries no state, so a watcher that lags behind loses nothing: it re-reads the store.

use noteflow_store::JobId;
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct JobEvents {
    sender: broadcast::Sender<JobId>,
}

impl Default for JobEvents {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(1024).0,
        }
    }
}

impl JobEvents {
    pub fn changed(&self, job: JobId) {
        // No subscribers is fine: nobody is watching.
        let _ = self.sender.send(job);
    }

    pub fn subscribe(&self) -> JobSubscription {
        JobSubscription {
            receiver: self.sender.subscribe(),
        }
    }
}

pub struct JobSubscription {
    receiver: broadcast::Receiver<JobId>,
}

impl JobSubscription {
    /// Waits until `job` may have changed. Returns on a notice for `job`, on lag (some notices were
    /// dropped, so any of them may have been for `job`), or when the board is gone.
    pub async fn changed(&mut self, job: JobId) {
        loop {
            match self.receiver.recv().await {
                Ok(id) if id == job => return,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
