//! Brings one room on the homeserver to the state the database holds. Every step is safe to
//! repeat: a crash or a failed call at any point leaves a job that the next attempt finishes.

use std::{collections::BTreeMap, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::{stream, FutureExt, StreamExt, TryStreamExt};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};
use tokio::{sync::OnceCell, task::JoinHandle, time::Instant};
use tracing::Instrument;

use super::{
    locks::RoomLocks,
    plan::{self, Action, DesiredRoom, Step},
};
use serde_json::json;

use crate::{
    clock::Clock,
    config::SyncConfig,
    domain::{AppUserId, ChatroomId, OrganizationId, Role},
    matrix::{
        power_levels, room_alias, FailureKind, Homeserver, HomeserverError, MatrixIds, Membership, NewRoom,
    },
    metrics::Metrics,
    store::{
        accounts,
        chatrooms::{self, Chatroom},
        drift,
        jobs::{self, Failure, JobKey, Lease},
        moderation::{self, RoomModeration},
        organizations, Store,
    },
    webhooks::{self, EventType, Outgoing, RoomRef},
};

/// Refusals in a row before a room is reported `failed`.
const FAILED_AFTER_REFUSALS: i64 = 3;

/// Capped exponential backoff from `base`, spread by `jitter` (0 to 1: the delay's upper half
/// is random, so rooms that failed together do not retry in lockstep); the homeserver's own
/// `retry_after_ms` wins when longer.
pub fn backoff(
    base: Duration,
    cap: Duration,
    attempts: i64,
    hint: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exponent = attempts.clamp(0, 20) as u32;
    let delay = base.saturating_mul(2u32.saturating_pow(exponent)).min(cap);
    let delay = delay.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    hint.map_or(delay, |hint| hint.max(delay))
}

/// What a failed attempt does to the job: refusals in a row, and whether retries stop.
pub fn after_failure(kind: FailureKind, refusals_before: i64) -> (i64, bool) {
    match kind {
        FailureKind::Transient => (0, false),
        FailureKind::Refused => (refusals_before + 1, refusals_before + 1 >= FAILED_AFTER_REFUSALS),
        // Retrying cannot help until an operator fixes the token; a restart retries these rooms.
        FailureKind::Configuration => (refusals_before, true),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Homeserver(#[from] HomeserverError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A fault of ours: data the homeserver could never take.
    #[error("{0}")]
    Invalid(String),
    #[error("the sync panicked: {0}")]
    Panicked(String),
}

impl SyncError {
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Homeserver(e) => e.kind(),
            Self::Database(_) => FailureKind::Transient,
            Self::Invalid(_) | Self::Panicked(_) => FailureKind::Refused,
        }
    }
    /// What the room's `syncError` says.
    fn describe(&self) -> String {
        match self.kind() {
            FailureKind::Configuration => format!(
                "configuration error: the homeserver refuses the service's own token \
                 (CHATROOMS_MATRIX_AS_TOKEN or the admin token): {self}"
            ),
            _ => self.to_string(),
        }
    }
}

/// What happened when a room was asked to converge.
#[derive(Debug)]
pub enum SyncOutcome {
    Synced,
    /// The attempt failed; the job stays. `retry_in` is when the next attempt is planned, or
    /// `None` when retries stopped (`failed`).
    Failed {
        message: String,
        retry_in: Option<Duration>,
    },
    /// Another worker (another instance) holds the room right now; it will finish the job.
    Busy,
    /// This attempt applied what it read, but a newer change came in meanwhile: the job stays
    /// for another pass.
    ChangedMeanwhile,
}

/// The room as the database wants it on the homeserver: its lists less the banned users, who
/// stay banned; the muted assigned users; those whose ban ended, to unban.
fn desired_room(
    room: &Chatroom,
    moderation: &RoomModeration,
    ids: &MatrixIds,
) -> Result<DesiredRoom, SyncError> {
    let user_id = |user| ids.user_id(user).map_err(SyncError::Invalid);
    let banned = moderation
        .bans
        .iter()
        .map(|ban| Ok((user_id(ban.user)?, ban.reason.clone().unwrap_or_default())))
        .collect::<Result<BTreeMap<_, _>, SyncError>>()?;
    let mut members = BTreeMap::new();
    for (user, role) in room.roles.iter() {
        let user = user_id(user)?;
        if !banned.contains_key(&user) {
            members.insert(user, role);
        }
    }
    let muted = moderation
        .mutes
        .iter()
        .filter(|mute| room.roles.role_of(mute.user) == Some(Role::Assigned))
        .map(|mute| user_id(mute.user))
        .collect::<Result<_, _>>()?;
    let unbanned = moderation.lifted.iter().map(|(user, _)| user_id(*user)).collect::<Result<_, _>>()?;
    Ok(DesiredRoom {
        parent: room.space_id.clone(),
        name: room.name.clone(),
        avatar: room.avatar_url.as_ref().map(|u| u.to_string()),
        topic: room.settings.topic.as_ref().map(|topic| topic.as_str().to_owned()),
        read_only: room.settings.read_only,
        archived: room.archived_at.is_some(),
        members,
        banned,
        unbanned,
        muted,
    })
}

