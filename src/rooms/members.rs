//! A room's role lists: adding users, removing one, claiming a room, and forcing a sync.

use super::{
    checks::{check_capacity, check_room_limits, check_users_active},
    commit_with_job, converge, load, RoomError, RoomResult, Written,
};
use crate::{
    domain::{AppUserId, ChatroomId, RoleLists},
    state::AppState,
    store::{chatrooms, jobs, moderation},
};

/// Gives the users their roles (moving those who held another one).
pub async fn add_members(state: &AppState, id: ChatroomId, added: RoleLists) -> RoomResult<Written> {
    check_users_active(state, &added).await?;
    let mut tx = state.store.begin().await?;
    // Deleted since it was looked up: nothing is written.
    if !chatrooms::touch_live(&mut tx, id, state.clock.now_ms()).await? {
        return Err(RoomError::NotFound(id));
    }
    // Checked under the room's row lock: concurrent additions cannot both squeeze past the
    // room's limits.
    let current = chatrooms::find(&mut tx, id).await?.ok_or(RoomError::NotFound(id))?;
    let after = current.roles.with_explicit(current.roles.explicit.merged_with(&added));
    let muted: Vec<AppUserId> = moderation::mutes(&mut tx, id).await?.iter().map(|m| m.user).collect();
    check_room_limits(state, &after, &muted)?;
    check_capacity(current.settings.max_users, current.roles.len(), after.len())?;
    chatrooms::put_roles(&mut tx, id, &added).await?;
    moderation::drop_mutes_of_unassigned(&mut tx, id).await?;
    commit_with_job(state, tx, id).await?;
    converge(state, id).await
}

/// Removes the user from the room's lists: they are kicked and lose their power level.
pub async fn remove_member(state: &AppState, id: ChatroomId, user: AppUserId) -> RoomResult<Written> {
    let mut tx = state.store.begin().await?;
    if !chatrooms::touch_live(&mut tx, id, state.clock.now_ms()).await? {
        return Err(RoomError::NotFound(id));
    }
    if !chatrooms::remove_member(&mut tx, id, user).await? {
        let by_roster =
            chatrooms::find(&mut tx, id).await?.is_some_and(|room| room.roles.role_of(user).is_some());
        return Err(if by_roster {
            RoomError::OnlyByRoster { room: id, user }
        } else {
            RoomError::NotAMember { room: id, user }
        });
    }
    moderation::drop_mutes_of_unassigned(&mut tx, id).await?;
    commit_with_job(state, tx, id).await?;
    converge(state, id).await
}

/// Makes sure the user is joined with their role's power level. It re-checks the room even if
/// the database thinks it is in sync: the user may have left or been kicked on the homeserver.
pub async fn claim(state: &AppState, id: ChatroomId, user: AppUserId) -> RoomResult<Written> {
    let room = load(state, id).await?;
    if room.roles.role_of(user).is_none() {
        return Err(RoomError::HoldsNoRole { room: id, user });
    }
    resync(state, id).await
}

/// Queues a fresh sync of the room (also when the database thinks it is in sync).
pub async fn resync(state: &AppState, id: ChatroomId) -> RoomResult<Written> {
    let mut conn = state.store.pool().acquire().await?;
    jobs::enqueue(&mut conn, id, state.clock.now_ms()).await?;
    drop(conn);
    converge(state, id).await
}

/// Queues a check of the room against the homeserver, without waiting for it: what someone
/// changed there that the backend owns is put back by the worker.
pub async fn recheck(state: &AppState, id: ChatroomId) -> RoomResult<()> {
    let mut conn = state.store.pool().acquire().await?;
    jobs::enqueue_recheck(&mut conn, jobs::JobKey::Room(id), state.clock.now_ms()).await?;
    state.reconciler.wake_worker();
    Ok(())
}
