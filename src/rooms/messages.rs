//! Messages: sent as the bot or as one of the room's users (appservice masquerading), read back
//! newest first, redacted. Nothing is stored here: the homeserver holds the history.

use ruma::{OwnedEventId, OwnedUserId};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{load, Idempotency, RoomError, RoomResult};
use crate::{
    domain::{AppUserId, ChatroomId, Role},
    matrix::{MessagePage, PurgeStatus},
    state::AppState,
    store::{self, chatrooms, idempotency, moderation},
};

/// Characters of a message's plain body; with the HTML body the event stays well under
/// Matrix's 64 KiB.
pub const MAX_BODY_CHARS: usize = 16_000;
/// Bytes of a message's HTML body.
pub const MAX_FORMATTED_BYTES: usize = 32 * 1024;
/// Messages per history page.
pub const MAX_PAGE: u32 = 100;
/// Bytes of a message's JSON content: a Matrix event is at most 64 KiB with its envelope.
pub const MAX_CONTENT_BYTES: usize = 60_000;

/// A message to send, checked.
pub struct NewMessage {
    pub body: String,
    pub formatted_body: Option<String>,
    pub notice: bool,
}

impl NewMessage {
    pub fn parse(body: String, formatted_body: Option<String>, notice: bool) -> RoomResult<Self> {
        let chars = body.chars().count();
        if body.trim().is_empty() {
            return Err(RoomError::Invalid("body must not be empty".into()));
        }
        if chars > MAX_BODY_CHARS {
            return Err(RoomError::Invalid(format!(
                "body is {chars} characters long; at most {MAX_BODY_CHARS} are allowed"
            )));
        }
        if let Some(html) = &formatted_body {
            if html.len() > MAX_FORMATTED_BYTES {
                return Err(RoomError::Invalid(format!(
                    "formattedBody is {} bytes; at most {MAX_FORMATTED_BYTES} are allowed",
                    html.len()
                )));
            }
        }
        let message = Self { body, formatted_body, notice };
        // UTF-8 and JSON escaping can make a message within the caps too big for one event.
        let size = serde_json::to_vec(&message.content()).map_or(usize::MAX, |json| json.len());
        if size > MAX_CONTENT_BYTES {
            return Err(RoomError::Invalid(format!(
                "the message takes {size} bytes as Matrix JSON; at most {MAX_CONTENT_BYTES} fit in one event"
            )));
        }
        Ok(message)
    }

    fn content(&self) -> Value {
        let mut content = json!({
            "msgtype": if self.notice { "m.notice" } else { "m.text" },
            "body": self.body,
        });
        if let Some(html) = &self.formatted_body {
            content["format"] = json!("org.matrix.custom.html");
            content["formatted_body"] = json!(html);
        }
        content
    }
}

/// A message as history shows it.
pub struct Message {
    pub event_id: String,
    /// The app user who sent it; `None` for the bot and for senders outside the namespace.
    pub sender_id: Option<AppUserId>,
    pub sender: String,
    pub body: Option<String>,
    pub formatted_body: Option<String>,
    pub notice: bool,
    /// Unix milliseconds, as the homeserver stamped it.
    pub timestamp: Option<i64>,
    pub redacted: bool,
}

/// The Matrix transaction id of a send: from the caller's Idempotency-Key, so a retry that
/// reaches the homeserver before our record of the key is one message there too; random
/// without a key.
pub fn transaction_id(idempotency: Option<&Idempotency>) -> String {
    match idempotency {
        Some(Idempotency { caller, key }) => {
            hex::encode(&Sha256::digest(format!("{caller}\0{key}").as_bytes())[..16])
        }
        None => hex::encode(rand::random::<[u8; 16]>()),
    }
}

const OPERATION: &str = "message";

