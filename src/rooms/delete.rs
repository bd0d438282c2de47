//! Deleting a room: marked deleted with its sync job, then purged from the homeserver.

use super::{commit_with_job, RoomError, RoomResult};
use crate::{
    state::AppState,
    store::chatrooms::{self, Chatroom},
};

/// Marks the room deleted with its sync job, then lets the purge run; true once the homeserver
/// purged it and the record is gone, false while the purge is still pending.
pub async fn delete(state: &AppState, room: &Chatroom) -> RoomResult<bool> {
    let mut tx = state.store.begin().await?;
    if !chatrooms::mark_deleted(&mut tx, room.id, state.clock.now_ms()).await? {
        return Err(RoomError::NotFound(room.id));
    }
    commit_with_job(state, tx, room.id).await?;
    tracing::info!(chatroom = room.id, "chatroom deletion requested");
    state.reconciler.converge_within_request(vec![room.id]).await;
    let mut conn = state.store.pool().acquire().await?;
    Ok(chatrooms::find_including_deleted(&mut conn, room.id).await?.is_none())
}
