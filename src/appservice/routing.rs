//! Acting on what the homeserver pushed, event by event, in a managed room: each is reported to
//! the webhooks that want it (the bot's own included: it is the backend's doing, and what
//! happened is what the homeserver says); then, unless the bot sent it, a change to what the
//! backend owns queues the room's drift check, and moderation by the room's staff in a Matrix
//! client is adopted, anyone else's reverted. Events of rooms we do not manage are ignored.

use std::{collections::HashMap, sync::Arc};

use serde_json::{json, Map, Value};

use super::events::{self, Event, Pushed};
use crate::{
    domain::OrganizationId,
    matrix::FailureKind,
    rooms::{
        self,
        moderation::{self, Adoption, ClientModeration},
        RoomError,
    },
    state::AppState,
    store::{
        chatrooms::{self, Chatroom},
        organizations,
    },
    webhooks::{self, EventType, Outgoing, RoomRef},
};

/// Acts on each event in order. Every effect is safe to repeat: a transaction processed again
/// after a crash changes nothing more (a webhook event is queued once per homeserver event).
pub async fn route(state: &AppState, events: &[Value]) -> Result<(), RoomError> {
    // Each Matrix room's chatroom or organization, read once per transaction.
    let mut managed: HashMap<String, Managed> = HashMap::new();
    for event in events {
        let Some(event) = events::parse(event) else { continue };
        let room = match managed.get(event.room) {
            Some(room) => room.clone(),
            None => {
                let room = managed_room(state, event.room).await?;
                managed.insert(event.room.to_owned(), room.clone());
                room
            }
        };
        let room = match room {
            Managed::Room(room) => room,
            Managed::Space(org) => {
                if event.sender != state.homeserver.ids().bot() && is_drift(&event) {
                    tracing::info!(organization = org, sender = %event.sender, "the space changed on the homeserver; checking it");
                    rooms::organizations::recheck_space(state, org).await?;
                }
                continue;
            }
            Managed::Not => continue,
        };
        // A room being deleted reports nothing more than its `room.deleted` (its purge makes
        // everyone leave), and nothing in it is repaired or adopted.
        if room.deleted {
            continue;
        }
        report(state, &RoomRef::of(&room), &event).await?;
        if event.sender == state.homeserver.ids().bot() {
            continue;
        }
        let event_id = event.event_id.to_owned();
        match act(state, &room, event).await {
            // Deleted meanwhile: nothing left to keep in step.
            Ok(()) | Err(RoomError::NotFound(_)) => {}
            // The transaction is taken again, in order, once the database or homeserver is back.
            Err(e) if is_transient(&e) => return Err(e),
            // A refusal would be refused again: retrying it would hold up every later event.
            Err(e) => {
                tracing::warn!(chatroom = room.id, event_id, error = %e, "acting on a pushed event failed; skipped")
            }
        }
    }
    Ok(())
}

/// What a Matrix room is to the service.
#[derive(Clone)]
enum Managed {
    Room(Arc<Chatroom>),
    /// An organization's space.
    Space(OrganizationId),
    Not,
}

async fn managed_room(state: &AppState, room: &str) -> Result<Managed, RoomError> {
    let mut conn = state.store.reader().acquire().await?;
    if let Some(chatroom) = chatrooms::find_by_matrix_room(&mut conn, room).await? {
        return Ok(Managed::Room(Arc::new(chatroom)));
    }
    Ok(organizations::find_by_space(&mut conn, room).await?.map_or(Managed::Not, Managed::Space))
}

/// A change in a space the backend owns: its state, or a membership other than a user's own
/// join (the syncs join as the user).
fn is_drift(event: &Event<'_>) -> bool {
    match &event.what {
        Pushed::OwnedState { .. } => true,
        Pushed::Membership { target, membership, .. } => !(*membership == "join" && event.sender == *target),
        _ => false,
    }
}

fn is_transient(error: &RoomError) -> bool {
    match error {
        RoomError::Database(_) => true,
        RoomError::Homeserver(e) => e.kind() == FailureKind::Transient,
        RoomError::Sync(e) => e.kind() == FailureKind::Transient,
        _ => false,
    }
}

/// Who did it, as webhooks name actors: `backend` (the bot), `user:<app user id>`, or the
/// Matrix id of someone else.
fn actor_of(state: &AppState, sender: &ruma::UserId) -> String {
    let ids = state.homeserver.ids();
    if sender == ids.bot() {
        return "backend".into();
    }
    match ids.app_user(sender) {
        Some(user) => format!("user:{user}"),
        None => sender.to_string(),
    }
}

