//! Archiving a room: closed to new messages and state changes, kept with its members and
//! history (DESIGN.md's mapping: every level above the admins'), and open again on unarchive.

use serde_json::json;

use super::{commit_with_job, converge, RoomError, RoomResult, Written};
use crate::{
    domain::ChatroomId,
    state::AppState,
    store::chatrooms,
    webhooks::{self, EventType, Outgoing, RoomRef},
};

/// Archives (`archived`) or unarchives the room; asking for what it already is changes
/// nothing. A room being deleted is `NotFound`.
pub async fn set_archived(state: &AppState, id: ChatroomId, archived: bool) -> RoomResult<Written> {
    let now = state.clock.now_ms();
    let mut tx = state.store.begin().await?;
    let room = chatrooms::find(&mut tx, id).await?.ok_or(RoomError::NotFound(id))?;
    if chatrooms::set_archived(&mut tx, id, archived.then_some(now), now).await? {
        // Reported in the change's own transaction.
        let kind = if archived { EventType::RoomArchived } else { EventType::RoomUnarchived };
        let source = format!("{}/{id}/{now}", kind.as_str());
        let data = json!({"name": room.name}).as_object().cloned().unwrap_or_default();
        webhooks::emit(&mut tx, Outgoing { kind, room: &RoomRef::of(&room), source: &source, data, at: now })
            .await?;
        commit_with_job(state, tx, id).await?;
        tracing::info!(chatroom = id, archived, "room archive changed");
    } else {
        // Nothing to write; the writer is free again before the wait (SQLite has one).
        tx.rollback().await?;
    }
    converge(state, id).await
}
