//! Messages: sent as the bot or as one of the room's users (appservice masquerading), read back
//! newest first, redacted. Nothing is stored here: the homeserver holds the history.

use std::collections::{HashMap, HashSet};

use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{load, Idempotency, RoomError, RoomResult};
use crate::{
    domain::{AppUserId, ChatroomId, OrganizationId, Role},
    matrix::{MatrixIds, MessagePage, PurgeStatus, REDACTED_EDIT_OF},
    state::AppState,
    store::{
        self,
        chatrooms::{self, Archived, Chatroom},
        idempotency, moderation,
    },
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

    /// The content of an edit of `original` to this message (`m.replace`): clients that know
    /// edits show `m.new_content`, others the starred fallback. An edit keeps the original's
    /// kind (text or notice).
    fn replacing(mut self, original: &ruma::EventId, notice: bool) -> Value {
        self.notice = notice;
        let new_content = self.content();
        let mut content = new_content.clone();
        content["body"] = json!(format!("* {}", self.body));
        if let Some(html) = &self.formatted_body {
            content["formatted_body"] = json!(format!("* {html}"));
        }
        content["m.new_content"] = new_content;
        content["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": original});
        content
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

/// A message as history and search show it: with its latest edit by its sender applied.
pub struct Message {
    pub chatroom_id: ChatroomId,
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
    /// When the latest edit was made (Unix milliseconds); `None` if never edited.
    pub edited_at: Option<i64>,
}

/// The event an edit (`m.replace`) replaces; `None` for anything else.
fn replaced_by(event: &Value) -> Option<&str> {
    let relation = &event["content"]["m.relates_to"];
    (relation["rel_type"] == "m.replace").then(|| relation["event_id"].as_str()).flatten()
}

/// A message event as we show it; `None` for an edit (it shows through the message it edits),
/// an edit the bot redacted (its relation is gone, [`REDACTED_EDIT_OF`] says what it was), or an
/// event that is not a message.
fn message_of(ids: &MatrixIds, chatroom_id: ChatroomId, event: &Value) -> Option<Message> {
    let redaction = &event["unsigned"]["redacted_because"];
    let redacted_edit =
        redaction["sender"] == ids.bot().as_str() && redaction["content"][REDACTED_EDIT_OF].is_string();
    if replaced_by(event).is_some() || redacted_edit {
        return None;
    }
    let sender = event["sender"].as_str()?.to_owned();
    // The homeserver bundles the latest edit; only the sender's own edits count (Synapse
    // aggregates those only, and a forged one must never show).
    let edit = &event["unsigned"]["m.relations"]["m.replace"];
    let (content, edited_at) = match &edit["content"]["m.new_content"] {
        new if new.is_object() && edit["sender"] == event["sender"] => {
            (new, edit["origin_server_ts"].as_i64())
        }
        _ => (&event["content"], None),
    };
    Some(Message {
        chatroom_id,
        event_id: event["event_id"].as_str()?.to_owned(),
        sender_id: ruma::UserId::parse(&sender).ok().and_then(|user| ids.app_user(&user)),
        sender,
        body: content["body"].as_str().map(str::to_owned),
        formatted_body: content["formatted_body"].as_str().map(str::to_owned),
        notice: content["msgtype"] == "m.notice",
        timestamp: event["origin_server_ts"].as_i64(),
        redacted: !redaction.is_null(),
        edited_at,
    })
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
    let room = readable(state, id).await?;
    let matrix_room = room.matrix_room_id.clone().ok_or(RoomError::NotOnHomeserver(id))?;
    let as_user = match sender {
        None => None,
        Some(user) => Some(may_post(state, &room, user).await?),
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

/// The room, when the service can read its messages: not an end-to-end encrypted one.
async fn readable(state: &AppState, id: ChatroomId) -> RoomResult<Chatroom> {
    let room = load(state, id).await?;
    if room.encrypted {
        return Err(RoomError::Encrypted(id));
    }
    Ok(room)
}

/// The user's Matrix id, when they may post in the room: holding a role, neither banned nor
/// muted, and an admin or moderator if the room is read-only.
async fn may_post(state: &AppState, room: &Chatroom, user: AppUserId) -> RoomResult<OwnedUserId> {
    let id = room.id;
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
    state.homeserver.ids().user_id(user).map_err(RoomError::Invalid)
}

/// Edits one of the room's messages: an `m.replace` sent as its sender, `editor` (`None`: the
/// bot), who must have sent it and still be allowed to post. The message as it reads now.
pub async fn edit(
    state: &AppState,
    id: ChatroomId,
    event: &ruma::EventId,
    editor: Option<AppUserId>,
    message: NewMessage,
) -> RoomResult<Message> {
    let room = readable(state, id).await?;
    let matrix_room = room.matrix_room_id.clone().ok_or(RoomError::NoSuchMessage(event.to_string()))?;
    let hs = &state.homeserver;
    let original = message_event(state, &matrix_room, event).await?;
    // An edit is edited through the message it edits; a redacted message is not edited.
    if replaced_by(&original).is_some() || !original["unsigned"]["redacted_because"].is_null() {
        return Err(RoomError::NoSuchMessage(event.to_string()));
    }
    let as_user = match editor {
        None => None,
        Some(user) => Some(hs.ids().user_id(user).map_err(RoomError::Invalid)?),
    };
    let sender = as_user.as_deref().unwrap_or(hs.ids().bot());
    if original["sender"] != sender.as_str() {
        return Err(RoomError::NotTheSender(format!("only the sender of {event} edits it")));
    }
    if room.archived_at.is_some() {
        return Err(RoomError::Archived(id));
    }
    if let Some(user) = editor {
        may_post(state, &room, user).await?;
    }
    let content = message.replacing(event, original["content"]["msgtype"] == "m.notice");
    let edit = hs.send_message(&matrix_room, as_user.as_deref(), &transaction_id(None), content).await?;
    tracing::info!(chatroom = id, event = %event, edit = %edit, "message edited");
    // Read back, so the answer is what history shows.
    let edited =
        hs.event(&matrix_room, event).await?.ok_or_else(|| RoomError::NoSuchMessage(event.to_string()))?;
    message_of(hs.ids(), id, &edited).ok_or_else(|| RoomError::NoSuchMessage(event.to_string()))
}

/// A page of the room's messages, newest first, and the token of the next (older) page.
pub async fn history(
    state: &AppState,
    id: ChatroomId,
    from: Option<&str>,
    limit: u32,
) -> RoomResult<(Vec<Message>, Option<String>)> {
    let room = readable(state, id).await?;
    let Some(matrix_room) = &room.matrix_room_id else { return Ok((Vec::new(), None)) };
    let MessagePage { events, next } = match state.homeserver.messages(matrix_room, from, limit).await {
        // Only a token can be wrong in what we ask: not one `next` gave.
        Err(e) if e.status() == Some(400) && from.is_some() => {
            return Err(RoomError::BadPageToken("from is not a page token `next` gave".into()))
        }
        other => other?,
    };
    let ids = state.homeserver.ids();
    let messages = events.iter().filter_map(|event| message_of(ids, id, event)).collect();
    Ok((messages, next))
}

/// Characters of a search term.
pub const MAX_SEARCH_CHARS: usize = 200;

/// What to search for: 1 to [`MAX_SEARCH_CHARS`] characters, no control characters.
pub struct SearchTerm(String);

impl SearchTerm {
    pub fn parse(raw: &str) -> RoomResult<Self> {
        let term = raw.trim();
        let chars = term.chars().count();
        if chars == 0 || chars > MAX_SEARCH_CHARS || term.chars().any(char::is_control) {
            return Err(RoomError::Invalid(format!(
                "search must be 1 to {MAX_SEARCH_CHARS} characters, no control characters"
            )));
        }
        Ok(Self(term.to_owned()))
    }

    /// Whether the text holds every word of the term, in any case: for a message whose edit
    /// took out what the homeserver's index found in an older version.
    fn found_in(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.0.split_whitespace().all(|word| text.contains(&word.to_lowercase()))
    }
}

/// The rooms a search covers: each chatroom with its Matrix room.
pub type SearchScope = Vec<(ChatroomId, OwnedRoomId)>;

/// The room's Matrix room, for a search of one room (none before it is on the homeserver).
pub async fn room_scope(state: &AppState, id: ChatroomId) -> RoomResult<SearchScope> {
    let room = readable(state, id).await?;
    Ok(room.matrix_room_id.into_iter().map(|matrix| (id, matrix)).collect())
}

/// The rooms of an organization a reader may search: all of them for its managers (`None`),
/// else those the user holds a role in and is not banned from; never an encrypted one.
pub async fn organization_scope(
    state: &AppState,
    org: OrganizationId,
    user: Option<AppUserId>,
) -> RoomResult<SearchScope> {
    let parse = |id: ChatroomId, matrix: &str| ruma::RoomId::parse(matrix).ok().map(|matrix| (id, matrix));
    match user {
        None => {
            let mut conn = state.store.reader().acquire().await?;
            let rooms = chatrooms::matrix_rooms_of(&mut conn, org).await?;
            Ok(rooms.iter().filter_map(|(id, matrix)| parse(*id, matrix)).collect())
        }
        Some(user) => {
            let all = (i64::MAX, 0);
            let (rooms, _) = super::rooms_of_user(state, user, Some(&[org]), Archived::Any, all).await?;
            Ok(rooms
                .into_iter()
                .filter(|entry| entry.role.is_some() && !entry.banned && !entry.room.encrypted)
                .filter_map(|entry| entry.room.matrix_room_id.map(|matrix| (entry.room.id, matrix)))
                .collect())
        }
    }
}

/// A page of the messages in `scope` that match the term, newest first, through the
/// homeserver's own search as the bot, and the token of the next page. Messages show their
/// latest content; an edit that matched shows as the message it edits; redacted messages
/// never come back.
pub async fn search(
    state: &AppState,
    scope: &SearchScope,
    term: &SearchTerm,
    from: Option<&str>,
    limit: u32,
) -> RoomResult<(Vec<Message>, Option<String>)> {
    if scope.is_empty() {
        return Ok((Vec::new(), None));
    }
    let hs = &state.homeserver;
    let rooms: Vec<OwnedRoomId> = scope.iter().map(|(_, matrix)| matrix.clone()).collect();
    let chatroom_of: HashMap<&str, ChatroomId> =
        scope.iter().map(|(id, matrix)| (matrix.as_str(), *id)).collect();
    let MessagePage { events, next } = match hs.search(&rooms, &term.0, from, limit).await {
        Err(e) if e.status() == Some(400) && from.is_some() => {
            return Err(RoomError::BadPageToken("from is not a page token `next` gave".into()))
        }
        other => other?,
    };
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for event in events {
        let Some(&chatroom) = event["room_id"].as_str().and_then(|room| chatroom_of.get(room)) else {
            continue;
        };
        let event = match replaced_by(&event).and_then(|id| ruma::EventId::parse(id).ok()) {
            None => event,
            Some(original) => {
                let Ok(matrix) = ruma::RoomId::parse(event["room_id"].as_str().unwrap_or_default()) else {
                    continue;
                };
                match hs.event(&matrix, &original).await? {
                    // Only the sender edits their message; and when its own text matched too,
                    // its own hit shows it (once, in its place).
                    Some(original) if original["sender"] == event["sender"] => {
                        if term.found_in(original["content"]["body"].as_str().unwrap_or_default()) {
                            continue;
                        }
                        original
                    }
                    _ => continue,
                }
            }
        };
        let Some(message) = message_of(hs.ids(), chatroom, &event) else { continue };
        let current = message.body.as_deref().unwrap_or_default();
        if message.redacted || (message.edited_at.is_some() && !term.found_in(current)) {
            continue;
        }
        if seen.insert(message.event_id.clone()) {
            found.push(message);
        }
    }
    Ok((found, next))
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

/// The event is one of the room's messages (not state, not a redaction, not another room's),
/// readable or end-to-end encrypted: pins and redactions need no plaintext.
async fn require_message(state: &AppState, room: &ruma::RoomId, event: &ruma::EventId) -> RoomResult<()> {
    message_event(state, room, event).await.map(|_| ())
}

/// One of the room's messages, as the homeserver has it (readable or end-to-end encrypted);
/// anything else is `NoSuchMessage`.
pub async fn message_event(
    state: &AppState,
    room: &ruma::RoomId,
    event: &ruma::EventId,
) -> RoomResult<Value> {
    let found = state.homeserver.event(room, event).await?;
    let is_message = |found: &Value| {
        matches!(found["type"].as_str(), Some("m.room.message" | "m.room.encrypted"))
            && found.get("state_key").is_none()
    };
    found.filter(is_message).ok_or_else(|| RoomError::NoSuchMessage(event.to_string()))
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
    let room = readable(state, id).await?;
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
    actor_rank: i64,
    reason: Option<&str>,
) -> RoomResult<()> {
    let room = load(state, id).await?;
    let matrix_room = room.matrix_room_id.clone().ok_or(RoomError::NoSuchMessage(event.to_string()))?;
    let message = message_event(state, &matrix_room, event).await?;
    // As with bans: a moderator never acts on an admin or another moderator, their messages
    // included (the bot's are the staff's together).
    let sender = message["sender"].as_str().and_then(|sender| ruma::UserId::parse(sender).ok());
    if let Some(user) = sender.and_then(|sender| state.homeserver.ids().app_user(&sender)) {
        super::moderation::require_outranks(&room, actor_rank, user)?;
    }
    // One transaction id per event: redacting twice is one redaction. An edit stays out of
    // history once redacted (see `message_of`).
    let txn_id = format!("redact-{}", hex::encode(&Sha256::digest(event.as_str().as_bytes())[..16]));
    state.homeserver.redact(&matrix_room, event, &txn_id, reason, replaced_by(&message)).await?;
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
