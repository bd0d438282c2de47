//! The transaction inbox: the homeserver's token checked, each transaction stored before it is
//! answered and processed once; one left half-processed (a crash, a failed step) is taken again
//! by the homeserver's retry or by the sweep.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::routing;
use crate::{
    rooms::RoomError,
    state::AppState,
    store::appservice::{self, Taken},
};

/// Events one transaction may carry; Synapse sends at most 100 (and 50 ephemeral), so a
/// bigger batch is not from it.
pub const MAX_EVENTS: usize = 1_000;

/// How long a replica holds a transaction it is processing before another may take it over.
const CLAIM_MS: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Stored, but acting on it failed; it is taken again later.
    #[error("processing the transaction failed: {0}")]
    Processing(RoomError),
    /// Another replica holds it and has not finished: the homeserver is to retry, so that
    /// later transactions are not taken before it.
    #[error("another instance is processing this transaction")]
    HeldElsewhere,
}

#[derive(Deserialize)]
struct Transaction {
    events: Vec<serde_json::Value>,
}

/// Whether `presented` is the configured `hs_token`, compared in constant time. Without a
/// configured token nothing is accepted.
pub fn is_homeserver(state: &AppState, presented: Option<&str>) -> bool {
    match (&state.config.matrix.hs_token, presented) {
        (Some(expected), Some(presented)) => {
            use secrecy::ExposeSecret;
            bool::from(expected.expose_secret().as_bytes().ct_eq(presented.as_bytes()))
        }
        _ => false,
    }
}

fn parse(body: &[u8]) -> Result<Transaction, InboxError> {
    let transaction: Transaction =
        serde_json::from_slice(body).map_err(|e| InboxError::Invalid(format!("not a transaction: {e}")))?;
    if transaction.events.len() > MAX_EVENTS {
        return Err(InboxError::Invalid(format!(
            "{} events in one transaction; at most {MAX_EVENTS} are taken",
            transaction.events.len()
        )));
    }
    Ok(transaction)
}

/// Stores the transaction before the homeserver hears back, then processes it unless it was
/// processed already or another replica is at it. True when this call processed it.
pub async fn receive(state: &AppState, txn_id: &str, body: &[u8]) -> Result<bool, InboxError> {
    if txn_id.is_empty() || txn_id.len() > 255 || !txn_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InboxError::Invalid("txnId must be 1 to 255 visible ASCII characters".into()));
    }
    let transaction = parse(body)?;
    let text = std::str::from_utf8(body).map_err(|e| InboxError::Invalid(e.to_string()))?;
    let now = state.clock.now_ms();
    let taken = {
        let mut conn = state.store.pool().acquire().await?;
        appservice::take(&mut conn, txn_id, text, transaction.events.len() as i64, now, now + CLAIM_MS)
            .await?
    };
    tracing::debug!(txn_id, events = transaction.events.len(), ?taken, "homeserver transaction received");
    match taken {
        Taken::ToProcess => {
            process(state, txn_id, &transaction).await?;
            Ok(true)
        }
        Taken::Processed => Ok(false),
        Taken::HeldElsewhere => {
            // Usually the other replica finishes within moments; answering before it does
            // would let the homeserver send the next transaction ahead of this one.
            for _ in 0..HELD_WAIT_POLLS {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let mut conn = state.store.pool().acquire().await?;
                if appservice::is_processed(&mut conn, txn_id).await? {
                    return Ok(false);
                }
            }
            Err(InboxError::HeldElsewhere)
        }
    }
}

/// How long (in 50 ms polls) a transaction another replica holds is waited for.
const HELD_WAIT_POLLS: usize = 100;

/// Acts on a taken transaction and marks it done; on a failure lets it go for a retry.
async fn process(state: &AppState, txn_id: &str, transaction: &Transaction) -> Result<(), InboxError> {
    let routed = routing::route(state, &transaction.events).await;
    let mut conn = state.store.pool().acquire().await?;
    match routed {
        Ok(()) => {
            appservice::mark_processed(&mut conn, txn_id, state.clock.now_ms()).await?;
            Ok(())
        }
        Err(e) => {
            appservice::release(&mut conn, txn_id).await?;
            Err(InboxError::Processing(e))
        }
    }
}

/// Processes the transactions stored but left unprocessed (a replica stopped midway, or a
/// step failed and the homeserver did not retry), oldest first. How many it processed.
pub async fn sweep(state: &AppState) -> Result<usize, InboxError> {
    let mut done = 0;
    loop {
        let now = state.clock.now_ms();
        let next = {
            let mut conn = state.store.pool().acquire().await?;
            appservice::take_stale(&mut conn, now, now + CLAIM_MS).await?
        };
        let Some((txn_id, body)) = next else { return Ok(done) };
        match parse(body.as_bytes()) {
            Ok(transaction) => process(state, &txn_id, &transaction).await?,
            // Stored bodies were parsed once; one that no longer parses is set aside.
            Err(e) => {
                tracing::error!(txn_id, error = %e, "a stored transaction no longer parses; skipped");
                let mut conn = state.store.pool().acquire().await?;
                appservice::mark_processed(&mut conn, &txn_id, now).await?;
            }
        }
        tracing::info!(txn_id, "left-over homeserver transaction processed");
        done += 1;
    }
}

/// Sweeps left-over transactions every `interval` until `stopped` turns true.
pub async fn run_sweeper(
    state: AppState,
    interval: std::time::Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "processing left-over homeserver transactions failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
    }
}
