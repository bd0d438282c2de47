//! Chatrooms: create (custom), read, list, update, delete, and the steps every write shares.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use ruma::OwnedMxcUri;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::{
    extract::{present, ApiJson, ApiPath, ApiQuery, IdempotencyKey},
    schema::{Byte, PositiveId},
};
use crate::{
    app::AppState,
    auth::Caller,
    clock::to_datetime,
    domain::{
        check_id, parse_scheduled_deletion, require_future, Avatar, AvatarInput, ChatroomId, EventId, Id,
        OrganizationId, Role, RoleLists, RoomKind, RoomName,
    },
    error::{ApiError, ApiResult, ErrorBody},
    matrix::power_levels,
    store::{
        self, accounts,
        chatrooms::{self, Chatroom, ChatroomChanges, ListQuery, NewChatroom},
        idempotency, jobs,
    },
};

/// A chatroom. Field names follow the messenger API; `id`, `syncStatus` and `syncError` are ours.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatroomResponse {
    /// Our id of the chatroom, used in paths as `roomID`.
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: RoomKind,
    #[serde(rename = "organizationID")]
    pub organization_id: i64,
    /// Set for event chatrooms only.
    #[serde(rename = "eventID")]
    pub event_id: Option<i64>,
    pub name: String,
    /// The avatar's `mxc://` URI on the homeserver.
    #[serde(rename = "avatarURL")]
    pub avatar_url: Option<String>,
    pub automation_enabled: bool,
    /// When the room will be deleted (RFC 3339), or null.
    pub scheduled_deletion: Option<DateTime<Utc>>,
    /// The Matrix room id; null until the homeserver has created the room.
    #[serde(rename = "matrixRoomID")]
    pub matrix_room_id: Option<String>,
    pub admins: Vec<i64>,
    pub moderators: Vec<i64>,
    pub assigned_users: Vec<i64>,
    pub sync_status: SyncStatus,
    /// The last homeserver error while the room is not in sync.
    pub sync_error: Option<String>,
}

/// Whether the homeserver matches this record: `pending` changes are being retried; `failed`
/// ones stopped retrying after a permanent error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    Synced,
    Pending,
    Failed,
}

