//! Checks a room's desired state must pass before it is stored.

use super::{RoomError, RoomResult};
use crate::{
    clock::to_datetime,
    domain::{require_future, AppUserId, Role, RoleLists, RoomMembers},
    matrix::power_levels,
    state::AppState,
    store::accounts,
};

/// A new `scheduledDeletion` must lie in the future. Checked after an idempotent replay had its
/// chance, so a retry whose time has passed since still gets the first answer.
pub fn require_future_deletion(state: &AppState, at: Option<i64>) -> RoomResult<()> {
    match at.and_then(to_datetime) {
        Some(at) => require_future(at, state.clock.now()).map_err(RoomError::Invalid),
        None => Ok(()),
    }
}

/// Refuses a room's members (as they would be after the change) beyond the room's limits:
/// more users in its lists than [`RoleLists::MAX_PER_ROOM`] (a roster has its own limit), or
/// admins and moderators, explicit or by roster, whose power levels would not fit in one Matrix
/// state event.
pub fn check_room_limits(state: &AppState, roles: &RoomMembers, muted: &[AppUserId]) -> RoomResult<()> {
    if roles.explicit.len() > RoleLists::MAX_PER_ROOM {
        return Err(RoomError::TooManyUsers(format!(
            "the room would hold {} users in its role lists; at most {} are allowed",
            roles.explicit.len(),
            RoleLists::MAX_PER_ROOM
        )));
    }
    let ids = state.homeserver.ids();
    let mut users = std::collections::BTreeMap::new();
    for (user, role) in roles.iter() {
        if let Some(level) = role.power_level() {
            users.insert(ids.user_id(user).map_err(RoomError::Invalid)?, level);
        }
    }
    // Muted assigned users take an entry each too (power level -1).
    for &user in muted {
        if roles.role_of(user) == Some(Role::Assigned) {
            users.insert(ids.user_id(user).map_err(RoomError::Invalid)?, -1);
        }
    }
    users.insert(ids.bot().to_owned(), 100);
    let size = power_levels::content_size(&users);
    if size > power_levels::MAX_CONTENT_BYTES {
        return Err(RoomError::TooManyPowerUsers(format!(
            "too many admins, moderators and muted users ({}): their power levels take {size} bytes, more \
             than the {} one Matrix state event can hold",
            users.len() - 1,
            power_levels::MAX_CONTENT_BYTES
        )));
    }
    Ok(())
}

/// Refuses members (lists and roster) beyond the room's `maxUsers` (the bot does not count).
/// `before` is how many the room holds now (0 for a new room), `after` how many after the change.
pub fn check_capacity(max_users: Option<i64>, before: usize, after: usize) -> RoomResult<()> {
    let Some(max) = max_users else { return Ok(()) };
    let max = usize::try_from(max).unwrap_or(0);
    if after <= max {
        return Ok(());
    }
    let left = max.saturating_sub(before);
    Err(RoomError::RoomFull(format!(
        "the room's maxUsers is {max} and its lists would hold {after} users; {left} places are left"
    )))
}

/// Refuses role lists naming deactivated users: their accounts can no longer join rooms.
pub async fn check_users_active(state: &AppState, roles: &RoleLists) -> RoomResult<()> {
    let users: Vec<_> = roles.iter().map(|(user, _)| user).collect();
    let mut conn = state.store.reader().acquire().await?;
    let accounts = accounts::find_many(&mut conn, &users).await?;
    let deactivated: Vec<_> =
        users.iter().copied().filter(|user| accounts.get(user).is_some_and(|a| a.deactivated)).collect();
    if deactivated.is_empty() {
        Ok(())
    } else {
        Err(RoomError::DeactivatedUsers(deactivated))
    }
}
