//! The organization's default chatroom: at most one per organization.

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::{
    auth::Caller,
    domain::{Id, OrganizationId, RoleLists, RoomKind},
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{self, Idempotency, RoomDraft, RoomError},
    state::AppState,
    store::chatrooms,
};
use crate::{
    rooms::input::{parse_name, parse_organization},
    rooms::{deleted, written, ChatroomResponse},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateDefaultChatroomRequest {
    #[serde(rename = "organizationID")]
    #[schema(minimum = 1)]
    pub organization_id: i64,
    #[serde(default)]
    pub automation_enabled: bool,
    /// Our extension: the room's name (default `CHATROOMS_DEFAULT_ROOM_NAME`, "General"); 1 to
    /// 255 characters after trimming, at least one of them visible.
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
}

/// Creates the default chatroom of an organization.
///
/// An organization has at most one: a second create answers `409` with code
/// `default_room_exists` and changes nothing; a retry with the first request's
/// `Idempotency-Key` answers with the room it created.
#[utoipa::path(
    post, path = "/chatrooms/default", tag = "chatrooms",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request safe: 1 to 255 visible ASCII characters", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$")),
    request_body = CreateDefaultChatroomRequest,
    responses(
        (status = 201, description = "Created on the homeserver", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = ChatroomResponse),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 409, description = "The organization has a default chatroom already (`default_room_exists`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field (organizationID, name, wrong types, not an object), or an Idempotency-Key reused for another request", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn create_default_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<CreateDefaultChatroomRequest>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let org = parse_organization(body.organization_id)?;
    caller.require_manage(org)?;
    let name = parse_name(body.name.as_deref().unwrap_or(&state.config.default_room_name))?;
    let draft = RoomDraft {
        kind: RoomKind::Default,
        organization_id: org,
        event_id: None,
        name,
        avatar: None,
        automation_enabled: Some(body.automation_enabled),
        scheduled_deletion: None,
        settings: Default::default(),
        copy_from: None,
        roles: RoleLists::default(),
        encrypted: false,
    };
    match rooms::create(&state, draft, Idempotency::for_caller(caller.key(), key).as_ref()).await {
        Ok(done) => Ok(written(done, StatusCode::CREATED)),
        Err(RoomError::Exists) => Err(exists_error(&state, org).await),
        Err(e) => Err(e.into()),
    }
}

async fn exists_error(state: &AppState, org: OrganizationId) -> ApiError {
    let existing = match state.store.reader().acquire().await {
        Ok(mut conn) => chatrooms::find_default(&mut conn, org).await.ok().flatten().map(|room| room.id),
        Err(_) => None,
    };
    let which = existing.map(|id| format!(" (chatroom {id})")).unwrap_or_default();
    ApiError::conflict(
        "default_room_exists",
        format!("organization {org} has a default chatroom already{which}"),
    )
}

/// Removes the default chatroom of an organization (the Matrix room is purged).
#[utoipa::path(
    delete, path = "/organizations/{organizationID}/chatrooms/default", tag = "chatrooms",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1)),
    responses(
        (status = 204, description = "Deleted and purged from the homeserver"),
        (status = 202, description = "Deleted here; the homeserver purge is pending and retried"),
        (status = 400, description = "organizationID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "The organization has no default chatroom", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn remove_default_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(org)): ApiPath<Id>,
) -> ApiResult<StatusCode> {
    caller.require_manage(org)?;
    let room = {
        let mut conn = state.store.pool().acquire().await?;
        chatrooms::find_default(&mut conn, org).await?
    }
    .ok_or_else(|| ApiError::not_found(format!("organization {org} has no default chatroom")))?;
    Ok(deleted(rooms::delete(&state, &room).await?))
}