impl From<Chatroom> for ChatroomResponse {
    fn from(room: Chatroom) -> Self {
        let sync_status = match (&room.sync.pending, &room.sync.failed) {
            (false, _) => SyncStatus::Synced,
            (true, true) => SyncStatus::Failed,
            (true, false) => SyncStatus::Pending,
        };
        Self {
            id: room.id,
            kind: room.kind,
            organization_id: room.organization_id,
            event_id: room.event_id,
            name: room.name,
            avatar_url: room.avatar_url.map(|u| u.to_string()),
            automation_enabled: room.automation_enabled,
            scheduled_deletion: room.scheduled_deletion.and_then(to_datetime),
            matrix_room_id: room.matrix_room_id.map(|id| id.to_string()),
            admins: room.roles.users_with(Role::Admin),
            moderators: room.roles.users_with(Role::Moderator),
            assigned_users: room.roles.users_with(Role::Assigned),
            sync_status,
            sync_error: room.sync.last_error,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Steps shared by every write.

/// A validated room about to be created.
pub(crate) struct RoomDraft {
    pub kind: RoomKind,
    pub organization_id: OrganizationId,
    pub event_id: Option<EventId>,
    pub name: RoomName,
    pub avatar: Option<Avatar>,
    pub automation_enabled: bool,
    pub scheduled_deletion: Option<i64>,
    pub roles: RoleLists,
}

pub(crate) fn parse_name(raw: &str) -> ApiResult<RoomName> {
    RoomName::parse(raw).map_err(ApiError::unprocessable)
}

/// An organization id from a JSON body: at least 1.
pub(crate) fn parse_organization(id: i64) -> ApiResult<OrganizationId> {
    check_id("organizationID", id).map_err(ApiError::unprocessable)
}

pub(crate) fn parse_roles(admins: &[i64], moderators: &[i64], assigned: &[i64]) -> ApiResult<RoleLists> {
    RoleLists::parse(admins, moderators, assigned).map_err(ApiError::unprocessable)
}

/// An empty byte array or null means "no avatar".
pub(crate) fn parse_avatar(state: &AppState, input: Option<AvatarInput>) -> ApiResult<Option<Avatar>> {
    match input {
        Some(input) if !input.0.is_empty() => Avatar::parse(input, state.config.limits.avatar_max_bytes)
            .map(Some)
            .map_err(ApiError::unprocessable),
        _ => Ok(None),
    }
}

/// The time as given; that it lies in the future is checked when it is stored
/// ([`require_future_deletion`]), after an idempotent replay had its chance.
pub(crate) fn parse_deletion(value: &serde_json::Value) -> ApiResult<Option<i64>> {
    parse_scheduled_deletion(value)
        .map(|at| at.map(|at| at.timestamp_millis()))
        .map_err(ApiError::unprocessable)
}

fn require_future_deletion(state: &AppState, at: Option<i64>) -> ApiResult<()> {
    match at.and_then(crate::clock::to_datetime) {
        Some(at) => require_future(at, state.clock.now()).map_err(ApiError::unprocessable),
        None => Ok(()),
    }
}

/// Refuses a room's role lists (as they would be after the change) that hold more than
/// [`RoleLists::MAX_PER_ROOM`] users.
pub(crate) fn check_room_capacity(roles: &RoleLists) -> ApiResult<()> {
    if roles.len() > RoleLists::MAX_PER_ROOM {
        return Err(ApiError::unprocessable(format!(
            "the room would hold {} users in its role lists; at most {} are allowed",
            roles.len(),
            RoleLists::MAX_PER_ROOM
        )));
    }
    Ok(())
}

/// Refuses a room's role lists beyond the room's limits: more users than
/// [`RoleLists::MAX_PER_ROOM`], or admins and moderators whose power levels would not fit in one
/// Matrix state event.
pub(crate) fn check_power_levels_fit(state: &AppState, roles: &RoleLists) -> ApiResult<()> {
    check_room_capacity(roles)?;
    let ids = state.homeserver.ids();
    let mut users = std::collections::BTreeMap::new();
    for (user, role) in roles.iter() {
        if let Some(level) = role.power_level() {
            users.insert(ids.user_id(user).map_err(ApiError::unprocessable)?, level);
        }
    }
    users.insert(ids.bot().to_owned(), 100);
    let size = power_levels::content_size(&users);
    if size > power_levels::MAX_CONTENT_BYTES {
        return Err(ApiError::unprocessable(format!(
            "too many admins and moderators ({}): their power levels take {size} bytes, more than the {} \
             one Matrix state event can hold",
            users.len() - 1,
            power_levels::MAX_CONTENT_BYTES
        )));
    }
    Ok(())
}

/// Refuses role lists naming deactivated users: their accounts can no longer join rooms.
pub(crate) async fn check_users_active(state: &AppState, roles: &RoleLists) -> ApiResult<()> {
    let users: Vec<_> = roles.iter().map(|(user, _)| user).collect();
    let mut conn = state.store.pool().acquire().await?;
    let accounts = accounts::find_many(&mut conn, &users).await?;
    let deactivated: Vec<_> =
        users.iter().filter(|user| accounts.get(user).is_some_and(|a| a.deactivated)).collect();
    if deactivated.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!("deactivated users cannot hold a role: {deactivated:?}")))
    }
}

/// Uploads the avatar before anything is written: if the homeserver cannot take it now, the
/// request is refused whole (503) instead of half-accepted.
pub(crate) async fn upload_avatar(state: &AppState, avatar: &Avatar) -> ApiResult<OwnedMxcUri> {
    Ok(state
        .homeserver
        .upload_media(avatar.bytes().to_vec(), avatar.content_type(), avatar.file_name())
        .await?)
}

/// Deletes what was uploaded for a request that then failed: nothing of it stays behind.
pub(crate) async fn discard_upload(state: &AppState, uploaded: Option<&OwnedMxcUri>) {
    if let Some(mxc) = uploaded {
        if let Err(e) = state.homeserver.delete_media(mxc).await {
            tracing::warn!(error = %e, %mxc, "deleting the upload of a failed request failed");
        }
    }
}

