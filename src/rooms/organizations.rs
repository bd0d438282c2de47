//! Organizations as the service keeps them: the name and avatar of their Matrix space.

use ruma::OwnedMxcUri;

use super::{
    avatar::{discard_upload, upload_avatar},
    RoomResult,
};
use crate::{
    domain::{Avatar, OrganizationId, RoomName},
    state::AppState,
    store::{
        jobs::{self, JobKey},
        organizations::{self, Organization},
    },
    sync::SyncOutcome,
};

/// The organization as the API shows it: as stored, or its defaults when the service has
/// nothing on it yet.
pub async fn organization(state: &AppState, org: OrganizationId) -> RoomResult<Organization> {
    let mut conn = state.store.reader().acquire().await?;
    Ok(organizations::find(&mut conn, org).await?.unwrap_or_else(|| Organization {
        id: org,
        name: None,
        avatar_url: None,
        space_alias: String::new(),
        matrix_space_id: None,
        sync_pending: false,
        sync_failed: false,
        sync_error: None,
    }))
}

/// Sets the space's name and avatar (the avatar uploaded first; `None` removes it) with the
/// space's sync job in one transaction, then lets the space catch up within the request's wait.
/// True when it did (or there is no space yet to change).
pub async fn put_organization(
    state: &AppState,
    org: OrganizationId,
    name: RoomName,
    avatar: Option<Avatar>,
) -> RoomResult<(Organization, bool)> {
    let avatar_url: Option<OwnedMxcUri> = match &avatar {
        Some(avatar) => Some(upload_avatar(state, avatar).await?),
        None => None,
    };
    let stored = store(state, org, &name, avatar_url.as_ref()).await;
    if stored.is_err() {
        discard_upload(state, avatar_url.as_ref()).await;
    }
    stored?;
    let outcomes = state.reconciler.converge_jobs_within_request(vec![JobKey::Space(org)]).await;
    let synced = matches!(outcomes.first(), Some(Some(SyncOutcome::Synced)));
    Ok((organization(state, org).await?, synced))
}

async fn store(
    state: &AppState,
    org: OrganizationId,
    name: &RoomName,
    avatar: Option<&OwnedMxcUri>,
) -> RoomResult<()> {
    let now = state.clock.now_ms();
    let mut tx = state.store.begin().await?;
    organizations::set_profile(&mut tx, org, name.as_str(), avatar, now).await?;
    jobs::enqueue_space(&mut tx, org, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a check of the space against the homeserver, without waiting: what someone changed
/// there that the backend owns is put back by the worker.
pub async fn recheck_space(state: &AppState, org: OrganizationId) -> RoomResult<()> {
    let mut conn = state.store.pool().acquire().await?;
    jobs::enqueue_recheck(&mut conn, JobKey::Space(org), state.clock.now_ms()).await?;
    state.reconciler.wake_worker();
    Ok(())
}
