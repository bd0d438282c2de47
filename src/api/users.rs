//! App users as the backend manages them: profile and deactivation.

use axum::{extract::State, http::StatusCode, Json};
use ruma::OwnedMxcUri;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath};
use crate::{
    auth::Caller,
    domain::Id,
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{self, discard_upload, upload_avatar},
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