/// What a create collided with.
pub(crate) enum CreateError {
    /// The organization's default room, or the event's room, exists already.
    Exists,
    Api(ApiError),
}

impl From<ApiError> for CreateError {
    fn from(err: ApiError) -> Self {
        Self::Api(err)
    }
}

impl From<sqlx::Error> for CreateError {
    fn from(err: sqlx::Error) -> Self {
        Self::Api(err.into())
    }
}

/// A creating request's `Idempotency-Key`, scoped to its caller.
pub(crate) struct Idempotency {
    pub caller: String,
    pub key: String,
}

impl Idempotency {
    pub fn from_request(caller: &Caller, key: Option<String>) -> Option<Self> {
        key.map(|key| Self { caller: caller.key(), key })
    }
}

impl RoomDraft {
    /// What the request asked for, so a key reused for another request is told apart.
    fn fingerprint(&self) -> String {
        let avatar = self.avatar.as_ref().map(|a| hex::encode(Sha256::digest(a.bytes())));
        let roles: Vec<_> =
            self.roles.iter().map(|(user, role)| format!("{user}:{}", role.as_str())).collect();
        let described = format!(
            "{}|{}|{:?}|{}|{}|{:?}|{:?}|{:?}",
            self.kind.as_str(),
            self.organization_id,
            self.event_id,
            self.name.as_str(),
            self.automation_enabled,
            self.scheduled_deletion,
            roles,
            avatar
        );
        hex::encode(Sha256::digest(described.as_bytes()))
    }
}

/// The room an earlier request with the same key created, if any.
async fn replay(
    state: &AppState,
    idempotency: &Idempotency,
    draft: &RoomDraft,
) -> ApiResult<Option<ChatroomId>> {
    let mut conn = state.store.pool().acquire().await?;
    let Some(recorded) = idempotency::find(&mut conn, &idempotency.caller, &idempotency.key).await? else {
        return Ok(None);
    };
    if recorded.operation != draft.kind.as_str() || recorded.fingerprint != draft.fingerprint() {
        return Err(ApiError::unprocessable(
            "this Idempotency-Key was used for a different request; use a new key for a new request",
        )
        .with_code("idempotency_key_reused"));
    }
    Ok(Some(recorded.chatroom_id))
}

/// Stores the room, its roles, its sync job and its idempotency key in one transaction.
/// Returns the new room, or the one an earlier request with the same key created.
pub(crate) async fn insert_room(
    state: &AppState,
    draft: RoomDraft,
    idempotency: Option<&Idempotency>,
) -> Result<ChatroomId, CreateError> {
    if let Some(idempotency) = idempotency {
        if let Some(id) = replay(state, idempotency, &draft).await? {
            return Ok(id);
        }
    }
    require_future_deletion(state, draft.scheduled_deletion)?;
    check_power_levels_fit(state, &draft.roles)?;
    check_users_active(state, &draft.roles).await?;
    let avatar_url = match &draft.avatar {
        Some(avatar) => Some(upload_avatar(state, avatar).await?),
        None => None,
    };
    let stored = store_room_with_avatar(state, &draft, avatar_url.as_ref(), idempotency).await;
    if !matches!(stored, Ok(Stored::New(_))) {
        discard_upload(state, avatar_url.as_ref()).await;
    }
    let id = match stored? {
        Stored::New(id) => id,
        Stored::Replayed(id) => return Ok(id),
    };
    tracing::info!(
        chatroom = id,
        kind = draft.kind.as_str(),
        organization = draft.organization_id,
        "chatroom created"
    );
    Ok(id)
}

enum Stored {
    New(ChatroomId),
    /// A concurrent request with the same Idempotency-Key committed this room first.
    Replayed(ChatroomId),
}

