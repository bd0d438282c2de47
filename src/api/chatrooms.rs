//! Chatrooms: create (custom), read, list, update, delete, force a sync.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    extract::{self, ApiJson, ApiPath, ApiQuery, ArchivedParam, IdempotencyKey},
    standing,
};
use crate::{
    auth::Caller,
    domain::{check_id, AvatarInput, Id, Role, RoomKind},
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{self, Idempotency, RoomDraft, RoomError, RoomUpdate},
    state::AppState,
    store::chatrooms::{self, ListQuery},
};
use crate::{
    domain::schema::{Byte, PositiveId},
    rooms::input::{
        parse_avatar, parse_deletion, parse_name, parse_organization, parse_roles, parse_settings,
    },
    rooms::{deleted, written, ChatroomResponse},
};

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
    /// Default false (or the `copyFrom` room's).
    pub automation_enabled: Option<bool>,
    /// Image bytes (PNG, JPEG, GIF or WebP, read from the image's header; at most 4096×4096
    /// pixels and `CHATROOMS_AVATAR_MAX_BYTES`, 1 MiB by default) as an array of integers, or a
    /// base64 string; null or empty for none.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<Vec<Byte>>, inline)]
    pub avatar: Option<Option<AvatarInput>>,
    /// The room's topic (`m.room.topic`), up to 1,000 characters after trimming; null or empty
    /// for none.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub topic: Option<Option<String>>,
    /// Only the room's admins and moderators may post (`events_default` 50 on the homeserver).
    pub read_only: Option<bool>,
    /// At most this many users in the three lists together, 1 to 10,000 (the bot does not
    /// count); null for no limit. Adding users beyond it is a `409` (`room_full`).
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub max_users: Option<Option<i64>>,
    /// Id of a room of the same organization whose avatar, topic, readOnly, maxUsers and
    /// automationEnabled the new room starts with; fields given in this request win.
    #[serde(rename = "copyFrom")]
    #[schema(minimum = 1)]
    pub copy_from: Option<i64>,
    /// RFC 3339 time in the future, or null.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_deletion: serde_json::Value,
    /// End-to-end encrypted (`m.room.encryption`, megolm, from the room's first event), for
    /// good: it cannot be turned off. Membership, roles, bans, mutes and archive work as in any
    /// room; what needs the messages' text (history, search, edits, sending through the API,
    /// truncate, blocklists, message webhooks) answers `409` (`room_encrypted`). Default false.
    #[serde(default)]
    pub encrypted: bool,
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
        (status = 409, description = "The lists would hold more users than the room's maxUsers (`room_full`; the message says how many places are left); nothing changed", body = ErrorBody),
        (status = 422, description = "Invalid field (organizationID, name, avatar, role lists or their limits, scheduledDeletion, topic, maxUsers, a copyFrom room that does not exist or belongs to another organization, wrong types, not an object), or an Idempotency-Key reused for another request", body = ErrorBody),
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
        avatar: body.avatar.map(|input| parse_avatar(&state, input)).transpose()?,
        automation_enabled: body.automation_enabled,
        settings: parse_settings(body.topic, body.read_only, body.max_users)?,
        copy_from: body
            .copy_from
            .map(|id| check_id("copyFrom", id).map_err(ApiError::unprocessable))
            .transpose()?,
        encrypted: body.encrypted,
    };
    match rooms::create(&state, draft, Idempotency::for_caller(caller.key(), key).as_ref()).await {
        Ok(done) => Ok(written(done, StatusCode::CREATED)),
        Err(RoomError::Exists) => Err(ApiError::internal("custom room collided with a unique index")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListChatroomsQuery {
    /// Id of the organization.
    #[param(required = true, value_type = Option<i64>, minimum = 1)]
    pub organization_id: Option<Id>,
    /// Return all entries, ignoring `limit` and `offset`: at most 1,000 (`MAX_LIST_ALL`); an
    /// organization with more answers `400` (`too_many_to_list`), to be paged instead.
    pub all: Option<bool>,
    /// Page size, 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<i64>,
    /// Rooms to skip, 0 or more (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// `false` (default): rooms in use; `true`: archived rooms only; `any`: both.
    #[param(inline)]
    pub archived: Option<ArchivedParam>,
}

/// The most rooms `all=true` lists: a bound on one answer's size and memory.
pub const MAX_LIST_ALL: i64 = 1_000;

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
        (status = 400, description = "Missing organization_id or not a positive integer, limit outside 1-50, negative offset, archived not true, false or any, wrong types (`invalid_request`); `all=true` for more than 1,000 rooms (`too_many_to_list`)", body = ErrorBody),
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
    let page = extract::page(query.limit, query.offset, 10, 50)?;
    let member = match &caller {
        Caller::User(user) if !caller.may_manage(organization_id) => Some(user.id),
        _ => None,
    };
    let all = query.all.unwrap_or(false);
    // One more than `all` may list: enough to tell that there are too many.
    let page = if all { (MAX_LIST_ALL + 1, 0) } else { page };
    let mut conn = state.store.reader().acquire().await?;
    let (rooms, total) = chatrooms::list(
        &mut conn,
        &ListQuery { organization_id, member, archived: query.archived.unwrap_or_default().into(), page },
    )
    .await?;
    if all && total > MAX_LIST_ALL {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "too_many_to_list",
            format!(
                "organization {organization_id} has {total} chatrooms; all=true lists at most \
                 {MAX_LIST_ALL}: page through them with limit and offset"
            ),
        ));
    }
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
    let mut conn = state.store.reader().acquire().await?;
    let room = chatrooms::find_for_event(&mut conn, org, event)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event {event} of organization {org} has no chatroom")))?;
    caller.require_read(room.id, room.organization_id, &room.roles)?;
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
    let room = rooms::load(&state, id).await?;
    caller.require_read(room.id, room.organization_id, &room.roles)?;
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
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<Vec<Byte>>, inline)]
    pub avatar: Option<Option<AvatarInput>>,
    /// RFC 3339 time in the future; null cancels a scheduled deletion.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_deletion: Option<Option<serde_json::Value>>,
    /// The room's topic (`m.room.topic`), up to 1,000 characters after trimming; null or empty
    /// for none.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub topic: Option<Option<String>>,
    /// Only the room's admins and moderators may post (`events_default` 50 on the homeserver).
    pub read_only: Option<bool>,
    /// At most this many users in the three lists together, 1 to 10,000 (the bot does not
    /// count); null for no limit. Adding users beyond it is a `409` (`room_full`).
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub max_users: Option<Option<i64>>,
    /// Whether the room is end-to-end encrypted: chosen at creation, so only the room's own
    /// value is accepted (another is a `409`, `encryption_fixed`).
    pub encrypted: Option<bool>,
}