/// Sends the message as `sender` (one of the room's users, not banned, not muted, allowed to
/// post in a read-only room) or, with `None`, as the bot.
pub async fn send(
    state: &AppState,
    id: ChatroomId,
    sender: Option<AppUserId>,
    message: NewMessage,
    idempotency: Option<&Idempotency>,
) -> RoomResult<OwnedEventId> {
    let room = load(state, id).await?;
    let matrix_room = room.matrix_room_id.clone().ok_or(RoomError::NotOnHomeserver(id))?;
    let as_user: Option<OwnedUserId> = match sender {
        None => None,
        Some(user) => {
            let role = room.roles.role_of(user).ok_or(RoomError::SenderHoldsNoRole { room: id, user })?;
            let mut conn = state.store.pool().acquire().await?;
            if moderation::ban_rank(&mut conn, id, user).await?.is_some() {
                return Err(RoomError::CannotPost(format!("user {user} is banned from chatroom {id}")));
            }
            if moderation::mute_rank(&mut conn, id, user).await?.is_some() {
                return Err(RoomError::CannotPost(format!("user {user} is muted in chatroom {id}")));
            }
            if room.settings.read_only && role == Role::Assigned {
                return Err(RoomError::CannotPost(format!(
                    "chatroom {id} is read-only: only its admins and moderators post"
                )));
            }
            Some(state.homeserver.ids().user_id(user).map_err(RoomError::Invalid)?)
        }
    };
    let content = message.content();
    let fingerprint = hex::encode(Sha256::digest(format!("{id}|{sender:?}|{content}").as_bytes()));
    if let Some(Idempotency { caller, key }) = idempotency {
        let mut conn = state.store.pool().acquire().await?;
        if let Some(recorded) = idempotency::find(&mut conn, caller, key).await? {
            if recorded.operation != OPERATION || recorded.fingerprint != fingerprint {
                return Err(RoomError::IdempotencyKeyReused);
            }
            if let Some(event) = recorded.event_id.and_then(|event| ruma::EventId::parse(event).ok()) {
                return Ok(event);
            }
        }
    }
    // After the replay above: a message sent before the archive is still its own answer.
    if room.archived_at.is_some() {
        return Err(RoomError::Archived(id));
    }
    let txn_id = transaction_id(idempotency);
    let event = state.homeserver.send_message(&matrix_room, as_user.as_deref(), &txn_id, content).await?;
    tracing::info!(chatroom = id, event = %event, sender = ?sender, "message sent");
    if let Some(Idempotency { caller, key }) = idempotency {
        let recorded = idempotency::Recorded {
            operation: OPERATION.to_owned(),
            fingerprint,
            chatroom_id: id,
            event_id: Some(event.to_string()),
        };
        let mut tx = state.store.begin().await?;
        match idempotency::insert(&mut tx, caller, key, &recorded, state.clock.now_ms()).await {
            Ok(()) => tx.commit().await?,
            // A concurrent send with the same key recorded it first: the same transaction id,
            // so the homeserver gave both the same event.
            Err(e) if store::is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(event)
}

/// A page of the room's messages, newest first, and the token of the next (older) page.
pub async fn history(
    state: &AppState,
    id: ChatroomId,
    from: Option<&str>,
    limit: u32,
) -> RoomResult<(Vec<Message>, Option<String>)> {
    let room = load(state, id).await?;
    let Some(matrix_room) = &room.matrix_room_id else { return Ok((Vec::new(), None)) };
    let MessagePage { events, next } = match state.homeserver.messages(matrix_room, from, limit).await {
        // Only a token can be wrong in what we ask: not one `next` gave.
        Err(e) if e.status() == Some(400) && from.is_some() => {
            return Err(RoomError::BadPageToken("from is not a page token `next` gave".into()))
        }
        other => other?,
    };
    let ids = state.homeserver.ids();
    let messages = events
        .iter()
        .filter_map(|event| {
            let sender = event["sender"].as_str()?.to_owned();
            let content = &event["content"];
            let redacted = !event["unsigned"]["redacted_because"].is_null();
            Some(Message {
                event_id: event["event_id"].as_str()?.to_owned(),
                sender_id: ruma::UserId::parse(&sender).ok().and_then(|user| ids.app_user(&user)),
                sender,
                body: content["body"].as_str().map(str::to_owned),
                formatted_body: content["formatted_body"].as_str().map(str::to_owned),
                notice: content["msgtype"] == "m.notice",
                timestamp: event["origin_server_ts"].as_i64(),
                redacted,
            })
        })
        .collect();
    Ok((messages, next))
}

/// Pins (or unpins) one of the room's messages: `m.room.pinned_events` on the homeserver,
/// read and written as the bot, so pins made in clients stay. Pinning twice changes nothing.
pub async fn pin(
    state: &AppState,
    id: ChatroomId,
    event: &ruma::EventId,
    pinned: bool,
) -> RoomResult<Vec<String>> {
    // Pins are read, changed and written back: one writer at a time here (a sync reading the
    // room included, so it cannot store pins older than ours). A client pinning at the same
    // moment can still lose to us: Matrix has no compare-and-set.
    let _room = state.reconciler.lock_room(id).await;
    let room = load(state, id).await?;
    let matrix_room = room.matrix_room_id.clone().ok_or(RoomError::NotOnHomeserver(id))?;
    let hs = &state.homeserver;
    if pinned {
        require_message(state, &matrix_room, event).await?;
    }
    let mut pins = hs.room_state(&matrix_room).await?.pinned;
    let was = pins.iter().any(|pin| pin == event.as_str());
    if !pinned && !was {
        return Err(RoomError::NotPinned(event.to_string()));
    }
    if pinned != was {
        if pinned {
            pins.push(event.to_string());
        } else {
            pins.retain(|pin| pin != event.as_str());
        }
        hs.set_state(&matrix_room, "m.room.pinned_events", json!({ "pinned": pins })).await?;
        tracing::info!(chatroom = id, event = %event, pinned, "pins changed");
    }
    let mut conn = state.store.pool().acquire().await?;
    chatrooms::set_pinned(&mut conn, id, &pins).await?;
    Ok(pins)
}

/// The event is one of the room's messages (not state, not a redaction, not another room's).
async fn require_message(state: &AppState, room: &ruma::RoomId, event: &ruma::EventId) -> RoomResult<()> {
    let found = state.homeserver.event(room, event).await?;
    if !found.is_some_and(|found| found["type"] == "m.room.message" && found.get("state_key").is_none()) {
        return Err(RoomError::NoSuchMessage(event.to_string()));
    }
    Ok(())
}

/// A history truncation: Synapse's purge id, and whether it finished within the request.
pub struct Truncation {
    pub purge_id: String,
    pub status: PurgeStatus,
}

/// Purges the room's message history on the homeserver; state (name, topic, members, power
/// levels) stays. A state event marks the cut: Synapse keeps the event it purges up to, and
/// never purges a room's last event, so no message is left behind it. Waits for the purge
/// within the request's wait.
pub async fn truncate(state: &AppState, id: ChatroomId) -> RoomResult<Truncation> {
    let room = load(state, id).await?;
    let matrix_room = room.matrix_room_id.clone().ok_or(RoomError::NotOnHomeserver(id))?;
    let hs = &state.homeserver;
    let marker = hs.mark_history(&matrix_room, state.clock.now_ms()).await?;
    let purge_id = match hs.purge_history(&matrix_room, &marker).await {
        Ok(purge_id) => purge_id,
        // Synapse runs one purge per room at a time.
        Err(e) if e.status() == Some(400) => return Err(RoomError::TruncationRunning(id)),
        Err(e) => return Err(e.into()),
    };
    let mut conn = state.store.pool().acquire().await?;
    chatrooms::record_truncation(&mut conn, id, &purge_id, state.clock.now_ms()).await?;
    drop(conn);
    tracing::info!(chatroom = id, purge = %purge_id, "history truncation started");
    let deadline = tokio::time::Instant::now() + crate::sync::request_wait(state.config.sync.request_wait);
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        // Once started, a failure to ask is "still running": the caller polls with the id.
        let status = hs.purge_history_status(&purge_id).await.ok().flatten().unwrap_or(PurgeStatus::Active);
        match status {
            PurgeStatus::Failed => return Err(RoomError::TruncationFailed(purge_id)),
            PurgeStatus::Complete => {
                // Every pinned message was before the cut: its pins would point at nothing.
                if !room.pinned.is_empty() {
                    let _room = state.reconciler.lock_room(id).await;
                    hs.set_state(&matrix_room, "m.room.pinned_events", json!({ "pinned": [] })).await?;
                    let mut conn = state.store.pool().acquire().await?;
                    chatrooms::set_pinned(&mut conn, id, &[]).await?;
                }
                return Ok(Truncation { purge_id, status });
            }
            PurgeStatus::Active if tokio::time::Instant::now() + delay > deadline => {
                return Ok(Truncation { purge_id, status })
            }
            PurgeStatus::Active => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(1));
    }
}

/// How one of the room's truncations is going; `None` for a purge of another room, or one
/// the homeserver does not know.
pub async fn purge_status(
    state: &AppState,
    id: ChatroomId,
    purge_id: &str,
) -> RoomResult<Option<PurgeStatus>> {
    let mut conn = state.store.pool().acquire().await?;
    if !chatrooms::truncation_of(&mut conn, id, purge_id).await? {
        return Ok(None);
    }
    drop(conn);
    Ok(state.homeserver.purge_history_status(purge_id).await?)
}

/// Redacts one of the room's messages as the bot; an event of another room is `NoSuchMessage`.
pub async fn redact(
    state: &AppState,
    id: ChatroomId,
    event: &ruma::EventId,
    reason: Option<&str>,
) -> RoomResult<()> {
    let room = load(state, id).await?;
    let matrix_room = room.matrix_room_id.clone().ok_or(RoomError::NoSuchMessage(event.to_string()))?;
    require_message(state, &matrix_room, event).await?;
    // One transaction id per event: redacting twice is one redaction.
    let txn_id = format!("redact-{}", hex::encode(&Sha256::digest(event.as_str().as_bytes())[..16]));
    state.homeserver.redact(&matrix_room, event, &txn_id, reason).await?;
    tracing::info!(chatroom = id, event = %event, "message redacted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_and_map_to_matrix_content() {
        assert!(NewMessage::parse("  ".into(), None, false).is_err());
        assert!(NewMessage::parse("x".repeat(MAX_BODY_CHARS + 1), None, false).is_err());
        assert!(NewMessage::parse("hi".into(), Some("x".repeat(MAX_FORMATTED_BYTES + 1)), false).is_err());
        let notice = NewMessage::parse("Doors open".into(), Some("<b>Doors</b> open".into()), true).unwrap();
        let content = notice.content();
        assert_eq!(content["msgtype"], "m.notice");
        assert_eq!(content["format"], "org.matrix.custom.html");
        assert_eq!(content["formatted_body"], "<b>Doors</b> open");
        assert_eq!(NewMessage::parse("hi".into(), None, false).unwrap().content()["msgtype"], "m.text");
    }

    #[test]
    fn a_retried_send_keeps_its_transaction_id() {
        let key = |caller: &str| Some(Idempotency { caller: caller.into(), key: "k1".into() });
        assert_eq!(transaction_id(key("backend").as_ref()), transaction_id(key("backend").as_ref()));
        assert_ne!(transaction_id(key("backend").as_ref()), transaction_id(key("user:7").as_ref()));
        assert_ne!(transaction_id(None), transaction_id(None));
    }

    #[test]
    fn a_message_too_big_for_one_event_is_refused() {
        // 16,000 characters, but four bytes each.
        assert!(NewMessage::parse("😀".repeat(16_000), None, false).is_err());
        // Quotes double in JSON.
        assert!(NewMessage::parse("x".into(), Some("\"".repeat(31_000)), false).is_err());
        assert!(NewMessage::parse("😀".repeat(10_000), None, false).is_ok());
    }
}
