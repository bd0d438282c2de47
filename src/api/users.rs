//! App users: their profile and deactivation (the backend), and the rooms a user is in.

use axum::{extract::State, http::StatusCode, Json};
use ruma::OwnedMxcUri;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{self, ApiJson, ApiPath, ApiQuery, ArchivedParam};
use crate::{
    auth::Caller,
    domain::{Id, Role},
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{self, discard_upload, upload_avatar, ChatroomResponse, RoleSource, UserRoom},
    state::AppState,
};
use crate::{domain::schema::Byte, rooms::input::parse_avatar, rooms::provision_account};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// Display name on the homeserver (1 to 256 characters); null removes it.
    #[serde(default, with = "::serde_with::rust::double_option")]
    pub display_name: Option<Option<String>>,
    /// Avatar bytes (array of integers or base64; PNG, JPEG, GIF or WebP, as for rooms); null
    /// removes it.
    #[serde(default, with = "::serde_with::rust::double_option")]
    #[schema(value_type = Option<Vec<Byte>>, inline)]
    pub avatar: Option<Option<crate::domain::AvatarInput>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserProfileResponse {
    /// The Matrix user id.
    #[serde(rename = "userID")]
    pub user_id: String,
    /// What was set by this request (absent fields were left as they are).
    pub display_name: Option<String>,
    #[serde(rename = "avatarURL")]
    pub avatar_url: Option<String>,
}

/// Sets an app user's Matrix display name and avatar (creating the account if needed).
#[utoipa::path(
    put, path = "/users/{userID}", tag = "users",
    params(("userID" = i64, Path, description = "Id of the app user", minimum = 1)),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The homeserver profile was updated", body = UserProfileResponse),
        (status = 400, description = "Malformed JSON, or userID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend, or the user is deactivated", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Invalid display name or avatar, or the body is not a JSON object", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable; try again", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(user)): ApiPath<Id>,
    ApiJson(body): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<UserProfileResponse>> {
    caller.require_backend()?;
    let display_name = match &body.display_name {
        Some(Some(name)) => {
            let name = name.trim();
            let chars = name.chars().count();
            if chars == 0 || chars > 256 || name.chars().any(char::is_control) {
                return Err(ApiError::unprocessable(
                    "displayName must be 1 to 256 characters, no control characters",
                ));
            }
            Some(Some(name.to_owned()))
        }
        Some(None) => Some(None),
        None => None,
    };
    let avatar = body.avatar.map(|input| parse_avatar(&state, input)).transpose()?;
    let matrix_user = provision_account(&state, user).await?.matrix_user;
    // The upload first: when it fails, nothing of the profile changed.
    let avatar_url: Option<Option<OwnedMxcUri>> = match &avatar {
        Some(Some(avatar)) => Some(Some(upload_avatar(&state, avatar).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let hs = &state.homeserver;
    let applied = async {
        if let Some(name) = &display_name {
            hs.set_display_name(&matrix_user, name.as_deref()).await?;
        }
        if let Some(url) = &avatar_url {
            hs.set_avatar_url(&matrix_user, url.as_ref()).await?;
        }
        Ok::<_, crate::matrix::HomeserverError>(())
    }
    .await;
    if let Err(e) = applied {
        discard_upload(&state, avatar_url.as_ref().and_then(Option::as_ref)).await;
        return Err(e.into());
    }
    Ok(Json(UserProfileResponse {
        user_id: matrix_user.to_string(),
        display_name: display_name.flatten(),
        avatar_url: avatar_url.flatten().map(|u| u.to_string()),
    }))
}

/// Deactivates an app user: the Matrix account is deactivated (it leaves every room and can no
/// longer log in), and the user is removed from every room's role lists.
#[utoipa::path(
    delete, path = "/users/{userID}", tag = "users",
    params(("userID" = i64, Path, description = "Id of the app user", minimum = 1)),
    responses(
        (status = 204, description = "Deactivated; every affected room is in sync"),
        (status = 202, description = "Deactivated; some rooms are still converging"),
        (status = 400, description = "userID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable; nothing changed", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn deactivate_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(user)): ApiPath<Id>,
) -> ApiResult<StatusCode> {
    caller.require_backend()?;
    let all_synced = rooms::deactivate_user(&state, user).await?;
    Ok(if all_synced { StatusCode::NO_CONTENT } else { StatusCode::ACCEPTED })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserChatroomsQuery {
    /// Only the rooms of this organization.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub organization_id: Option<Id>,
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

/// A user's role in a room.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomRole {
    Admin,
    Moderator,
    Assigned,
}

/// Where a user's role comes from: the room's own lists, or the roster an automated room
/// follows.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleOrigin {
    List,
    Roster,
}

/// One of a user's rooms: the room as `GET /chatrooms/{roomID}` returns it, and what the user
/// is there.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserChatroom {
    #[serde(flatten)]
    pub room: ChatroomResponse,
    /// The user's role, or null when only a ban ties them to the room.
    pub role: Option<RoomRole>,
    /// Where the role comes from; null with no role.
    pub role_source: Option<RoleOrigin>,
    /// A ban is in force: the user is kept out of the room on the homeserver.
    pub banned: bool,
}

/// A page of a user's chatrooms.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserChatroomPage {
    pub entries: Vec<UserChatroom>,
    /// How many of the user's chatrooms the caller may see, across all pages.
    pub total: i64,
}

impl From<UserRoom> for UserChatroom {
    fn from(entry: UserRoom) -> Self {
        let role = entry.role.map(|(role, _)| match role {
            Role::Admin => RoomRole::Admin,
            Role::Moderator => RoomRole::Moderator,
            Role::Assigned => RoomRole::Assigned,
        });
        let role_source = entry.role.map(|(_, source)| match source {
            RoleSource::List => RoleOrigin::List,
            RoleSource::Roster => RoleOrigin::Roster,
        });
        Self { room: entry.room.into(), role, role_source, banned: entry.banned }
    }
}

/// Returns a paginated list of the rooms a user is in, in creation order.
///
/// The rooms whose lists name the user, the automated rooms whose roster does, and those the
/// user is banned from (marked, not hidden). An app user may list their own rooms; an
/// organization admin the user's rooms in the organizations they administer; the backend
/// anyone's. A user without rooms gets an empty page.
#[utoipa::path(
    get, path = "/users/{userID}/chatrooms", tag = "users",
    params(("userID" = i64, Path, description = "Id of the app user", minimum = 1), UserChatroomsQuery),
    responses(
        (status = 200, description = "The page", body = UserChatroomPage),
        (status = 400, description = "userID or organization_id not a positive integer, limit outside 1-50, negative offset, archived not true, false or any, wrong types (`invalid_request`)", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Another user's rooms, and the caller administers no organization (or not organization_id)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn list_user_chatrooms(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(user)): ApiPath<Id>,
    ApiQuery(query): ApiQuery<UserChatroomsQuery>,
) -> ApiResult<Json<UserChatroomPage>> {
    let page = extract::page(query.limit, query.offset, 10, 50)?;
    let visible = caller.rooms_scope(user)?;
    let organizations = match (query.organization_id, visible) {
        (None, visible) => visible,
        (Some(Id(org)), None) => Some(vec![org]),
        (Some(Id(org)), Some(_)) => {
            caller.require_manage(org)?;
            Some(vec![org])
        }
    };
    let archived = query.archived.unwrap_or_default().into();
    let (entries, total) =
        rooms::rooms_of_user(&state, user, organizations.as_deref(), archived, page).await?;
    Ok(Json(UserChatroomPage { entries: entries.into_iter().map(Into::into).collect(), total }))
}
