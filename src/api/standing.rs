//! The caller's standing in a room, for the handlers that moderate it: their rank there
//! ([`Caller::moderation_rank`]), a banned admin or moderator holding none.

use crate::{auth::Caller, error::ApiResult, rooms::moderation, state::AppState, store::chatrooms::Chatroom};

pub async fn moderation_rank(state: &AppState, caller: &Caller, room: &Chatroom) -> ApiResult<i64> {
    // The backend and organization admins outrank everyone: no need to look for a ban.
    let banned = match caller.app_user() {
        Some(me) if !caller.may_manage(room.organization_id) => {
            moderation::is_banned(state, room.id, me).await?
        }
        _ => false,
    };
    caller.moderation_rank(room.id, room.organization_id, &room.roles, banned)
}
