//! The process's one LISTEN connection, outside the pool: it reconnects with backoff
//! when it drops and tells its followers so, since notifications sent while it was
//! away are lost and they must look for themselves.
//!
//! The change feed follows it ([`crate::feed::EVENTS_CHANNEL`]): other processes
//! notify there when they have written seat events.

use crate::engine::Engine;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// What the listener tells its followers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// A notification arrived.
    Notification {
        /// The channel it was sent on (the feed's is [`crate::feed::EVENTS_CHANNEL`]).
        channel: String,
        /// Its payload, as sent (empty from this crate's notifier).
        payload: String,
    },
    /// The connection is (re)established: anything may have been missed before.
    Connected,
}

/// A handle on the LISTEN connection; clone it to share.
#[derive(Clone)]
pub struct Listener {
    tx: Arc<broadcast::Sender<Wakeup>>,
}

impl Listener {
    /// Connects to `config` and LISTENs on the feed's channel until `cancel` fires, as
    /// a task of `engine`.
    pub fn start(
        engine: &Engine,
        config: tokio_postgres::Config,
        cancel: CancellationToken,
    ) -> Listener {
        let (tx, _) = broadcast::channel(4096);
        let tx = Arc::new(tx);
        let listener = Listener { tx: tx.clone() };
        let channels = [super::EVENTS_CHANNEL];
        engine.spawn(run(config, channels, tx, cancel));
        listener
    }

    /// Follows the wake-ups from now on. A follower that falls behind gets
    /// [`Wakeup::Connected`] in place of what it missed.
    pub fn follow(&self) -> Follower {
        Follower {
            rx: self.tx.subscribe(),
        }
    }
}

/// One follower of the listener.
pub struct Follower {
    rx: broadcast::Receiver<Wakeup>,
}

impl Follower {
    /// The next wake-up; `None` once the listener has stopped.
    pub async fn next(&mut self) -> Option<Wakeup> {
        match self.rx.recv().await {
            Ok(w) => Some(w),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Wakeup::Connected),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

async fn run(
    config: tokio_postgres::Config,
    channels: [&'static str; 1],
    tx: Arc<broadcast::Sender<Wakeup>>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        match listen_once(&config, &channels, &tx, &cancel).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "LISTEN connection lost");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    channels: &[&'static str],
    tx: &broadcast::Sender<Wakeup>,
    cancel: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (msg_tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN to complete and for notifications
    // to arrive; a task forwards what it yields until it closes (awaited below).
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            if msg_tx.send(m).is_err() {
                break;
            }
        }
    });
    let listen: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
    if let Err(e) = client.batch_execute(&listen).await {
        driver.abort();
        let _ = driver.await;
        return Err(e.to_string());
    }
    let _ = tx.send(Wakeup::Connected);
    let outcome = loop {
        tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            m = rx.recv() => match m {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let _ = tx.send(Wakeup::Notification {
                        channel: n.channel().to_owned(),
                        payload: n.payload().to_owned(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.to_string()),
                None => break Err("connection closed".to_owned()),
            }
        }
    };
    // Dropping the driver closes the connection; waiting for it means this task (which
    // the engine tracks) ends only once the connection has.
    driver.abort();
    let _ = driver.await;
    outcome
}