/// The Matrix room a chatroom names, as the reconciler finds it.
enum Found {
    Complete(Box<crate::matrix::RoomState>),
    /// Left behind by a homeserver that crashed during createRoom.
    HalfMade {
        bot_joined: bool,
    },
}

/// Aborts the task when dropped: the lease renewal ends with the sync however the sync ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a room's sync reports of its joins (shown with a `202`).
enum JoinProgress {
    /// About to join users: `joined` of the `listed` are in already.
    Starting {
        joined: i64,
        listed: i64,
    },
    OneMore,
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
    /// Wakes the worker before its next poll: work queued without a request waiting on it.
    wake: tokio::sync::Notify,
}

impl Reconciler {
    pub fn new(
        store: Store,
        homeserver: Arc<dyn Homeserver>,
        clock: Arc<dyn Clock>,
        config: SyncConfig,
        configured_room_version: Option<String>,
        metrics: Arc<Metrics>,
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
            metrics,
            owner,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Whether the homeserver's pushes reach this service: it answered the homeserver's
    /// appservice ping, asked for now (a slow answer counts as none).
    pub async fn pushes_arrive(&self, appservice_id: &str) -> bool {
        let ping = self.homeserver.ping_appservice(appservice_id);
        matches!(tokio::time::timeout(Duration::from_secs(10), ping).await, Ok(Ok(_)))
    }

    /// Lets the worker look for due jobs now rather than at its next poll (a drift check the
    /// homeserver's push queued, a client's moderation adopted).
    pub fn wake_worker(&self) {
        self.wake.notify_one();
    }

    /// Resolves when [`Reconciler::wake_worker`] was called (since the last time).
    pub async fn woken(&self) {
        self.wake.notified().await
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Holds the room against every other writer in this process (syncs included) while a
    /// read-modify-write of its homeserver state runs (pins).
    pub async fn lock_room(&self, id: ChatroomId) -> tokio::sync::OwnedMutexGuard<()> {
        self.locks.lock(JobKey::Room(id)).await
    }

    /// Converges the rooms (at most `concurrency` at once) and waits at most `request_wait` for
    /// them, retrying transient failures within that wait. Past it the work goes on in the
    /// background and the caller reports the change as pending. `None` for a room still going.
    pub async fn converge_within_request(self: &Arc<Self>, ids: Vec<ChatroomId>) -> Vec<Option<SyncOutcome>> {
        self.converge_jobs_within_request(ids.into_iter().map(JobKey::Room).collect()).await
    }

    /// [`Reconciler::converge_within_request`] for rooms and spaces alike.
    pub async fn converge_jobs_within_request(
        self: &Arc<Self>,
        ids: Vec<JobKey>,
    ) -> Vec<Option<SyncOutcome>> {
        let deadline = Instant::now() + super::request_wait(self.config.request_wait);
        let count = ids.len();
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let this = Arc::clone(self);
        // A task of its own: the attempts running at the deadline finish instead of being cut
        // off mid-write (which would keep the room's lease until it expires). It stays in the
        // request's span, so its log lines carry the request id.
        let converge = stream::iter(ids.into_iter().enumerate()).for_each_concurrent(
            this.config.concurrency,
            move |(index, id)| {
                let (this, sender) = (this.clone(), sender.clone());
                async move {
                    let outcome = this.converge_until(id, deadline).await;
                    let _ = sender.send((index, outcome));
                }
            },
        );
        tokio::spawn(converge.instrument(tracing::Span::current()));
        let mut outcomes: Vec<Option<SyncOutcome>> = (0..count).map(|_| None).collect();
        let collect = async {
            while let Some((index, outcome)) = receiver.recv().await {
                outcomes[index] = Some(outcome);
            }
        };
        let _ = tokio::time::timeout_at(deadline, collect).await;
        // What the wait left (all of it, for a caller who would not wait) is the worker's now.
        if outcomes.iter().any(|outcome| matches!(outcome, None | Some(SyncOutcome::Busy))) {
            self.wake_worker();
        }
        outcomes
    }

    /// Attempts until the room is in sync, retries stopped, or the next attempt would come
    /// after `deadline`.
    async fn converge_until(&self, id: JobKey, deadline: Instant) -> SyncOutcome {
        loop {
            // Past the wait nobody listens any more: rooms not started by then are the worker's.
            if Instant::now() >= deadline {
                return SyncOutcome::Busy;
            }
            let outcome = self.converge_job(id).await;
            let wait = match &outcome {
                SyncOutcome::Failed { retry_in: Some(delay), .. } => *delay,
                // Another instance holds the room: see whether it finished.
                SyncOutcome::Busy => self.config.retry_base,
                // Straight on to the next pass.
                SyncOutcome::ChangedMeanwhile => Duration::ZERO,
                _ => return outcome,
            };
            if Instant::now() + wait >= deadline {
                return outcome;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt at the room's pending job, serialized with every other writer of the room.
    pub async fn converge(&self, id: ChatroomId) -> SyncOutcome {
        self.converge_job(JobKey::Room(id)).await
    }

    /// One attempt at a room's or a space's pending job, serialized with its other writers.
    pub async fn converge_job(&self, id: JobKey) -> SyncOutcome {
        let _room_guard = self.locks.lock(id).await;
        match self.try_converge(id).await {
            Ok(outcome) => outcome,
            Err(err) => {
                // The database itself failed; the job stays as it was and the worker retries.
                tracing::warn!(chatroom = id.room(), space_of = id.space(), error = %err, "sync bookkeeping failed");
                SyncOutcome::Failed { message: err.to_string(), retry_in: Some(self.config.retry_base) }
            }
        }
    }

    async fn try_converge(&self, id: JobKey) -> Result<SyncOutcome, SyncError> {
        let now = self.clock.now_ms();
        let until = now + self.config.lease.as_millis() as i64;
        let mut conn = self.store.pool().acquire().await?;
        let (version, attempts, refusals, drift_check) =
            match jobs::lease(&mut conn, id, &self.owner, now, until).await? {
                Lease::Held { version, attempts, refusals, drift_check } => {
                    (version, attempts, refusals, drift_check)
                }
                Lease::NoJob => return Ok(SyncOutcome::Synced),
                Lease::Busy => return Ok(SyncOutcome::Busy),
                Lease::Stopped { last_error } => {
                    let message = last_error.unwrap_or_else(|| "retries stopped".to_owned());
                    return Ok(SyncOutcome::Failed { message, retry_in: None });
                }
                Lease::NotDue(in_ms) => {
                    let retry_in = Duration::from_millis(in_ms.max(1) as u64);
                    let message = "the last attempt failed; the next one is planned".to_owned();
                    return Ok(SyncOutcome::Failed { message, retry_in: Some(retry_in) });
                }
            };
        drop(conn);

        // A panic in one room's sync is that room's failure, not the worker's end.
        let result =
            AssertUnwindSafe(self.apply_holding_lease(id)).catch_unwind().await.unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Err(SyncError::Panicked(message))
            });
        let mut conn = self.store.pool().acquire().await?;
        match result {
            Ok(changed) => {
                // Counted before the job closes: whoever sees it closed sees it counted.
                self.metrics.syncs_succeeded.inc();
                let drift = drift_check && changed;
                if drift {
                    self.metrics.drift_repairs.inc();
                }
                let closed = jobs::complete(&mut conn, id, version, &self.owner).await?;
                // Read and put in step as of the lease: the periodic pass can skip it a while.
                drift::mark_checked(&mut conn, id, now).await?;
                if drift {
                    tracing::warn!(
                        chatroom = id.room(),
                        space_of = id.space(),
                        "drift: the homeserver differed from the database; restored"
                    );
                } else {
                    tracing::info!(chatroom = id.room(), space_of = id.space(), version, "room in sync");
                }
                Ok(if closed { SyncOutcome::Synced } else { SyncOutcome::ChangedMeanwhile })
            }
            Err(err) => {
                // A refusal can be a race with a change on the homeserver (a user leaving while
                // we kick them); the next attempt reads fresh state. Only refusals in a row stop
                // the retries.
                let kind = err.kind();
                let (refusals, failed) = after_failure(kind, refusals);
                let hint = match &err {
                    SyncError::Homeserver(e) => e.retry_after(),
                    _ => None,
                };
                let delay =
                    backoff(self.config.retry_base, self.config.retry_cap, attempts, hint, rand::random());
                let message = err.describe();
                let failure = Failure {
                    error: &message,
                    kind: kind.label(),
                    refusals,
                    next_attempt_at: self.clock.now_ms() + delay.as_millis() as i64,
                    failed,
                };
                // Logged before it is recorded: whoever sees the room fail finds the reason logged.
                let attempts = attempts + 1;
                let retry_in_ms = delay.as_millis() as u64;
                match kind {
                    FailureKind::Configuration => {
                        tracing::error!(chatroom = id.room(), space_of = id.space(), attempts, error = %message,
                        "room sync stopped: fix the service's homeserver credentials and restart")
                    }
                    FailureKind::Refused if matches!(err, SyncError::Panicked(_)) => tracing::error!(
                        chatroom = id.room(), space_of = id.space(), attempts, failed, retry_in_ms, error = %message, "room sync panicked"),
                    _ => {
                        tracing::warn!(chatroom = id.room(), space_of = id.space(), attempts, failed, retry_in_ms, error = %message,
                        "room sync failed")
                    }
                }
                jobs::record_failure(&mut conn, id, &self.owner, version, &failure).await?;
                if let (true, JobKey::Room(room)) = (failed, id) {
                    self.report_failure(&mut conn, room, &message).await?;
                }
                self.metrics.syncs_failed.inc();
                Ok(SyncOutcome::Failed { message, retry_in: (!failed).then_some(delay) })
            }
        }
    }

    /// Queues a webhook event about the room, in the caller's transaction.
    async fn report(
        &self,
        conn: &mut sqlx::AnyConnection,
        kind: EventType,
        room: &RoomRef,
        source: &str,
        data: serde_json::Value,
    ) -> Result<(), SyncError> {
        let data = data.as_object().cloned().unwrap_or_default();
        webhooks::emit(conn, Outgoing { kind, room, source, data, at: self.clock.now_ms() }).await?;
        Ok(())
    }

    /// `room.sync_failed`: retries stopped, someone has to look. On the caller's connection:
    /// SQLite's pool has one.
    async fn report_failure(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: ChatroomId,
        error: &str,
    ) -> Result<(), SyncError> {
        let Some(room) = chatrooms::find_including_deleted(conn, id).await? else { return Ok(()) };
        let source = format!("room.sync_failed/{id}/{}", self.clock.now_ms());
        let data = json!({"name": room.name, "error": error});
        self.report(conn, EventType::RoomSyncFailed, &RoomRef::of(&room), &source, data).await
    }

    /// Applies the room while renewing the lease, so a long sync (hundreds of joins) keeps the
    /// room and a crashed instance's lease still expires soon. The renewal runs in a task of its
    /// own: it must never wait on a connection the suspended sync holds (SQLite has one).
    async fn apply_holding_lease(&self, id: JobKey) -> Result<bool, SyncError> {
        let (store, clock, owner, lease) =
            (self.store.clone(), self.clock.clone(), self.owner.clone(), self.config.lease);
        let renew = async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = clock.now_ms() + lease.as_millis() as i64;
                let renewed = match store.pool().acquire().await {
                    Ok(mut conn) => jobs::extend_lease(&mut conn, id, &owner, until).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = renewed {
                    tracing::warn!(chatroom = id.room(), space_of = id.space(), error = %e, "renewing the room lease failed");
                }
            }
        };
        // In the request's span when a request waits for this sync.
        let _renewal = AbortOnDrop(tokio::spawn(renew.in_current_span()));
        match id {
            JobKey::Room(room) => self.apply(room).await,
            JobKey::Space(org) => self.apply_space(org).await,
        }
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

        let moderation = self.moderation_of(id).await?;
        let desired = desired_room(&room, &moderation, self.homeserver.ids())?;
        let mut users: Vec<AppUserId> = room.roles.iter().map(|(user, _)| user).collect();
        users.extend(moderation.bans.iter().map(|ban| ban.user));
        users.sort_unstable();
        users.dedup();
        self.ensure_accounts(&users).await?;
        let (mut room_id, mut created) = match &room.matrix_room_id {
            Some(room_id) => (room_id.clone(), false),
            None => (self.create(&room, &desired.members).await?, true),
        };

        // A homeserver that crashed mid-create can leave a room with little more than
        // `m.room.create` behind the alias (often without the bot, which then reads a 403).
        // Nobody else can be in such a room yet: retire it and create the room afresh.
        let actual = match self.find(&room_id).await? {
            Found::Complete(actual) => *actual,
            Found::HalfMade { bot_joined } => {
                self.retire_half_made(JobKey::Room(id), &room.matrix_alias, &room_id, bot_joined).await?;
                room_id = self.create(&room, &desired.members).await?;
                created = true;
                self.homeserver.room_state(&room_id).await?
            }
        };
        let mut conn = self.store.pool().acquire().await?;
        if actual.pinned != room.pinned {
            // Pins are written on the homeserver (by the API or in a client); keep our copy.
            chatrooms::set_pinned(&mut conn, id, &actual.pinned).await?;
        }
        // The space as of now: one made while this sync ran (maybe for this very room, just
        // created) has queued no check of a room it did not see yet.
        let mut desired = desired;
        if desired.parent.is_none() {
            desired.parent =
                organizations::find(&mut conn, room.organization_id).await?.and_then(|o| o.matrix_space_id);
        }
        drop(conn);
        let plan = plan::plan(&desired, &actual, self.homeserver.ids());
        let changed = !plan.is_empty();
        if changed {
            tracing::info!(chatroom = id, room = %room_id, ?plan, "applying changes to the homeserver");
            let joins = plan.actions.iter().any(
                |action| matches!(action, Action::Membership { steps, .. } if steps.contains(&Step::Join)),
            );
            let progress = joins.then_some(id);
            if joins {
                let joined = desired
                    .members
                    .keys()
                    .filter(|user| actual.members.get(*user) == Some(&Membership::Join))
                    .count() as i64;
                let listed = desired.members.len() as i64;
                self.note_progress(id, JoinProgress::Starting { joined, listed }).await;
            }
            self.execute(&room_id, plan, progress).await?;
        }
        if !moderation.lifted.is_empty() {
            // Their unbans are done; a lift made since this sync read them stays for the next.
            let mut conn = self.store.pool().acquire().await?;
            moderation::forget_lifted(&mut conn, id, &moderation.lifted).await?;
        }
        Ok(created || changed)
    }

    /// Converges the organization's space: made once the organization has a room (and kept when
    /// its last room goes, so its id stays stable), named as the organization, its children the
    /// organization's rooms, its members everyone holding a role in one of them and the
    /// organization's admins at power 100. True when the homeserver had to change.
    async fn apply_space(&self, org: OrganizationId) -> Result<bool, SyncError> {
        let mut conn = self.store.pool().acquire().await?;
        let (live_rooms, children) = organizations::rooms(&mut conn, org).await?;
        let known = organizations::find(&mut conn, org).await?;
        if live_rooms == 0 && known.as_ref().and_then(|o| o.matrix_space_id.as_ref()).is_none() {
            return Ok(false); // No room yet: no space either.
        }
        let organization = match known {
            Some(organization) => organization,
            None => organizations::ensure(&mut conn, org, self.clock.now_ms()).await?,
        };
        let roles = organizations::space_members(&mut conn, org).await?;
        drop(conn);
        let ids = self.homeserver.ids();
        let members = roles
            .iter()
            .map(|(user, role)| Ok((ids.user_id(*user).map_err(SyncError::Invalid)?, *role)))
            .collect::<Result<BTreeMap<_, _>, SyncError>>()?;
        self.ensure_accounts(&roles.keys().copied().collect::<Vec<_>>()).await?;
        let (mut space_id, mut created) = match &organization.matrix_space_id {
            Some(id) => (id.clone(), false),
            None => (self.create_space(&organization, &members).await?, true),
        };
        // As for rooms: a space a crashed createRoom left half-made is retired and made afresh.
        let actual = match self.find(&space_id).await? {
            Found::Complete(actual) => *actual,
            Found::HalfMade { bot_joined } => {
                self.retire_half_made(JobKey::Space(org), &organization.space_alias, &space_id, bot_joined)
                    .await?;
                space_id = self.create_space(&organization, &members).await?;
                created = true;
                self.homeserver.room_state(&space_id).await?
            }
        };
        let desired = DesiredRoom {
            name: organization.space_name(),
            avatar: organization.avatar_url.as_ref().map(ToString::to_string),
            topic: None,
            read_only: false,
            archived: false,
            members,
            banned: BTreeMap::new(),
            unbanned: Default::default(),
            muted: Default::default(),
            parent: None,
        };
        let mut plan = plan::plan(&desired, &actual, ids);
        plan.actions.extend(plan::space_children(&children, &actual));
        let changed = !plan.is_empty();
        if changed {
            tracing::info!(organization = org, space = %space_id, ?plan, "applying changes to the space");
            self.execute(&space_id, plan, None).await?;
        }
        Ok(created || changed)
    }

    /// Creates the organization's space, or finds the one an earlier attempt created (by its
    /// alias); then queues a check of each of the organization's rooms, which name it as parent.
    async fn create_space(
        &self,
        organization: &organizations::Organization,
        members: &BTreeMap<OwnedUserId, Role>,
    ) -> Result<OwnedRoomId, SyncError> {
        let bot = self.homeserver.ids().bot();
        let space_id = self
            .create_or_find(&organization.space_alias, |room_version| NewRoom {
                alias_localpart: organization.space_alias.clone(),
                name: organization.space_name(),
                avatar: organization.avatar_url.clone(),
                topic: None,
                events_default: 0,
                power_users: plan::initial_power_users(members, bot, &room_version),
                room_version: Some(room_version),
                invite: members.keys().cloned().collect(),
                space: true,
                encrypted: false,
            })
            .await?;
        let now = self.clock.now_ms();
        let mut conn = self.store.pool().acquire().await?;
        organizations::set_space_id(&mut conn, organization.id, &space_id).await?;
        // SQLite's pool has one connection: the transaction below needs it.
        drop(conn);
        // The rooms read after the id is committed: a room created meanwhile either is among
        // them or reads the space itself when it plans. Bumping the version of a job already
        // queued: a sync of the room running now read it without the space.
        let mut tx = self.store.begin().await?;
        for room in organizations::created_room_ids(&mut tx, organization.id).await? {
            jobs::enqueue_link(&mut tx, room, now).await?;
        }
        tx.commit().await?;
        tracing::info!(organization = organization.id, space = %space_id, "matrix space created");
        self.wake_worker();
        Ok(space_id)
    }

    /// What a sync of the room would do now, without doing it (for checks and tests). `None`
    /// when the room has no Matrix room yet.
    pub async fn plan_for(&self, id: ChatroomId) -> Result<Option<plan::Plan>, SyncError> {
        let mut conn = self.store.pool().acquire().await?;
        let Some(room) = chatrooms::find(&mut conn, id).await? else { return Ok(None) };
        drop(conn);
        let Some(room_id) = &room.matrix_room_id else { return Ok(None) };
        let actual = self.homeserver.room_state(room_id).await?;
        let moderation = self.moderation_of(id).await?;
        let desired = desired_room(&room, &moderation, self.homeserver.ids())?;
        Ok(Some(plan::plan(&desired, &actual, self.homeserver.ids())))
    }

    /// The room's bans, lifted bans and mutes, as of one moment.
    async fn moderation_of(&self, id: ChatroomId) -> Result<RoomModeration, SyncError> {
        let mut tx = self.store.begin().await?;
        let moderation = moderation::for_room(&mut tx, id).await?;
        tx.commit().await?;
        Ok(moderation)
    }

    /// Records how far a room's sync is with its joins; a failure to record is only logged.
    async fn note_progress(&self, id: ChatroomId, progress: JoinProgress) {
        let result = async {
            let mut conn = self.store.pool().acquire().await?;
            match progress {
                JoinProgress::Starting { joined, listed } => {
                    jobs::start_progress(&mut conn, id, joined, listed).await
                }
                JoinProgress::OneMore => jobs::count_join(&mut conn, id).await,
            }
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(chatroom = id, error = %e, "recording a sync's progress failed");
        }
    }

    /// Runs the plan's actions in order; the membership actions (one user each) side by side,
    /// at most `join_concurrency` at once. With `progress`, each join is counted for that room.
    async fn execute(
        &self,
        room_id: &RoomId,
        plan: plan::Plan,
        progress: Option<ChatroomId>,
    ) -> Result<(), SyncError> {
        let hs = &self.homeserver;
        let mut memberships = Vec::new();
        for action in plan.actions {
            match action {
                Action::SetName(name) => {
                    hs.set_state(room_id, "m.room.name", serde_json::json!({ "name": name })).await?
                }
                Action::SetAvatar(content) => hs.set_state(room_id, "m.room.avatar", content).await?,
                Action::SetTopic(topic) => {
                    hs.set_state(room_id, "m.room.topic", serde_json::json!({ "topic": topic })).await?
                }
                Action::SetPowerLevels(levels) => {
                    hs.set_state(room_id, "m.room.power_levels", levels).await?
                }
                Action::SetParent { space, present } => {
                    let content = if present {
                        json!({"via": [hs.ids().server_name()], "canonical": true})
                    } else {
                        json!({})
                    };
                    hs.set_state_keyed(room_id, "m.space.parent", &space, content).await?
                }
                Action::SetChild { room, present } => {
                    let content = if present { json!({"via": [hs.ids().server_name()]}) } else { json!({}) };
                    hs.set_state_keyed(room_id, "m.space.child", &room, content).await?
                }
                Action::Membership { user, steps } => memberships.push((user, steps, None)),
                Action::Ban { user, reason } => memberships.push((user, Vec::new(), Some(reason))),
            }
        }
        stream::iter(memberships.into_iter().map(Ok::<_, HomeserverError>))
            .try_for_each_concurrent(self.config.join_concurrency, |(user, steps, ban)| async move {
                if let Some(reason) = ban {
                    hs.ban(room_id, &user, &reason).await?;
                }
                for step in steps {
                    match step {
                        Step::Unban => hs.unban(room_id, &user).await?,
                        Step::Invite => hs.invite(room_id, &user).await?,
                        Step::Join => {
                            hs.join_as(room_id, &user).await?;
                            if let Some(id) = progress {
                                self.note_progress(id, JoinProgress::OneMore).await;
                            }
                        }
                        Step::Kick => self.kick(room_id, &user).await?,
                    }
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// A kick refused because the user left meanwhile (deactivation does that) is done.
    async fn kick(&self, room_id: &RoomId, user: &UserId) -> Result<(), HomeserverError> {
        let hs = &self.homeserver;
        match hs.kick(room_id, user, "removed from the room's lists").await {
            Err(e) if !e.is_transient() => {
                let membership = hs.room_state(room_id).await?.members.get(user).copied();
                match membership {
                    Some(Membership::Join | Membership::Invite | Membership::Knock) => Err(e),
                    _ => Ok(()),
                }
            }
            other => other,
        }
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
        let bot = self.homeserver.ids().bot();
        let room_id = self
            .create_or_find(&room.matrix_alias, |room_version| NewRoom {
                alias_localpart: room.matrix_alias.clone(),
                name: room.name.clone(),
                avatar: room.avatar_url.clone(),
                topic: room.settings.topic.as_ref().map(|topic| topic.as_str().to_owned()),
                events_default: power_levels::events_default(room.settings.read_only),
                power_users: plan::initial_power_users(members, bot, &room_version),
                room_version: Some(room_version),
                invite: members.keys().cloned().collect(),
                space: false,
                encrypted: room.encrypted,
            })
            .await?;
        let mut tx = self.store.begin().await?;
        chatrooms::set_matrix_room_id(&mut tx, room.id, &room_id).await?;
        // The space takes the new room as a child.
        jobs::enqueue_space(&mut tx, room.organization_id, self.clock.now_ms()).await?;
        let reported = RoomRef { matrix_room_id: Some(room_id.to_string()), ..RoomRef::of(room) };
        let source = format!("room.created/{room_id}");
        self.report(&mut tx, EventType::RoomCreated, &reported, &source, json!({"name": room.name})).await?;
        tx.commit().await?;
        self.metrics.rooms_created.inc();
        tracing::info!(chatroom = room.id, room = %room_id, "matrix room created");
        Ok(room_id)
    }

    /// The room behind the alias, created from `new_room` (given the room version) unless an
    /// earlier attempt did: createRoom under an alias is idempotent across crashes.
    async fn create_or_find(
        &self,
        alias_localpart: &str,
        new_room: impl FnOnce(String) -> NewRoom,
    ) -> Result<OwnedRoomId, SyncError> {
        let hs = &self.homeserver;
        let alias = room_alias(alias_localpart, hs.ids().server_name()).map_err(SyncError::Invalid)?;
        if let Some(existing) = hs.resolve_alias(&alias).await? {
            return Ok(existing);
        }
        let new_room = new_room(self.room_version().await?);
        match hs.create_room(&new_room).await? {
            Some(created) => Ok(created),
            // The alias appeared between our lookup and createRoom: a concurrent attempt won.
            None => hs
                .resolve_alias(&alias)
                .await?
                .ok_or_else(|| SyncError::Invalid(format!("alias {alias} is taken but resolves to no room"))),
        }
    }

    /// The room's state, or that a crash left it half-made.
    async fn find(&self, room_id: &OwnedRoomId) -> Result<Found, SyncError> {
        let bot = self.homeserver.ids().bot();
        Ok(match self.homeserver.room_state(room_id).await {
            Ok(actual) if plan::is_half_made(&actual, bot) => {
                Found::HalfMade { bot_joined: actual.members.get(bot) == Some(&Membership::Join) }
            }
            Ok(actual) => Found::Complete(Box::new(actual)),
            Err(e) if e.status() == Some(403) && self.is_half_made(room_id).await? => {
                Found::HalfMade { bot_joined: false }
            }
            Err(e) => return Err(e.into()),
        })
    }

    async fn is_half_made(&self, room_id: &OwnedRoomId) -> Result<bool, SyncError> {
        let state = self.homeserver.room_state_as_admin(room_id).await?;
        Ok(state.is_some_and(|state| plan::is_half_made(&state, self.homeserver.ids().bot())))
    }

    /// Frees the alias of a half-made room, so `create` makes the room anew under it, and queues
    /// the orphan for purging in the background (a purge can wait minutes for locks the crashed
    /// homeserver left). Each step is safe to repeat: a crash in between leaves the job to
    /// finish it.
    async fn retire_half_made(
        &self,
        owner: JobKey,
        alias_localpart: &str,
        room_id: &OwnedRoomId,
        bot_joined: bool,
    ) -> Result<(), SyncError> {
        let hs = &self.homeserver;
        tracing::warn!(chatroom = owner.room(), space_of = owner.space(), room = %room_id,
            "the homeserver left this room half-made (a crash during createRoom?); creating it afresh");
        // The alias first: once it is free, nothing adopts the orphan again, so the background
        // purge cannot hit a room a chatroom is about to use.
        let alias = room_alias(alias_localpart, hs.ids().server_name()).map_err(SyncError::Invalid)?;
        if hs.resolve_alias(&alias).await?.as_ref() == Some(room_id) {
            hs.delete_alias(&alias).await?;
        }
        // Out of the orphan at once: until its purge completes, the bot is in its chatroom's room only.
        if bot_joined {
            hs.leave(room_id).await?;
        }
        let mut tx = self.store.begin().await?;
        match owner {
            JobKey::Room(id) => {
                chatrooms::retire_matrix_room(&mut tx, id, room_id, self.clock.now_ms()).await?
            }
            JobKey::Space(org) => {
                organizations::retire_space(&mut tx, org, room_id, self.clock.now_ms()).await?
            }
        }
        tx.commit().await?;
        self.metrics.half_made_rooms_retired.inc();
        Ok(())
    }

    /// Purges retired half-made rooms, a few at a time; a failed purge is tried again next time.
    pub async fn purge_retired_rooms(&self) -> Result<usize, SyncError> {
        let retired = {
            let mut conn = self.store.pool().acquire().await?;
            chatrooms::retired_rooms(&mut conn, 100).await?
        };
        let retired: Vec<OwnedRoomId> = retired.iter().filter_map(|id| RoomId::parse(id).ok()).collect();
        let purged = stream::iter(retired)
            .map(|room_id| async move {
                match self.homeserver.purge_room(&room_id).await {
                    Ok(()) => {
                        let mut conn = self.store.pool().acquire().await?;
                        chatrooms::forget_retired_room(&mut conn, &room_id).await?;
                        tracing::info!(room = %room_id, "retired half-made room purged");
                        Ok::<_, SyncError>(1)
                    }
                    Err(e) => {
                        tracing::warn!(room = %room_id, error = %e, "purging a retired room failed; retried later");
                        Ok(0)
                    }
                }
            })
            .buffer_unordered(self.config.join_concurrency)
            .try_fold(0, |total, n| async move { Ok(total + n) })
            .await?;
        Ok(purged)
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
        let mut media = Vec::new();
        if let Some(room_id) = &room_id {
            // Media first: once the room is purged, nothing lists what it referenced.
            media = hs.room_media(room_id).await?;
        }
        media.extend(room.avatar_url.clone());
        media.sort();
        media.dedup();
        // Rooms made with `copyFrom` share their template's avatar: keep one still shown.
        let mut conn = self.store.pool().acquire().await?;
        let mut unshared = Vec::with_capacity(media.len());
        for mxc in media {
            if !chatrooms::avatar_used_elsewhere(&mut conn, room.id, &mxc).await? {
                unshared.push(mxc);
            }
        }
        drop(conn);
        for mxc in &unshared {
            hs.delete_media(mxc).await?;
        }
        if let Some(room_id) = &room_id {
            hs.purge_room(room_id).await?;
        }
        let mut tx = self.store.begin().await?;
        chatrooms::remove(&mut tx, room.id).await?;
        // The space lets the room go, and its members if they have no other room.
        jobs::enqueue_space(&mut tx, room.organization_id, self.clock.now_ms()).await?;
        let reported =
            RoomRef { matrix_room_id: room_id.as_ref().map(ToString::to_string), ..RoomRef::of(room) };
        let source = format!("room.deleted/{}", room.id);
        self.report(&mut tx, EventType::RoomDeleted, &reported, &source, json!({"name": room.name})).await?;
        tx.commit().await?;
        self.metrics.rooms_purged.inc();
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
        let most = |attempts, hint| backoff(base, cap, attempts, hint, 1.0);
        assert_eq!(most(0, None), Duration::from_millis(500));
        assert_eq!(most(1, None), Duration::from_secs(1));
        assert_eq!(most(4, None), Duration::from_secs(8));
        assert_eq!(most(10, None), cap);
        assert_eq!(most(1_000, None), cap, "no overflow");
        assert_eq!(most(0, Some(Duration::from_secs(3))), Duration::from_secs(3));
        assert_eq!(most(4, Some(Duration::from_secs(3))), Duration::from_secs(8));
    }

    #[test]
    fn backoff_jitter_spreads_the_delay_over_its_upper_half() {
        let (base, cap) = (Duration::from_millis(1000), Duration::from_secs(60));
        assert_eq!(backoff(base, cap, 2, None, 0.0), Duration::from_millis(2000));
        assert_eq!(backoff(base, cap, 2, None, 0.5), Duration::from_millis(3000));
        assert_eq!(backoff(base, cap, 2, None, 1.0), Duration::from_millis(4000));
        assert_eq!(backoff(base, cap, 2, None, 7.0), Duration::from_millis(4000), "clamped");
        let delays: std::collections::BTreeSet<_> =
            (0..20).map(|_| backoff(base, cap, 2, None, rand::random())).collect();
        assert!(delays.len() > 10, "random jitter gives different delays: {delays:?}");
    }

    #[test]
    fn only_refusals_in_a_row_stop_the_retries() {
        use FailureKind::*;
        // Transient failures never stop retries and reset the count.
        assert_eq!(after_failure(Transient, 2), (0, false));
        assert_eq!(after_failure(Refused, 0), (1, false));
        assert_eq!(after_failure(Refused, 1), (2, false));
        assert_eq!(after_failure(Refused, 2), (3, true));
        // transient, transient, refusal: one refusal in a row, still retried.
        let mut refusals = 0;
        for kind in [Transient, Transient, Refused] {
            let (count, failed) = after_failure(kind, refusals);
            refusals = count;
            assert!(!failed);
        }
        assert_eq!(refusals, 1);
        // The service's own token refused: stop at once, it needs an operator.
        assert_eq!(after_failure(Configuration, 0), (0, true));
    }
}
