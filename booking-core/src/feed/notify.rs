//! Waking the other processes: one `pg_notify` for whatever this process changed in
//! the last few milliseconds, sent outside any write transaction (see the module docs
//! of [`crate::feed`]).

use crate::database::Cached;
use crate::error::Error;
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The channel each process's notifier announces its seat events on, and that a
/// [`Listener`](crate::feed::Listener) LISTENs on. The payload is empty: a
/// notification only says "read the feed".
pub const EVENTS_CHANNEL: &str = "booking_events";

/// How long the notifier gathers changes into one NOTIFY.
const NOTIFY_COALESCE: Duration = Duration::from_millis(2);

/// Turns this process's changes into one `pg_notify` every few milliseconds at most,
/// outside any write transaction (see the module docs).
pub(super) async fn notifier(
    pool: Pool,
    mut local: tokio::sync::watch::Receiver<u64>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = local.changed() => if changed.is_err() { return },
        }
        tokio::time::sleep(NOTIFY_COALESCE).await;
        local.borrow_and_update();
        let sent = async {
            let client = crate::database::client(&pool).await?;
            client
                .cexec("SELECT pg_notify($1, '')", &[&EVENTS_CHANNEL])
                .await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = sent.await {
            tracing::debug!(error = %e, "could not notify other processes; they will poll");
        }
    }
}
