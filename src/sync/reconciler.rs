//! Brings one room on the homeserver to the state the database holds. Every step is safe to
//! repeat: a crash or a failed call at any point leaves a job that the next attempt finishes.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::{stream, StreamExt, TryStreamExt};
use ruma::{OwnedRoomId, OwnedUserId, UserId};
use tokio::sync::OnceCell;

use super::{
    locks::RoomLocks,
    plan::{self, DesiredRoom},
};
use crate::{
    clock::Clock,
    config::SyncConfig,
    domain::{AppUserId, ChatroomId, Role},
    matrix::{room_alias, Homeserver, HomeserverError, Membership, NewRoom},
    metrics::Metrics,
    store::{
        accounts,
        chatrooms::{self, Chatroom},
        jobs::{self, Lease},
        Store,
    },
};

/// Attempts that end in the same kind of refusal before a room is reported `failed`.
const PERMANENT_AFTER_ATTEMPTS: i64 = 3;

/// Capped exponential backoff from `base`; the homeserver's own `retry_after_ms` wins when longer.
pub fn backoff(base: Duration, cap: Duration, attempts: i64, hint: Option<Duration>) -> Duration {
    let exponent = attempts.clamp(0, 20) as u32;
    let delay = base.saturating_mul(2u32.saturating_pow(exponent)).min(cap);
    hint.map_or(delay, |hint| hint.max(delay))
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Homeserver(#[from] HomeserverError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Invalid(String),
}

impl SyncError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Homeserver(e) => e.is_transient(),
            Self::Database(_) => true,
            Self::Invalid(_) => false,
        }
    }
}

/// What happened when a room was asked to converge.
#[derive(Debug)]
pub enum SyncOutcome {
    Synced,
    /// The attempt failed; the job stays and is retried (unless the failure is permanent).
    Failed(String),
    /// Another worker holds the room right now; it will finish the job.
    Busy,
}

pub struct Reconciler {
    store: Store,
    homeserver: Arc<dyn Homeserver>,
    clock: Arc<dyn Clock>,
    config: SyncConfig,
    room_version: OnceCell<String>,
    configured_room_version: Option<String>,
    locks: RoomLocks,
    metrics: Arc<Metrics>,
    /// Names this process in leases; unique per start so a restarted instance is a new owner.
    owner: String,
}

impl Reconciler {
    pub fn new(
        store: Store,
        homeserver: Arc<dyn Homeserver>,
        clock: Arc<dyn Clock>,
        config: SyncConfig,
        configured_room_version: Option<String>,
    ) -> Self {
        let owner = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
        Self {
            store,
            homeserver,
            clock,
            config,
            room_version: OnceCell::new(),
            configured_room_version,
            locks: RoomLocks::default(),
            metrics: Arc::new(Metrics::default()),
            owner,
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Converges the room in a task of its own and waits at most `request_wait` for it; past
    /// that, the task goes on and the caller reports the change as pending.
    pub async fn converge_within_request(self: &Arc<Self>, id: ChatroomId) -> Option<SyncOutcome> {
        let this = Arc::clone(self);
        let task = tokio::spawn(async move { this.converge(id).await });
        match tokio::time::timeout(self.config.request_wait, task).await {
            Ok(Ok(outcome)) => Some(outcome),
            Ok(Err(join_error)) => Some(SyncOutcome::Failed(format!("sync task ended: {join_error}"))),
            Err(_) => None,
        }
    }

    /// One attempt at the room's pending job, serialized with every other writer of the room.
    pub async fn converge(&self, id: ChatroomId) -> SyncOutcome {
        let _room_guard = self.locks.lock(id).await;
        match self.try_converge(id).await {
            Ok(outcome) => outcome,
            Err(err) => {
                // The database itself failed; the job stays as it was and the worker retries.
                tracing::warn!(chatroom = id, error = %err, "sync bookkeeping failed");
                SyncOutcome::Failed(err.to_string())
            }
        }
    }

    async fn try_converge(&self, id: ChatroomId) -> Result<SyncOutcome, SyncError> {
        let now = self.clock.now_ms();
        let until = now + self.config.lease.as_millis() as i64;
        let mut conn = self.store.pool().acquire().await?;
        let (version, attempts, drift_check) =
            match jobs::lease(&mut conn, id, &self.owner, now, until).await? {
                Lease::Held { version, attempts, drift_check } => (version, attempts, drift_check),
                Lease::NoJob => return Ok(SyncOutcome::Synced),
                Lease::Busy => return Ok(SyncOutcome::Busy),
            };
        drop(conn);

        let result = self.apply_holding_lease(id).await;
        let mut conn = self.store.pool().acquire().await?;
        match result {
            Ok(changed) => {
                jobs::complete(&mut conn, id, version, &self.owner).await?;
                Metrics::count(&self.metrics.syncs_succeeded);
                if drift_check && changed {
                    Metrics::count(&self.metrics.drift_repairs);
                    tracing::warn!(
                        chatroom = id,
                        "drift: the homeserver differed from the database; restored"
                    );
                } else {
                    tracing::info!(chatroom = id, version, "room in sync");
                }
                Ok(SyncOutcome::Synced)
            }
            Err(err) => {
                // A refusal can be a race with a change on the homeserver (a user leaving while
                // we kick them); the next attempt reads fresh state. Only a refusal that repeats
                // stops the retries.
                let permanent = !err.is_transient() && attempts + 1 >= PERMANENT_AFTER_ATTEMPTS;
                let hint = match &err {
                    SyncError::Homeserver(e) => e.retry_after(),
                    _ => None,
                };
                let delay = backoff(self.config.retry_base, self.config.retry_cap, attempts, hint);
                let message = err.to_string();
                let next = self.clock.now_ms() + delay.as_millis() as i64;
                jobs::record_failure(&mut conn, id, &self.owner, &message, next, permanent).await?;
                Metrics::count(&self.metrics.syncs_failed);
                tracing::warn!(chatroom = id, attempts = attempts + 1, permanent, retry_in_ms = delay.as_millis() as u64,
                    error = %message, "room sync failed");
                Ok(SyncOutcome::Failed(message))
            }
        }
    }

    /// Applies the room while renewing the lease, so a long sync (hundreds of joins) keeps the
    /// room and a crashed instance's lease still expires soon. The renewal runs in a task of its
    /// own: it must never wait on a connection the suspended sync holds (SQLite has one).
    async fn apply_holding_lease(&self, id: ChatroomId) -> Result<bool, SyncError> {
        let (store, clock, owner, lease) =
            (self.store.clone(), self.clock.clone(), self.owner.clone(), self.config.lease);
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = clock.now_ms() + lease.as_millis() as i64;
                let renewed = match store.pool().acquire().await {
                    Ok(mut conn) => jobs::extend_lease(&mut conn, id, &owner, until).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = renewed {
                    tracing::warn!(chatroom = id, error = %e, "renewing the room lease failed");
                }
            }
        });
        let result = self.apply(id).await;
        renewal.abort();
        result
    }