async fn store_room_with_avatar(
    state: &AppState,
    draft: &RoomDraft,
    avatar_url: Option<&OwnedMxcUri>,
    idempotency: Option<&Idempotency>,
) -> Result<Stored, CreateError> {
    let now = state.clock.now_ms();
    let alias = format!("chatrooms_{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    let new_room = NewChatroom {
        kind: draft.kind,
        organization_id: draft.organization_id,
        event_id: draft.event_id,
        name: draft.name.as_str(),
        avatar_url,
        automation_enabled: draft.automation_enabled,
        scheduled_deletion: draft.scheduled_deletion,
        matrix_alias: &alias,
    };
    let mut tx = state.store.begin().await?;
    let id = match store_new_room(&mut tx, &new_room, draft, idempotency, now).await {
        Ok(id) => id,
        Err(e) => {
            drop(tx);
            if !store::is_unique_violation(&e) {
                return Err(e.into());
            }
            // A concurrent request with the same key committed first: answer with its room
            // (and keep only its avatar).
            if let Some(idempotency) = idempotency {
                if let Some(id) = replay(state, idempotency, draft).await? {
                    return Ok(Stored::Replayed(id));
                }
            }
            return Err(CreateError::Exists);
        }
    };
    tx.commit().await?;
    Ok(Stored::New(id))
}

/// A validated change to an existing room; `None` leaves a field as it is.
pub(crate) struct RoomUpdate {
    pub name: Option<RoomName>,
    /// `Some(None)` removes the avatar.
    pub avatar: Option<Option<Avatar>>,
    pub automation_enabled: Option<bool>,
    /// `Some(None)` cancels a scheduled deletion.
    pub scheduled_deletion: Option<Option<i64>>,
    /// Replaces all three role lists.
    pub roles: Option<RoleLists>,
}

