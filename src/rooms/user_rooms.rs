//! A user's rooms: where the role lists or a roster put them, and where they are banned.

use super::RoomResult;
use crate::{
    domain::{AppUserId, OrganizationId, Role},
    state::AppState,
    store::chatrooms::{self, Archived, Chatroom, UserRoomsQuery},
};

/// Where a user's role in a room comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleSource {
    /// The room's own lists, as the backend set them.
    List,
    /// The roster an automated room follows.
    Roster,
}

/// One of a user's rooms, with what the user is there.
pub struct UserRoom {
    pub room: Chatroom,
    /// None when only a ban ties the user to the room.
    pub role: Option<(Role, RoleSource)>,
    pub banned: bool,
}

/// A page of the user's live rooms in id order (within `organizations` when given, archived or
/// not as asked), and how many there are in all.
pub async fn rooms_of_user(
    state: &AppState,
    user: AppUserId,
    organizations: Option<&[OrganizationId]>,
    archived: Archived,
    page: (i64, i64),
) -> RoomResult<(Vec<UserRoom>, i64)> {
    let mut conn = state.store.reader().acquire().await?;
    let query = UserRoomsQuery { user, organizations, archived, page };
    let (rooms, total) = chatrooms::list_of_user(&mut conn, &query).await?;
    let entries = rooms
        .into_iter()
        .map(|(room, banned)| {
            let role = match room.roles.explicit.role_of(user) {
                Some(role) => Some((role, RoleSource::List)),
                None => room.roles.role_of(user).map(|role| (role, RoleSource::Roster)),
            };
            UserRoom { banned, role, room }
        })
        .collect();
    Ok((entries, total))
}