    /// Converges the room; true when the homeserver had to change.
    async fn apply(&self, id: ChatroomId) -> Result<bool, SyncError> {
        let mut conn = self.store.pool().acquire().await?;
        let Some(room) = chatrooms::find_including_deleted(&mut conn, id).await? else {
            return Ok(false); // Already gone: nothing left to converge.
        };
        drop(conn);
        if room.deleted {
            self.purge(&room).await?;
            return Ok(true);
        }

        let members = self.matrix_members(&room)?;
        let users: Vec<AppUserId> = room.roles.iter().map(|(user, _)| user).collect();
        self.ensure_accounts(&users).await?;
        let (room_id, created) = match &room.matrix_room_id {
            Some(room_id) => (room_id.clone(), false),
            None => (self.create(&room, &members).await?, true),
        };

        let actual = self.homeserver.room_state(&room_id).await?;
        let desired = DesiredRoom {
            name: room.name.clone(),
            avatar: room.avatar_url.as_ref().map(|u| u.to_string()),
            members,
        };
        let plan = plan::plan(&desired, &actual, self.homeserver.ids());
        if plan.is_empty() {
            return Ok(created);
        }
        tracing::info!(chatroom = id, room = %room_id, ?plan, "applying changes to the homeserver");
        let hs = &self.homeserver;
        if let Some(name) = &plan.name {
            hs.set_state(&room_id, "m.room.name", serde_json::json!({ "name": name })).await?;
        }
        if let Some(avatar) = plan.avatar {
            hs.set_state(&room_id, "m.room.avatar", avatar).await?;
        }
        // One write for all role changes: power levels are a single state event.
        if let Some(levels) = plan.power_levels {
            hs.set_state(&room_id, "m.room.power_levels", levels).await?;
        }
        let room_ref = &room_id;
        let needs_invite = |user: &UserId| plan.invite.iter().any(|u| u == user);
        let needs_unban = |user: &UserId| plan.unban.iter().any(|u| u == user);
        stream::iter(plan.join.iter().map(Ok::<_, HomeserverError>))
            .try_for_each_concurrent(self.config.join_concurrency, |user| async move {
                if needs_unban(user) {
                    hs.unban(room_ref, user).await?;
                }
                if needs_invite(user) {
                    hs.invite(room_ref, user).await?;
                }
                hs.join_as(room_ref, user).await
            })
            .await?;
        stream::iter(plan.kick.iter().map(Ok::<_, HomeserverError>))
            .try_for_each_concurrent(self.config.join_concurrency, |user| async move {
                match hs.kick(room_ref, user, "removed from the room's lists").await {
                    Err(e) if !e.is_transient() => {
                        // Refused because they left meanwhile (deactivation does that)? Then done.
                        let membership = hs.room_state(room_ref).await?.members.get(user).copied();
                        match membership {
                            Some(Membership::Join | Membership::Invite | Membership::Knock) => Err(e),
                            _ => Ok(()),
                        }
                    }
                    other => other,
                }
            })
            .await?;
        Ok(true)
    }