/// Stores the change with its sync job in one transaction (after uploading a new avatar), then
/// lets the homeserver catch up.
pub(crate) async fn update_room(
    state: &AppState,
    id: ChatroomId,
    update: RoomUpdate,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    require_future_deletion(state, update.scheduled_deletion.flatten())?;
    if let Some(roles) = &update.roles {
        check_power_levels_fit(state, roles)?;
        check_users_active(state, roles).await?;
    }
    let avatar_url = match &update.avatar {
        Some(Some(avatar)) => Some(Some(upload_avatar(state, avatar).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let stored = store_update(state, id, &update, avatar_url.as_ref().map(Option::as_ref)).await;
    if stored.is_err() {
        discard_upload(state, avatar_url.as_ref().and_then(Option::as_ref)).await;
    }
    stored?;
    respond_after_sync(state, id, StatusCode::OK).await
}

async fn store_update(
    state: &AppState,
    id: ChatroomId,
    update: &RoomUpdate,
    avatar_url: Option<Option<&OwnedMxcUri>>,
) -> ApiResult<()> {
    let changes = ChatroomChanges {
        name: update.name.as_ref().map(RoomName::as_str),
        avatar_url,
        automation_enabled: update.automation_enabled,
        scheduled_deletion: update.scheduled_deletion,
    };
    let now = state.clock.now_ms();
    let mut tx = state.store.begin().await?;
    // Deleted since the handler looked it up: nothing is written.
    if !chatrooms::update(&mut tx, id, &changes, now).await? {
        return Err(gone(id));
    }
    if let Some(roles) = &update.roles {
        chatrooms::replace_roles(&mut tx, id, roles).await?;
    }
    jobs::enqueue(&mut tx, id, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) fn gone(id: ChatroomId) -> ApiError {
    ApiError::not_found(format!("chatroom {id} does not exist"))
}

/// The inserts of a new room: record, roles, sync job and idempotency key.
async fn store_new_room(
    tx: &mut store::Tx,
    new_room: &NewChatroom<'_>,
    draft: &RoomDraft,
    idempotency: Option<&Idempotency>,
    now: i64,
) -> sqlx::Result<ChatroomId> {
    let id = chatrooms::insert(tx, new_room, now).await?;
    chatrooms::put_roles(tx, id, &draft.roles).await?;
    jobs::enqueue(tx, id, now).await?;
    if let Some(idempotency) = idempotency {
        let recorded = idempotency::Recorded {
            operation: draft.kind.as_str().to_owned(),
            fingerprint: draft.fingerprint(),
            chatroom_id: id,
        };
        idempotency::insert(tx, &idempotency.caller, &idempotency.key, &recorded, now).await?;
    }
    Ok(id)
}

/// Queues a fresh sync of the room (also when the database thinks it is in sync) and answers
/// once the homeserver caught up, or with `202`.
pub(crate) async fn resync(
    state: &AppState,
    id: ChatroomId,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let mut conn = state.store.pool().acquire().await?;
    jobs::enqueue(&mut conn, id, state.clock.now_ms()).await?;
    drop(conn);
    respond_after_sync(state, id, StatusCode::OK).await
}

pub(crate) async fn load_room(state: &AppState, id: ChatroomId) -> ApiResult<Chatroom> {
    let mut conn = state.store.pool().acquire().await?;
    chatrooms::find(&mut conn, id).await?.ok_or_else(|| gone(id))
}

/// After a committed change: let the homeserver catch up (for a bounded time), then answer
/// with the room. `202 Accepted` says the homeserver has not caught up yet.
pub(crate) async fn respond_after_sync(
    state: &AppState,
    id: ChatroomId,
    success: StatusCode,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    state.reconciler.converge_within_request(vec![id]).await;
    let room = load_room(state, id).await?;
    let status = if room.sync.pending { StatusCode::ACCEPTED } else { success };
    Ok((status, Json(room.into())))
}

/// Marks the room deleted with its sync job, then lets the purge run.
/// `204` once the homeserver purged it, `202` while the purge is still pending.
pub(crate) async fn delete_room(state: &AppState, room: &Chatroom) -> ApiResult<StatusCode> {
    let now = state.clock.now_ms();
    let mut tx = state.store.begin().await?;
    if !chatrooms::mark_deleted(&mut tx, room.id, now).await? {
        return Err(gone(room.id));
    }
    jobs::enqueue(&mut tx, room.id, now).await?;
    tx.commit().await?;
    tracing::info!(chatroom = room.id, "chatroom deletion requested");
    state.reconciler.converge_within_request(vec![room.id]).await;
    let mut conn = state.store.pool().acquire().await?;
    let remaining = chatrooms::find_including_deleted(&mut conn, room.id).await?;
    Ok(if remaining.is_some() { StatusCode::ACCEPTED } else { StatusCode::NO_CONTENT })
}

// ---------------------------------------------------------------------------------------------
// Handlers.

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateChatroomRequest {
    #[serde(rename = "organizationID")]
    #[schema(minimum = 1)]
    pub organization_id: i64,
    /// 1 to 255 characters after trimming, at least one of them visible.
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// App user ids. The three lists of a request name at most 1,000 users together, and a
    /// room holds at most 10,000.
    #[serde(default)]
    #[schema(value_type = Vec<PositiveId>, inline, max_items = 1000)]
    pub admins: Vec<i64>,
    #[serde(default)]
    #[schema(value_type = Vec<PositiveId>, inline, max_items = 1000)]
    pub moderators: Vec<i64>,
    #[serde(default)]
    #[schema(value_type = Vec<PositiveId>, inline, max_items = 1000)]
    pub assigned_users: Vec<i64>,
    #[serde(default)]
    pub automation_enabled: bool,
    /// Image bytes (PNG, JPEG, GIF or WebP, read from the image's header; at most 4096×4096
    /// pixels and `CHATROOMS_AVATAR_MAX_BYTES`, 1 MiB by default) as an array of integers, or a
    /// base64 string.
    #[schema(value_type = Option<Vec<Byte>>, inline)]
    pub avatar: Option<AvatarInput>,
    /// RFC 3339 time in the future, or null.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_deletion: serde_json::Value,
}

/// Creates a custom chatroom for an organization.
///
/// The room is created on the homeserver by the bot, with the name, avatar and role lists
/// given; `201` when the homeserver has it, `202` when it is still being created (retried).
/// With an `Idempotency-Key` header, a repeated request returns the room the first one created
/// (keys are kept 24 hours; the same key for a different request is a `422`).
#[utoipa::path(
    post, path = "/chatrooms", tag = "chatrooms",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request safe: 1 to 255 visible ASCII characters", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$")),
    request_body = CreateChatroomRequest,
    responses(
        (status = 201, description = "Created on the homeserver", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet (syncStatus tells)", body = ChatroomResponse),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field (organizationID, name, avatar, role lists or their limits, scheduledDeletion, wrong types, not an object), or an Idempotency-Key reused for another request", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable for the avatar upload; nothing was stored", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn create_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateChatroomRequest>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let organization_id = parse_organization(body.organization_id)?;
    caller.require_manage(organization_id)?;
    let draft = RoomDraft {
        kind: RoomKind::Custom,
        organization_id,
        event_id: None,
        name: parse_name(&body.name)?,
        roles: parse_roles(&body.admins, &body.moderators, &body.assigned_users)?,
        scheduled_deletion: parse_deletion(&body.scheduled_deletion)?,
        avatar: parse_avatar(&state, body.avatar)?,
        automation_enabled: body.automation_enabled,
    };
    let id = match insert_room(&state, draft, Idempotency::from_request(&caller, key).as_ref()).await {
        Ok(id) => id,
        Err(CreateError::Api(e)) => return Err(e),
        Err(CreateError::Exists) => {
            return Err(ApiError::internal("custom room collided with a unique index"))
        }
    };
    respond_after_sync(&state, id, StatusCode::CREATED).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListChatroomsQuery {
    /// Id of the organization.
    #[param(required = true, value_type = Option<i64>, minimum = 1)]
    pub organization_id: Option<Id>,
    /// Return all entries, ignoring `limit` and `offset`.
    pub all: Option<bool>,
    /// Page size, 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<i64>,
    /// Rooms to skip, 0 or more (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A page of chatrooms.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatroomPage {
    pub entries: Vec<ChatroomResponse>,
    /// How many chatrooms the caller may see in the organization, across all pages.
    pub total: i64,
}

/// Returns a paginated list of an organization's chatrooms, in creation order.
///
/// Organization admins and the backend see every room; other users see the rooms they hold a
/// role in.
#[utoipa::path(
    get, path = "/chatrooms", tag = "chatrooms",
    params(ListChatroomsQuery),
    responses(
        (status = 200, description = "The page", body = ChatroomPage),
        (status = 400, description = "Missing organization_id or not a positive integer, limit outside 1-50, negative offset, wrong types", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn list_chatrooms(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListChatroomsQuery>,
) -> ApiResult<Json<ChatroomPage>> {
    let Id(organization_id) =
        query.organization_id.ok_or_else(|| ApiError::bad_request("organization_id is required"))?;
    let limit = query.limit.unwrap_or(10);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and 50, not {limit}")));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request(format!("offset must not be negative, not {offset}")));
    }
    let member = match &caller {
        Caller::User(user) if !caller.may_manage(organization_id) => Some(user.id),
        _ => None,
    };
    let page = if query.all.unwrap_or(false) { None } else { Some((limit, offset)) };
    let mut conn = state.store.pool().acquire().await?;
    let (rooms, total) = chatrooms::list(&mut conn, &ListQuery { organization_id, member, page }).await?;
    Ok(Json(ChatroomPage { entries: rooms.into_iter().map(Into::into).collect(), total }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ByEventQuery {
    /// Id of the organization the chatroom belongs to.
    #[param(required = true, value_type = Option<i64>, minimum = 1)]
    pub organization_id: Option<Id>,
    /// Id of the event the chatroom belongs to.
    #[param(required = true, value_type = Option<i64>, minimum = 1)]
    pub event_id: Option<Id>,
}

/// Returns the chatroom of an event in an organization.
#[utoipa::path(
    get, path = "/chatrooms/by-event", tag = "chatrooms",
    params(ByEventQuery),
    responses(
        (status = 200, description = "The event's chatroom", body = ChatroomResponse),
        (status = 400, description = "Missing organization_id or event_id, or not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller may not see this room", body = ErrorBody),
        (status = 404, description = "The event has no chatroom", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn chatroom_by_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ByEventQuery>,
) -> ApiResult<Json<ChatroomResponse>> {
    let Id(org) =
        query.organization_id.ok_or_else(|| ApiError::bad_request("organization_id is required"))?;
    let Id(event) = query.event_id.ok_or_else(|| ApiError::bad_request("event_id is required"))?;
    let mut conn = state.store.pool().acquire().await?;
    let room = chatrooms::find_for_event(&mut conn, org, event)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event {event} of organization {org} has no chatroom")))?;
    caller.require_read(&room)?;
    Ok(Json(room.into()))
}

/// Returns a chatroom.
#[utoipa::path(
    get, path = "/chatrooms/{roomID}", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 200, description = "The chatroom", body = ChatroomResponse),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller may not see this room", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn get_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<Json<ChatroomResponse>> {
    let room = load_room(&state, id).await?;
    caller.require_read(&room)?;
    Ok(Json(room.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateChatroomRequest {
    pub automation_enabled: Option<bool>,
    /// New name, 1 to 255 characters after trimming, at least one of them visible.
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// New avatar bytes (as for creating a room); null or an empty array removes the avatar.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Byte>>, inline)]
    pub avatar: Option<Option<AvatarInput>>,
    /// RFC 3339 time in the future; null cancels a scheduled deletion.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_deletion: Option<serde_json::Value>,
}

/// Updates a chatroom: `automationEnabled`, and (our extension) `name`, `avatar` and
/// `scheduledDeletion`. Absent fields stay as they are.
#[utoipa::path(
    patch, path = "/chatrooms/{roomID}", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    request_body = UpdateChatroomRequest,
    responses(
        (status = 200, description = "Updated, homeserver in sync", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = ChatroomResponse),
        (status = 400, description = "Malformed JSON, or roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field, or the body is not a JSON object", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable for the avatar upload; nothing changed", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn update_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    ApiJson(body): ApiJson<UpdateChatroomRequest>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let room = load_room(&state, id).await?;
    caller.require_manage(room.organization_id)?;
    let update = RoomUpdate {
        name: body.name.as_deref().map(parse_name).transpose()?,
        scheduled_deletion: body.scheduled_deletion.as_ref().map(parse_deletion).transpose()?,
        avatar: body.avatar.map(|input| parse_avatar(&state, input)).transpose()?,
        automation_enabled: body.automation_enabled,
        roles: None,
    };
    update_room(&state, id, update).await
}

/// Deletes a custom chatroom: the Matrix room is shut down and purged, its media deleted, and
/// the record removed. Default and event rooms have their own delete paths.
#[utoipa::path(
    delete, path = "/chatrooms/{roomID}", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 204, description = "Deleted and purged from the homeserver"),
        (status = 202, description = "Deleted here; the homeserver purge is pending and retried"),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 409, description = "Not a custom chatroom (code `not_custom_room`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn delete_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<StatusCode> {
    let room = load_room(&state, id).await?;
    caller.require_manage(room.organization_id)?;
    match room.kind {
        RoomKind::Custom => delete_room(&state, &room).await,
        RoomKind::Default => Err(ApiError::conflict(
            "not_custom_room",
            format!(
                "chatroom {id} is organization {}'s default room; remove it with \
                 DELETE /organizations/{}/chatrooms/default",
                room.organization_id, room.organization_id
            ),
        )),
        RoomKind::Event => Err(ApiError::conflict(
            "not_custom_room",
            format!(
                "chatroom {id} belongs to event {}; remove it with DELETE /organizations/{}/events/{}/chatroom",
                room.event_id.unwrap_or_default(),
                room.organization_id,
                room.event_id.unwrap_or_default()
            ),
        )),
    }
}

/// Forces a fresh attempt to bring the homeserver in line with this room, also after the sync
/// stopped retrying (`syncStatus: failed`).
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/sync", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 200, description = "The homeserver matches the room", body = ChatroomResponse),
        (status = 202, description = "Still not in sync; retried (syncStatus and syncError tell)", body = ChatroomResponse),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn sync_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let room = load_room(&state, id).await?;
    caller.require_manage(room.organization_id)?;
    resync(&state, id).await
}
