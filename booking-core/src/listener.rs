//! One LISTEN connection outside the pool, kept open: reconnects with backoff when it
//! drops, and says so, so that its user can catch up on what it may have missed.

use futures_util::StreamExt;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

/// LISTENs on `channel` until `cancel` fires. `on_notify` gets each payload;
/// `on_connect` runs after every (re)connection, once the LISTEN is in place.
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    channel: &'static str,
    on_notify: impl Fn(&str) + Send,
    on_connect: impl Fn() + Send,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        match listen_once(&config, channel, &on_notify, &on_connect, &cancel).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(channel, error = %e, retry_in_ms = backoff.as_millis() as u64, "LISTEN connection lost");
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
    channel: &str,
    on_notify: &(impl Fn(&str) + Send),
    on_connect: &(impl Fn() + Send),
    cancel: &CancellationToken,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN to complete and for notifications
    // to arrive; a task forwards what it yields until it closes.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = messages.next().await {
            if tx.send(m).is_err() {
                break;
            }
        }
    });
    if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")).await {
        driver.abort();
        return Err(e.to_string());
    }
    on_connect();
    let outcome = loop {
        tokio::select! {
            _ = cancel.cancelled() => break Ok(()),
            m = rx.recv() => match m {
                Some(Ok(AsyncMessage::Notification(n))) => on_notify(n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.to_string()),
                None => break Err("connection closed".to_owned()),
            }
        }
    };
    driver.abort();
    outcome
}
