//! The transaction inbox: the homeserver's token checked, each transaction stored once.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{state::AppState, store::appservice};

/// Events one transaction may carry; Synapse sends at most 100 (and 50 ephemeral), so a
/// bigger batch is not from it.
pub const MAX_EVENTS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// No token, or not the homeserver's: nothing is read.
    #[error("the homeserver's token is required")]
    Forbidden,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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

/// Stores the transaction before the homeserver hears back; true when it was new (a retried
/// txn id, or one another replica took, is answered alike and not taken again).
pub async fn receive(state: &AppState, txn_id: &str, body: &[u8]) -> Result<bool, InboxError> {
    if txn_id.is_empty() || txn_id.len() > 255 || !txn_id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InboxError::Invalid("txnId must be 1 to 255 visible ASCII characters".into()));
    }
    let transaction: Transaction =
        serde_json::from_slice(body).map_err(|e| InboxError::Invalid(format!("not a transaction: {e}")))?;
    if transaction.events.len() > MAX_EVENTS {
        return Err(InboxError::Invalid(format!(
            "{} events in one transaction; at most {MAX_EVENTS} are taken",
            transaction.events.len()
        )));
    }
    let text = std::str::from_utf8(body).map_err(|e| InboxError::Invalid(e.to_string()))?;
    let mut conn = state.store.pool().acquire().await?;
    let new =
        appservice::record(&mut conn, txn_id, text, transaction.events.len() as i64, state.clock.now_ms())
            .await?;
    tracing::debug!(txn_id, events = transaction.events.len(), new, "homeserver transaction received");
    Ok(new)
}
