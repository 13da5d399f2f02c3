//! The notice listener: one connection of its own, outside the pool, that `LISTEN`s on the
//! `noteflow_jobs` channel and forwards each notification as a [`StoreNotice`] to every subscriber.
//!
//! The trigger in the schema sends "<kind> <job id>" for each change of a job that another replica
//! may care about. When the connection is lost (the database restarted, an operator terminated it),
//! the listener reconnects with backoff and then sends [`StoreNotice::Resync`]: notifications sent
//! while it was away are gone, so whoever waits on a job must read it again.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::{JobId, StoreNotice};

/// The channel the schema's trigger notifies.
pub(super) const CHANNEL: &str = "noteflow_jobs";

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The running listener; stops it when dropped (with the store).
pub(super) struct ListenerTask(tokio::task::JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ListenerTask {
    /// Starts listening; returns once the first `LISTEN` is in place (so a change made after the
    /// store connected is heard) or `wait` has passed (the listener keeps trying).
    pub(super) async fn start(
        config: tokio_postgres::Config,
        notices: broadcast::Sender<StoreNotice>,
        wait: Duration,
    ) -> Self {
        let (ready, listening) = oneshot::channel();
        let task = Self(tokio::spawn(listen(config, notices, ready)));
        if tokio::time::timeout(wait, listening).await.is_err() {
            tracing::warn!("not yet listening for PostgreSQL notices; continuing, still trying");
        }
        task
    }
}

/// A notification's payload as a notice; `None` (logged) for one this build does not know.
pub(super) fn parse_notice(payload: &str) -> Option<StoreNotice> {
    let (kind, id) = payload.split_once(' ')?;
    let id: JobId = id.parse().ok()?;
    Some(match kind {
        "queued" => StoreNotice::JobQueued(id),
        "cancel" => StoreNotice::CancelRequested(id),
        "progressed" => StoreNotice::JobProgressed(id),
        "ended" => StoreNotice::JobEnded(id),
        _ => return None,
    })
}

async fn listen(
    config: tokio_postgres::Config,
    notices: broadcast::Sender<StoreNotice>,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = FIRST_BACKOFF;
    let mut connected_before = false;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                // The connection is driven here, by polling its messages: that both runs the
                // client's queries and yields the notifications.
                let (forward, mut received) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if forward.send(n.payload().to_owned()).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "the PostgreSQL notice connection failed");
                                return;
                            }
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        if connected_before {
                            tracing::info!("the PostgreSQL notice connection is back");
                            let _ = notices.send(StoreNotice::Resync);
                        }
                        connected_before = true;
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                        backoff = FIRST_BACKOFF;
                        while let Some(payload) = received.recv().await {
                            match parse_notice(&payload) {
                                // No subscriber is not an error: nobody is waiting.
                                Some(notice) => drop(notices.send(notice)),
                                None => tracing::debug!(%payload, "ignored an unknown notice"),
                            }
                        }
                        tracing::warn!("lost the PostgreSQL notice connection; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for PostgreSQL notices"),
                }
                driver.abort();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the PostgreSQL notice connection; retrying")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_notices() {
        let id = JobId::new_random();
        assert_eq!(
            parse_notice(&format!("queued {id}")),
            Some(StoreNotice::JobQueued(id))
        );
        assert_eq!(
            parse_notice(&format!("cancel {id}")),
            Some(StoreNotice::CancelRequested(id))
        );
        assert_eq!(
            parse_notice(&format!("ended {id}")),
            Some(StoreNotice::JobEnded(id))
        );
        assert_eq!(parse_notice(&format!("renamed {id}")), None);
        assert_eq!(parse_notice("queued not-a-uuid"), None);
    }
}