    fn matrix_members(&self, room: &Chatroom) -> Result<BTreeMap<OwnedUserId, Role>, SyncError> {
        let ids = self.homeserver.ids();
        room.roles
            .iter()
            .map(|(user, role)| Ok((ids.user_id(user).map_err(SyncError::Invalid)?, role)))
            .collect()
    }

    /// Registers the Matrix accounts of users not known to have one.
    pub async fn ensure_accounts(&self, users: &[AppUserId]) -> Result<(), SyncError> {
        let known = {
            let mut conn = self.store.pool().acquire().await?;
            accounts::find_many(&mut conn, users).await?
        };
        let missing: Vec<AppUserId> =
            users.iter().copied().filter(|user| !known.contains_key(user)).collect();
        let ids = self.homeserver.ids();
        let registered: Vec<AppUserId> = stream::iter(missing)
            .map(|user| async move {
                let matrix_user = ids.user_id(user).map_err(SyncError::Invalid)?;
                self.homeserver.ensure_user(&matrix_user).await?;
                Ok::<_, SyncError>(user)
            })
            .buffer_unordered(self.config.join_concurrency)
            .try_collect()
            .await?;
        let mut conn = self.store.pool().acquire().await?;
        for user in registered {
            accounts::mark_provisioned(&mut conn, user, self.clock.now_ms()).await?;
        }
        Ok(())
    }

    async fn room_version(&self) -> Result<String, SyncError> {
        if let Some(version) = &self.configured_room_version {
            return Ok(version.clone());
        }
        let version = self.room_version.get_or_try_init(|| self.homeserver.default_room_version()).await?;
        Ok(version.clone())
    }

    /// Creates the Matrix room, or finds the one an earlier attempt created (by its alias).
    async fn create(
        &self,
        room: &Chatroom,
        members: &BTreeMap<OwnedUserId, Role>,
    ) -> Result<OwnedRoomId, SyncError> {
        let hs = &self.homeserver;
        let alias = room_alias(&room.matrix_alias, hs.ids().server_name()).map_err(SyncError::Invalid)?;
        let room_id = match hs.resolve_alias(&alias).await? {
            Some(existing) => existing,
            None => {
                let room_version = self.room_version().await?;
                let new_room = NewRoom {
                    alias_localpart: room.matrix_alias.clone(),
                    name: room.name.clone(),
                    avatar: room.avatar_url.clone(),
                    power_users: plan::initial_power_users(members, hs.ids().bot(), &room_version),
                    room_version: Some(room_version),
                    invite: members.keys().cloned().collect(),
                };
                match hs.create_room(&new_room).await? {
                    Some(created) => created,
                    // The alias appeared between our lookup and createRoom: a concurrent attempt won.
                    None => hs.resolve_alias(&alias).await?.ok_or_else(|| {
                        SyncError::Invalid(format!("alias {alias} is taken but resolves to no room"))
                    })?,
                }
            }
        };
        let mut conn = self.store.pool().acquire().await?;
        chatrooms::set_matrix_room_id(&mut conn, room.id, &room_id).await?;
        Metrics::count(&self.metrics.rooms_created);
        tracing::info!(chatroom = room.id, room = %room_id, "matrix room created");
        Ok(room_id)
    }

    /// Deletes the room's media, shuts the room down and purges it, then drops the record.
    async fn purge(&self, room: &Chatroom) -> Result<(), SyncError> {
        let hs = &self.homeserver;
        let room_id = match &room.matrix_room_id {
            Some(id) => Some(id.clone()),
            // Creation may have happened before the id was stored.
            None => {
                let alias =
                    room_alias(&room.matrix_alias, hs.ids().server_name()).map_err(SyncError::Invalid)?;
                hs.resolve_alias(&alias).await?
            }
        };
        if let Some(room_id) = &room_id {
            // Media first: once the room is purged, nothing lists what it referenced.
            let mut media = hs.room_media(room_id).await?;
            media.extend(room.avatar_url.clone());
            media.sort();
            media.dedup();
            for mxc in &media {
                hs.delete_media(mxc).await?;
            }
            hs.purge_room(room_id).await?;
        } else if let Some(avatar) = &room.avatar_url {
            hs.delete_media(avatar).await?;
        }
        let mut conn = self.store.pool().acquire().await?;
        chatrooms::remove(&mut conn, room.id).await?;
        Metrics::count(&self.metrics.rooms_purged);
        tracing::info!(chatroom = room.id, room = ?room_id, "room deleted and purged");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_the_homeservers_hint() {
        let (base, cap) = (Duration::from_millis(500), Duration::from_secs(60));
        assert_eq!(backoff(base, cap, 0, None), Duration::from_millis(500));
        assert_eq!(backoff(base, cap, 1, None), Duration::from_secs(1));
        assert_eq!(backoff(base, cap, 4, None), Duration::from_secs(8));
        assert_eq!(backoff(base, cap, 10, None), cap);
        assert_eq!(backoff(base, cap, 1_000, None), cap, "no overflow");
        assert_eq!(backoff(base, cap, 0, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(backoff(base, cap, 4, Some(Duration::from_secs(3))), Duration::from_secs(8));
    }
}
