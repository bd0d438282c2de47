//! Blocklists of organizations and rooms, and their enforcement: a message that breaks one is
//! redacted by the bot, counted and reported. Room admins and moderators are exempt.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{RoomError, RoomResult};
use crate::{
    domain::{
        blocklist::{Blocklist, Matcher, Rule},
        AppUserId, ChatroomId, OrganizationId, Role,
    },
    state::AppState,
    store::{
        blocklists::{self, Scope},
        chatrooms::Chatroom,
    },
    webhooks::{self, EventType, Outgoing, RoomRef},
};

pub async fn organization_blocklist(state: &AppState, org: OrganizationId) -> RoomResult<(Blocklist, i64)> {
    let mut conn = state.store.reader().acquire().await?;
    Ok(blocklists::get(&mut conn, Scope::Organization(org)).await?)
}

pub async fn put_organization_blocklist(
    state: &AppState,
    org: OrganizationId,
    list: Blocklist,
) -> RoomResult<i64> {
    let now = state.clock.now_ms();
    let mut conn = state.store.pool().acquire().await?;
    blocklists::put(&mut conn, Scope::Organization(org), &list, now).await?;
    tracing::info!(
        organization = org,
        words = list.words.len(),
        patterns = list.patterns.len(),
        "blocklist replaced"
    );
    Ok(now)
}

/// The room's additions to its organization's list.
pub async fn room_blocklist(state: &AppState, id: ChatroomId) -> RoomResult<(Blocklist, i64)> {
    let mut conn = state.store.reader().acquire().await?;
    Ok(blocklists::get(&mut conn, Scope::Room(id)).await?)
}

pub async fn put_room_blocklist(state: &AppState, id: ChatroomId, list: Blocklist) -> RoomResult<i64> {
    // Its messages reach the service as ciphertext: no list could apply.
    if super::load(state, id).await?.encrypted {
        return Err(RoomError::Encrypted(id));
    }
    let now = state.clock.now_ms();
    let mut tx = state.store.begin().await?;
    // Not for a room deleted meanwhile.
    if !crate::store::chatrooms::touch_live(&mut tx, id, now).await? {
        return Err(RoomError::NotFound(id));
    }
    blocklists::put(&mut tx, Scope::Room(id), &list, now).await?;
    tx.commit().await?;
    tracing::info!(
        chatroom = id,
        words = list.words.len(),
        patterns = list.patterns.len(),
        "room blocklist replaced"
    );
    Ok(now)
}

/// The room's and its organization's lists compiled together; `None` when both are empty.
async fn matcher(
    state: &AppState,
    room: ChatroomId,
    org: OrganizationId,
) -> RoomResult<Option<Arc<Matcher>>> {
    let [(org_list, org_version), (room_list, room_version)] = {
        let mut conn = state.store.pool().acquire().await?;
        blocklists::get_both(&mut conn, Scope::Organization(org), Scope::Room(room)).await?
    };
    if org_list.is_empty() && room_list.is_empty() {
        return Ok(None);
    }
    let version = (org_version, room_version);
    if let Some(matcher) = state.blocklist_matchers.get(room, version) {
        return Ok(Some(matcher));
    }
    // Both lists were validated when stored; together they compile too.
    let matcher = Arc::new(Matcher::new(&[&org_list, &room_list]).map_err(RoomError::Invalid)?);
    state.blocklist_matchers.put(room, version, matcher.clone());
    Ok(Some(matcher))
}

/// Checks a message someone sent in the room; one that breaks a rule is redacted by the bot
/// (the reason names the rule), counted and reported as `message.blocked`. The rule it broke.
/// `edit_of`: the event is an edit of that message.
pub async fn enforce(
    state: &AppState,
    chatroom: &Chatroom,
    sender: Option<AppUserId>,
    event_id: &str,
    texts: &[&str],
    edit_of: Option<&str>,
) -> RoomResult<Option<Rule>> {
    let room = &RoomRef::of(chatroom);
    let staff =
        sender.and_then(|user| chatroom.roles.role_of(user)).is_some_and(|role| role != Role::Assigned);
    if staff || texts.is_empty() {
        return Ok(None);
    }
    let Some(matcher) = matcher(state, room.id, room.organization_id).await? else { return Ok(None) };
    let Some(rule) = texts.iter().find_map(|text| matcher.check(text)) else { return Ok(None) };
    let (Some(matrix_room), Ok(event)) = (&chatroom.matrix_room_id, ruma::EventId::parse(event_id)) else {
        return Ok(None);
    };
    // The same txn id for the same event: processed again, the homeserver redacts it once.
    let txn_id = format!("blocked-{}", &hex::encode(Sha256::digest(event_id.as_bytes()))[..32]);
    state.homeserver.redact(matrix_room, &event, &txn_id, Some(&rule.reason()), edit_of).await?;
    state.metrics.message_blocked(rule.kind());
    tracing::info!(
        chatroom = room.id,
        event_id,
        sender,
        rule = rule.kind(),
        "message redacted by the blocklist"
    );
    let data = serde_json::json!({"eventID": event_id, "senderID": sender, "rule": rule.kind(),
        "matched": rule.value(), "reason": rule.reason()});
    let mut conn = state.store.pool().acquire().await?;
    let outgoing = Outgoing {
        kind: EventType::MessageBlocked,
        room,
        source: event_id,
        data: data.as_object().cloned().unwrap_or_default(),
        at: state.clock.now_ms(),
    };
    webhooks::emit(&mut conn, outgoing).await?;
    Ok(Some(rule))
}
