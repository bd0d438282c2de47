//! Changing a room's settings and, for event rooms, replacing its role lists.

use ruma::OwnedMxcUri;

use super::{
    avatar::{discard_upload, upload_avatar},
    checks::{check_capacity, check_room_limits, check_users_active, require_future_deletion},
    commit_with_job, converge, RoomError, RoomResult, Written,
};
use crate::{
    domain::{AppUserId, Avatar, ChatroomId, RoleLists, RoomMembers, RoomName, SettingsChange},
    state::AppState,
    store::{
        chatrooms::{self, ChatroomChanges},
        moderation, organizations,
    },
};

/// A validated change to an existing room; `None` leaves a field as it is.
#[derive(Clone)]
pub struct RoomUpdate {
    pub name: Option<RoomName>,
    /// `Some(None)` removes the avatar.
    pub avatar: Option<Option<Avatar>>,
    pub automation_enabled: Option<bool>,
    /// `Some(None)` cancels a scheduled deletion.
    pub scheduled_deletion: Option<Option<i64>>,
    pub settings: SettingsChange,
    /// Replaces all three role lists.
    pub roles: Option<RoleLists>,
    /// End-to-end encryption is chosen at creation: only the room's own value is accepted.
    pub encrypted: Option<bool>,
}

/// Stores the change with its sync job in one transaction (after uploading a new avatar), then
/// lets the homeserver catch up. A room deleted meanwhile is `NotFound`, and nothing is written.
pub async fn update(state: &AppState, id: ChatroomId, update: RoomUpdate) -> RoomResult<Written> {
    require_future_deletion(state, update.scheduled_deletion.flatten())?;
    if let Some(encrypted) = update.encrypted {
        if super::load(state, id).await?.encrypted != encrypted {
            return Err(RoomError::EncryptionFixed(id));
        }
    }
    if let Some(roles) = &update.roles {
        // The lists alone first (the roster is checked with them under the row lock).
        let muted = muted_users(state, id).await?;
        check_room_limits(state, &RoomMembers::explicit(roles.clone()), &muted)?;
        check_users_active(state, roles).await?;
    }
    let avatar_url = match &update.avatar {
        Some(Some(avatar)) => Some(Some(upload_avatar(state, avatar).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let stored = store(state, id, &update, avatar_url.as_ref().map(Option::as_ref)).await;
    if stored.is_err() {
        discard_upload(state, avatar_url.as_ref().and_then(Option::as_ref)).await;
    }
    stored?;
    converge(state, id).await
}

async fn muted_users(state: &AppState, id: ChatroomId) -> RoomResult<Vec<AppUserId>> {
    let mut conn = state.store.pool().acquire().await?;
    Ok(moderation::mutes(&mut conn, id).await?.iter().map(|m| m.user).collect())
}

async fn store(
    state: &AppState,
    id: ChatroomId,
    update: &RoomUpdate,
    avatar_url: Option<Option<&OwnedMxcUri>>,
) -> RoomResult<()> {
    let changes = ChatroomChanges {
        name: update.name.as_ref().map(RoomName::as_str),
        avatar_url,
        automation_enabled: update.automation_enabled,
        scheduled_deletion: update.scheduled_deletion,
        settings: &update.settings,
    };
    let mut tx = state.store.begin().await?;
    if update.automation_enabled.is_some() {
        // The organization's lock before the room's (as roster writes take them): the roster
        // the room follows from now on is not being changed meanwhile.
        if let Some(org) = chatrooms::organization_of(&mut tx, id).await? {
            organizations::lock(&mut tx, org, state.clock.now_ms()).await?;
        }
    }
    if !chatrooms::update(&mut tx, id, &changes, state.clock.now_ms()).await? {
        return Err(RoomError::NotFound(id));
    }
    if update.roles.is_some() || update.settings.max_users.is_some() || update.automation_enabled.is_some() {
        // Under the row lock the update took: with its new maxUsers and automation (so the
        // roster it follows now), and the lists as they were.
        let room = chatrooms::find(&mut tx, id).await?.ok_or(RoomError::NotFound(id))?;
        let after = match &update.roles {
            Some(roles) => room.roles.with_explicit(roles.clone()),
            None => room.roles.clone(),
        };
        let muted: Vec<AppUserId> = moderation::mutes(&mut tx, id).await?.iter().map(|m| m.user).collect();
        check_room_limits(state, &after, &muted)?;
        check_capacity(room.settings.max_users, room.roles.len(), after.len())?;
    }
    if let Some(roles) = &update.roles {
        chatrooms::replace_roles(&mut tx, id, roles).await?;
    }
    if update.roles.is_some() || update.automation_enabled.is_some() {
        moderation::drop_mutes_of_unassigned(&mut tx, id).await?;
    }
    commit_with_job(state, tx, id).await
}
