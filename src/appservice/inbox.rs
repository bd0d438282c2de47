//! The transaction inbox: the homeserver's token checked, each transaction stored once.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{
    domain::ChatroomId,
    state::AppState,
    store::{appservice, chatrooms, jobs},
};

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
    if new {
        let rooms = drifted_rooms(state, &mut conn, &transaction.events).await?;
        for room in &rooms {
            // A drift check: a change of the backend's own waits as it was; the worker runs it.
            jobs::enqueue_check(&mut conn, *room, state.clock.now_ms()).await?;
            tracing::info!(
                chatroom = room,
                "homeserver event touched what the backend owns; checking the room"
            );
        }
        appservice::mark_processed(&mut conn, txn_id, state.clock.now_ms()).await?;
    }
    Ok(new)
}

/// State the backend owns in its rooms: a change to it by anyone but the bot is drift.
const OWNED_STATE: [&str; 6] = [
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.history_visibility",
];

/// The managed rooms whose owned state (or one of our users' membership) someone other than
/// the bot changed in these events. Events of rooms we do not manage are ignored.
async fn drifted_rooms(
    state: &AppState,
    conn: &mut sqlx::AnyConnection,
    events: &[serde_json::Value],
) -> Result<Vec<ChatroomId>, InboxError> {
    let ids = state.homeserver.ids();
    let mut rooms = Vec::new();
    for event in events {
        let (Some(kind), Some(room), Some(sender)) =
            (event["type"].as_str(), event["room_id"].as_str(), event["sender"].as_str())
        else {
            continue;
        };
        if sender == ids.bot().as_str() || event.get("state_key").is_none() {
            continue;
        }
        // Our users' own joins are the syncs' doing; a leave, a ban, or anyone acting on one of
        // our users is not.
        let target = event["state_key"].as_str().unwrap_or_default();
        let membership = event["content"]["membership"].as_str().unwrap_or_default();
        let ours_member = kind == "m.room.member"
            && ruma::UserId::parse(target).is_ok_and(|user| ids.app_user(&user).is_some())
            && (matches!(membership, "leave" | "ban") || sender != target);
        if !OWNED_STATE.contains(&kind) && !ours_member {
            continue;
        }
        if let Some(id) = chatrooms::id_of_matrix_room(conn, room).await? {
            if !rooms.contains(&id) {
                rooms.push(id);
            }
        }
    }
    Ok(rooms)
}