/// Updates a chatroom: `automationEnabled`, and (our extension) `name`, `avatar`,
/// `scheduledDeletion`, `topic`, `readOnly` and `maxUsers`. Absent fields stay as they are; a
/// `maxUsers` below the users the room holds is a `409` (`room_full`). The backend and
/// organization admins change anything; the room's admins and moderators may send `readOnly`
/// alone.
#[utoipa::path(
    patch, path = "/chatrooms/{roomID}", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    request_body = UpdateChatroomRequest,
    responses(
        (status = 200, description = "Updated, homeserver in sync", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = ChatroomResponse),
        (status = 400, description = "Malformed JSON, or roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization (the room's admins and moderators may send `readOnly` alone)", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 409, description = "maxUsers below the users the room holds (`room_full`), or an `encrypted` other than the room's (`encryption_fixed`); nothing changed", body = ErrorBody),
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
    let room = rooms::load(&state, id).await?;
    // The room's own admins and moderators may make it read-only or open it again.
    let read_only_alone = body.read_only.is_some()
        && body.automation_enabled.is_none()
        && body.name.is_none()
        && body.avatar.is_none()
        && body.scheduled_deletion.is_none()
        && body.topic.is_none()
        && body.max_users.is_none()
        && body.encrypted.is_none();
    if read_only_alone && !caller.may_manage(room.organization_id) {
        standing::moderation_rank(&state, &caller, &room).await?;
    } else {
        caller.require_manage(room.organization_id)?;
    }
    let update = RoomUpdate {
        name: body.name.as_deref().map(parse_name).transpose()?,
        scheduled_deletion: body
            .scheduled_deletion
            .map(|at| parse_deletion(&at.unwrap_or_default()))
            .transpose()?,
        avatar: body.avatar.map(|input| parse_avatar(&state, input)).transpose()?,
        automation_enabled: body.automation_enabled,
        settings: parse_settings(body.topic, body.read_only, body.max_users)?,
        roles: None,
        encrypted: body.encrypted,
    };
    Ok(written(rooms::update(&state, id, update).await?, StatusCode::OK))
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
    let room = rooms::load(&state, id).await?;
    caller.require_manage(room.organization_id)?;
    match room.kind {
        RoomKind::Custom => Ok(deleted(rooms::delete(&state, &room).await?)),
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
    let room = rooms::load(&state, id).await?;
    caller.require_manage(room.organization_id)?;
    Ok(written(rooms::resync(&state, id).await?, StatusCode::OK))
}

/// Archives a chatroom: members keep it and its history, nobody but the service posts.
///
/// Every message and state change then takes a level above the room's admins (in rooms of
/// version 12 and later; before that the admins keep posting). Role lists, bans and mutes still
/// work; sending through the API answers `409` (`room_archived`). Archiving an archived room
/// changes nothing. For the backend, organization admins and the room's admins.
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/archive", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 200, description = "Archived on the homeserver", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet (syncStatus tells)", body = ChatroomResponse),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend, an organization admin or one of the room's admins", body = ErrorBody),
        (status = 404, description = "No such chatroom, or it is being deleted", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn archive_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    set_archived(state, caller, id, true).await
}

/// Unarchives a chatroom: the levels its settings imply come back (read-only, mutes).
///
/// Unarchiving a room in use changes nothing. For the backend, organization admins and the
/// room's admins.
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/unarchive", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 200, description = "In use again on the homeserver", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet (syncStatus tells)", body = ChatroomResponse),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend, an organization admin or one of the room's admins", body = ErrorBody),
        (status = 404, description = "No such chatroom, or it is being deleted", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn unarchive_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    set_archived(state, caller, id, false).await
}

async fn set_archived(
    state: AppState,
    caller: Caller,
    id: i64,
    archived: bool,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let room = rooms::load(&state, id).await?;
    if !caller.may_manage(room.organization_id) {
        let rank = standing::moderation_rank(&state, &caller, &room).await?;
        if rank < Role::rank(Some(Role::Admin)) {
            return Err(ApiError::forbidden(format!("only the admins of chatroom {id} may archive it")));
        }
    }
    Ok(written(rooms::set_archived(&state, id, archived).await?, StatusCode::OK))
}
