//! Event chatrooms: one per organization event, made and updated by an idempotent PUT.

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath};
use crate::{
    auth::Caller,
    domain::{AvatarInput, Id},
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{self, RoomUpdate},
    state::AppState,
    store::chatrooms,
};
use crate::{
    domain::schema::{Byte, PositiveId},
    rooms::input::{parse_avatar, parse_deletion, parse_name, parse_roles, parse_settings},
    rooms::{deleted, written, ChatroomResponse},
};

/// The event room as the backend wants it. Absent fields keep their current value; when any
/// of the three lists is present, the three together replace the room's roles (an absent list
/// counts as empty).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutEventChatroomRequest {
    /// Required when the room does not exist yet; 1 to 255 characters after trimming, at least
    /// one of them visible.
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    pub automation_enabled: Option<bool>,
    /// App user ids. The three lists of a request name at most 1,000 users together, and a
    /// room holds at most 10,000.
    #[schema(value_type = Option<Vec<PositiveId>>, inline, max_items = 1000)]
    pub admins: Option<Vec<i64>>,
    #[schema(value_type = Option<Vec<PositiveId>>, inline, max_items = 1000)]
    pub moderators: Option<Vec<i64>>,
    #[schema(value_type = Option<Vec<PositiveId>>, inline, max_items = 1000)]
    pub assigned_users: Option<Vec<i64>>,
    /// Image bytes (array of integers or base64, as for creating a room); null or empty removes
    /// the avatar.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<Vec<Byte>>, inline)]
    pub avatar: Option<Option<AvatarInput>>,
    /// RFC 3339 time in the future, or null.
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
    /// `true` creates the room end-to-end encrypted (see `POST /chatrooms`); on an existing
    /// room only its own value is accepted (another is a `409`, `encryption_fixed`).
    pub encrypted: Option<bool>,
}

type EventPath = (Id, Id);

/// Creates or updates the chatroom of an event. Idempotent: repeating a request changes nothing.
#[utoipa::path(
    put, path = "/organizations/{organizationID}/events/{eventID}/chatroom", tag = "chatrooms",
    params(
        ("organizationID" = i64, Path, description = "Id of the organization", minimum = 1),
        ("eventID" = i64, Path, description = "Id of the event", minimum = 1),
    ),
    request_body = PutEventChatroomRequest,
    responses(
        (status = 201, description = "Created on the homeserver", body = ChatroomResponse),
        (status = 200, description = "Existed; updated as given and in sync", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = ChatroomResponse),
        (status = 400, description = "Malformed JSON, or organizationID or eventID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 409, description = "The lists would hold more users than the room's maxUsers (`room_full`; the message says how many places are left); nothing changed; or an `encrypted` other than the existing room's (`encryption_fixed`)", body = ErrorBody),
        (status = 422, description = "Invalid field (role lists beyond their limits too), no name for a new room, or the body is not a JSON object", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable for the avatar upload; nothing changed", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn put_event_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, event)): ApiPath<EventPath>,
    ApiJson(body): ApiJson<PutEventChatroomRequest>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let (Id(org), Id(event)) = (org, event);
    caller.require_manage(org)?;
    let name = body.name.as_deref().map(parse_name).transpose()?;
    let lists_given = body.admins.is_some() || body.moderators.is_some() || body.assigned_users.is_some();
    let roles = parse_roles(
        body.admins.as_deref().unwrap_or_default(),
        body.moderators.as_deref().unwrap_or_default(),
        body.assigned_users.as_deref().unwrap_or_default(),
    )?;
    let scheduled_deletion =
        body.scheduled_deletion.map(|at| parse_deletion(&at.unwrap_or_default())).transpose()?;
    let avatar = body.avatar.map(|input| parse_avatar(&state, input)).transpose()?;

    let change = RoomUpdate {
        name,
        roles: lists_given.then_some(roles),
        avatar,
        automation_enabled: body.automation_enabled,
        scheduled_deletion,
        settings: parse_settings(body.topic, body.read_only, body.max_users)?,
        encrypted: body.encrypted,
    };
    let (done, created) = rooms::put_event_room(&state, org, event, change).await?;
    Ok(written(done, if created { StatusCode::CREATED } else { StatusCode::OK }))
}

/// Removes the chatroom of an event (the Matrix room is purged).
#[utoipa::path(
    delete, path = "/organizations/{organizationID}/events/{eventID}/chatroom", tag = "chatrooms",
    params(
        ("organizationID" = i64, Path, description = "Id of the organization", minimum = 1),
        ("eventID" = i64, Path, description = "Id of the event", minimum = 1),
    ),
    responses(
        (status = 204, description = "Deleted and purged from the homeserver"),
        (status = 202, description = "Deleted here; the homeserver purge is pending and retried"),
        (status = 400, description = "organizationID or eventID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "The event has no chatroom", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn delete_event_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, event)): ApiPath<EventPath>,
) -> ApiResult<StatusCode> {
    let (Id(org), Id(event)) = (org, event);
    caller.require_manage(org)?;
    let room = {
        let mut conn = state.store.pool().acquire().await?;
        chatrooms::find_for_event(&mut conn, org, event).await?
    }
    .ok_or_else(|| ApiError::not_found(format!("event {event} of organization {org} has no chatroom")))?;
    Ok(deleted(rooms::delete(&state, &room).await?))
}
