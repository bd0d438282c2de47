//! Deactivating an app user: the homeserver account first, then every room they held a role in.

use crate::{
    domain::AppUserId,
    state::AppState,
    store::{
        accounts,
        chatrooms::{self, RosterOf},
        jobs, rosters,
    },
    sync::SyncOutcome,
};

use super::RoomResult;

/// Deactivates the account (it leaves every room and can no longer log in), removes the user
/// from every room's lists, and lets those rooms converge side by side within one request wait.
/// True when every room caught up.
pub async fn deactivate_user(state: &AppState, user: AppUserId) -> RoomResult<bool> {
    let matrix_user = state.homeserver.ids().user_id(user).map_err(super::RoomError::Invalid)?;
    // The homeserver first: if it cannot deactivate now, the request fails whole.
    state.homeserver.deactivate(&matrix_user).await?;
    let now = state.clock.now_ms();
    let mut tx = state.store.begin().await?;
    accounts::mark_deactivated(&mut tx, user, now).await?;
    let mut rooms = chatrooms::rooms_of_member(&mut tx, user).await?;
    for &room in &rooms {
        chatrooms::remove_member(&mut tx, room, user).await?;
    }
    // Out of every roster too, and so out of the automated rooms that follow them.
    let (orgs, events) = rosters::remove_user_everywhere(&mut tx, user).await?;
    for &org in &orgs {
        // An organization admin leaves its space even without a room following the roster.
        jobs::enqueue_space(&mut tx, org, now).await?;
    }
    let followed = orgs
        .into_iter()
        .map(RosterOf::Organization)
        .chain(events.into_iter().map(|(o, e)| RosterOf::Event(o, e)));
    for roster in followed.collect::<Vec<_>>() {
        rooms.extend(chatrooms::following(&mut tx, roster).await?);
    }
    rooms.sort_unstable();
    rooms.dedup();
    for &room in &rooms {
        jobs::enqueue(&mut tx, room, now).await?;
    }
    tx.commit().await?;
    tracing::info!(user, rooms = rooms.len(), "app user deactivated");
    let outcomes = state.reconciler.converge_within_request(rooms).await;
    Ok(outcomes.iter().all(|o| matches!(o, Some(SyncOutcome::Synced))))
}
