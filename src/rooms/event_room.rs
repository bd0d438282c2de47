//! The event room's idempotent PUT: create it, or update it as a repeated PUT would.

use super::{create, update, RoomDraft, RoomError, RoomResult, RoomUpdate, Written};
use crate::{
    domain::{EventId, OrganizationId, RoomKind},
    state::AppState,
    store::chatrooms,
};

/// Updates the event's room as `change` says (absent fields keep their value), or creates it (then `name` is required, and `created` is true).
pub async fn put_event_room(
    state: &AppState,
    organization: OrganizationId,
    event: EventId,
    change: RoomUpdate,
) -> RoomResult<(Written, bool)> {
    if let Some(existing) = find(state, organization, event).await? {
        return Ok((update(state, existing, change).await?, false));
    }
    let name = change
        .name
        .clone()
        .ok_or_else(|| RoomError::Invalid("name is required to create the event's chatroom".into()))?;
    let draft = RoomDraft {
        kind: RoomKind::Event,
        organization_id: organization,
        event_id: Some(event),
        name,
        avatar: change.avatar.clone(),
        automation_enabled: change.automation_enabled,
        scheduled_deletion: change.scheduled_deletion.flatten(),
        settings: change.settings.clone(),
        copy_from: None,
        roles: change.roles.clone().unwrap_or_default(),
        encrypted: change.encrypted.unwrap_or(false),
    };
    // The PUT is idempotent by itself: the event identifies the room.
    match create(state, draft, None).await {
        Ok(written) => Ok((written, true)),
        // A concurrent PUT created it first: apply ours on top, as a repeated PUT would.
        Err(RoomError::Exists) => {
            let existing = find(state, organization, event).await?.ok_or(RoomError::Exists)?;
            Ok((update(state, existing, change).await?, false))
        }
        Err(e) => Err(e),
    }
}

async fn find(state: &AppState, organization: OrganizationId, event: EventId) -> RoomResult<Option<i64>> {
    let mut conn = state.store.pool().acquire().await?;
    let room = chatrooms::find_for_event(&mut conn, organization, event).await?;
    Ok(room.map(|room| room.id))
}
