//! A room's role lists: add users, remove a user, and claim (join a room one holds a role in).

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{
    auth::Caller,
    domain::Id,
    error::{ApiResult, ErrorBody},
    rooms,
    state::AppState,
};
use crate::{
    domain::schema::PositiveId,
    rooms::input::parse_roles,
    rooms::{written, ChatroomResponse},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddUsersRequest {
    /// App user ids. The three lists of a request name at most 1,000 users together, and the
    /// room holds at most 10,000 afterwards.
    #[serde(default)]
    #[schema(value_type = Vec<PositiveId>, inline, max_items = 1000)]
    pub admins: Vec<i64>,
    #[serde(default)]
    #[schema(value_type = Vec<PositiveId>, inline, max_items = 1000)]
    pub moderators: Vec<i64>,
    #[serde(default)]
    #[schema(value_type = Vec<PositiveId>, inline, max_items = 1000)]
    pub assigned_users: Vec<i64>,
}

/// Adds users to a chatroom's admin, moderator and assigned-user lists.
///
/// A user holds one role per room: adding a user to a list moves them there from another.
/// Each listed user gets a Matrix account if needed, is joined to the room, and gets the
/// role's power level (admin 100, moderator 50, assigned user 0).
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/users", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    request_body = AddUsersRequest,
    responses(
        (status = 200, description = "Added, homeserver in sync", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = ChatroomResponse),
        (status = 400, description = "Malformed JSON, or roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 409, description = "The lists would hold more users than the room's maxUsers (`room_full`; the message says how many places are left); nothing changed", body = ErrorBody),
        (status = 422, description = "A user in two lists, an id below 1, more than 1,000 users in the request or 10,000 in the room, more admins and moderators than one power-levels event holds, or the body is not a JSON object", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn add_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    ApiJson(body): ApiJson<AddUsersRequest>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let room = rooms::load(&state, id).await?;
    caller.require_manage(room.organization_id)?;
    let added = parse_roles(&body.admins, &body.moderators, &body.assigned_users)?;
    Ok(written(rooms::add_members(&state, id, added).await?, StatusCode::OK))
}

/// Removes a user from the chatroom's lists: they are kicked and lose their power level.
#[utoipa::path(
    delete, path = "/chatrooms/{roomID}/users/{userID}", tag = "chatrooms",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("userID" = i64, Path, description = "Id of the app user", minimum = 1),
    ),
    responses(
        (status = 200, description = "Removed, homeserver in sync", body = ChatroomResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = ChatroomResponse),
        (status = 400, description = "roomID or userID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 404, description = "No such chatroom, or the user holds no role in it", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn remove_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, user)): ApiPath<(Id, Id)>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let (Id(id), Id(user)) = (id, user);
    let room = rooms::load(&state, id).await?;
    caller.require_manage(room.organization_id)?;
    Ok(written(rooms::remove_member(&state, id, user).await?, StatusCode::OK))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClaimQuery {
    /// With an API token only: the app user to claim the room for. A personal access token
    /// always claims for its own user.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub user_id: Option<Id>,
}

/// Claims a chatroom for the user: makes sure their Matrix account exists and that they are
/// joined with their role's power level. Idempotent; only for users holding a role in the room.
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/claim", tag = "chatrooms",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1), ClaimQuery),
    responses(
        (status = 200, description = "The user is joined with their power level", body = ChatroomResponse),
        (status = 202, description = "Accepted; the homeserver has not caught up yet", body = ChatroomResponse),
        (status = 400, description = "roomID or user_id is not a positive integer, or user_id is missing with an API token", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The user holds no role in the room", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn claim_chatroom(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    ApiQuery(query): ApiQuery<ClaimQuery>,
) -> ApiResult<(StatusCode, Json<ChatroomResponse>)> {
    let user = caller.subject(query.user_id.map(|Id(user)| user))?;
    Ok(written(rooms::claim(&state, id, user).await?, StatusCode::OK))
}