/// Queues the webhook events this homeserver event makes.
async fn report(state: &AppState, room: &RoomRef, event: &Event<'_>) -> Result<(), RoomError> {
    let ids = state.homeserver.ids();
    let actor = actor_of(state, &event.sender);
    let mut out: Vec<(EventType, String, Map<String, Value>)> = Vec::new();
    let fields = |pairs: Value| pairs.as_object().cloned().unwrap_or_default();
    match &event.what {
        Pushed::Membership { target, membership, previous, reason } => {
            let Some(user) = ids.app_user(target) else { return Ok(()) };
            let kind = match (*membership, *previous) {
                ("join", Some("join")) => None,
                ("join", _) => Some(EventType::MemberJoined),
                ("ban", Some("ban")) => None,
                ("ban", _) => Some(EventType::MemberBanned),
                ("leave", Some("ban")) => Some(EventType::MemberUnbanned),
                ("leave", Some("join") | None) => Some(EventType::MemberLeft),
                _ => None,
            };
            if let Some(kind) = kind {
                // The bot bans for whoever asked the API: the ban record names them.
                let actor = match kind {
                    EventType::MemberBanned if actor == "backend" => {
                        moderation::ban_of(state, room.id, user).await?.map_or(actor, |ban| ban.actor)
                    }
                    _ => actor,
                };
                let data = fields(json!({"userID": user, "actor": actor, "reason": reason}));
                out.push((kind, event.event_id.to_owned(), data));
            }
        }
        Pushed::OwnedState { muted, unmuted, .. } => {
            for (kind, users) in [(EventType::MemberMuted, muted), (EventType::MemberUnmuted, unmuted)] {
                for user in users.iter().filter_map(|user| ids.app_user(user)) {
                    let data = fields(json!({"userID": user}));
                    out.push((kind, format!("{}/{user}", event.event_id), data));
                }
            }
        }
        Pushed::Redaction { redacts, reason, edit_of } => {
            // Only the bot's word that the redacted event was an edit is taken.
            let edit_of = edit_of.filter(|_| event.sender == ids.bot());
            let data = fields(json!({"eventID": redacts, "redactionID": event.event_id, "actor": actor,
                "reason": reason, "editOf": edit_of}));
            out.push((EventType::MessageRedacted, event.event_id.to_owned(), data));
        }
        Pushed::Encryption => {}
        Pushed::Message { text, edits: None } => {
            let data = fields(json!({"eventID": event.event_id, "senderID": ids.app_user(&event.sender),
                "sender": event.sender.as_str(), "body": text.first()}));
            out.push((EventType::MessageCreated, event.event_id.to_owned(), data));
        }
        Pushed::Message { text, edits: Some(original) } => {
            // Only the sender edits a message: a forged edit is stored, but shows nowhere.
            if !is_senders_own(state, event, original).await? {
                return Ok(());
            }
            let data = fields(json!({"eventID": original, "editID": event.event_id,
                "senderID": ids.app_user(&event.sender), "sender": event.sender.as_str(), "body": text.last()}));
            out.push((EventType::MessageEdited, event.event_id.to_owned(), data));
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    let at = event.at.unwrap_or_else(|| state.clock.now_ms());
    let mut conn = state.store.pool().acquire().await?;
    for (kind, source, data) in out {
        webhooks::emit(&mut conn, Outgoing { kind, room, source: &source, data, at }).await?;
    }
    Ok(())
}

/// Whether the edit's sender sent the message it edits.
async fn is_senders_own(state: &AppState, edit: &Event<'_>, original: &str) -> Result<bool, RoomError> {
    let (Ok(room), Ok(original)) = (ruma::RoomId::parse(edit.room), ruma::EventId::parse(original)) else {
        return Ok(false);
    };
    let found = state.homeserver.event(&room, &original).await?;
    Ok(found.is_some_and(|found| found["sender"] == edit.sender.as_str()))
}

/// Drift repair, moderation adoption and blocklists for an event someone other than the bot
/// sent, in the room as the transaction found it.
async fn act(state: &AppState, chatroom: &Chatroom, event: Event<'_>) -> Result<(), RoomError> {
    let ids = state.homeserver.ids();
    let room = chatroom.id;
    match event.what {
        Pushed::OwnedState { kind, .. } => {
            tracing::info!(chatroom = room, kind, sender = %event.sender, "owned state changed on the homeserver; checking the room");
            rooms::recheck(state, room).await
        }
        Pushed::Membership { target, membership, previous, reason } => {
            // Strangers' memberships are not ours to keep.
            let Some(user) = ids.app_user(&target) else { return Ok(()) };
            let action = match (membership, previous) {
                ("ban", _) => ClientModeration::Ban { reason: reason.map(str::to_owned) },
                ("leave", Some("ban")) => ClientModeration::Unban,
                // Without the previous membership a leave is taken as a kick: the drift check
                // that follows re-bans a user whose ban record stands.
                ("leave", _) => ClientModeration::Kick,
                // A user's own join (the syncs join as the user) is as it should be.
                _ if event.sender == target => return Ok(()),
                _ => return rooms::recheck(state, room).await,
            };
            // A user who leaves or bans themselves is joined again: the lists say where they are.
            let actor = ids.app_user(&event.sender).filter(|_| event.sender != target);
            let Some(actor) = actor else { return rooms::recheck(state, room).await };
            let adoption = moderation::adopt(state, room, actor, user, action).await?;
            state.metrics.client_moderation(match adoption {
                Adoption::Adopted => "adopted",
                Adoption::Reverted => "reverted",
            });
            if adoption == Adoption::Reverted {
                tracing::info!(chatroom = room, user, actor, membership, "client moderation reverted");
            }
            Ok(())
        }
        Pushed::Message { text, edits } => {
            let sender = ids.app_user(&event.sender);
            rooms::blocklists::enforce(state, chatroom, sender, event.event_id, &text, edits)
                .await
                .map(|_| ())
        }
        Pushed::Redaction { .. } => Ok(()),
        // A room admin turned encryption on in a Matrix client: from now on the service reads
        // nothing there, and says so instead of acting on ciphertext.
        Pushed::Encryption if !chatroom.encrypted => {
            let mut conn = state.store.pool().acquire().await?;
            chatrooms::set_encrypted(&mut conn, room).await?;
            tracing::info!(chatroom = room, sender = %event.sender, "end-to-end encryption turned on in a client");
            Ok(())
        }
        Pushed::Encryption => Ok(()),
    }
}
