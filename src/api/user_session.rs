//! What the mobile app needs to talk to the homeserver as its user: credentials, a login
//! (access and refresh token), and the user's devices.

use axum::{extract::State, http::StatusCode, Json};
use rand::{distributions::Uniform, Rng};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJsonOrEmpty, ApiPath, ApiQuery};
use crate::rooms::{provision_account, ProvisionedAccount};
use crate::{
    auth::Caller,
    domain::Id,
    error::{ApiError, ApiResult, ErrorBody},
    matrix::Device,
    state::AppState,
    store::accounts,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubjectQuery {
    /// With an API token only: the app user to act for. A personal access token always acts
    /// for its own user.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub user_id: Option<Id>,
}

/// The account a `/user/...` request acts for, provisioned on first need.
async fn subject_account(
    state: &AppState,
    caller: &Caller,
    query: &SubjectQuery,
) -> ApiResult<ProvisionedAccount> {
    Ok(provision_account(state, caller.subject(query.user_id.map(|Id(user)| user))?).await?)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialsResponse {
    /// The Matrix user id, usable as the `user` of a password login.
    pub username: String,
    pub password: String,
}

/// Get credentials for Matrix: the caller's Matrix user id and password.
///
/// The password is derived from a server secret and the user id (nothing is stored) and set on
/// the account the first time, and again after the secret is rotated.
#[utoipa::path(
    get, path = "/user/credentials", tag = "user",
    params(SubjectQuery),
    responses(
        (status = 200, description = "Credentials for a password login", body = CredentialsResponse),
        (status = 400, description = "user_id missing with an API token, or not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Another user's credentials, or the user is deactivated", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable; try again", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn get_credentials(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SubjectQuery>,
) -> ApiResult<Json<CredentialsResponse>> {
    let account = subject_account(&state, &caller, &query).await?;
    let password = state.passwords.password_for(&account.matrix_user);
    let key_id = state.passwords.key_id();
    if account.password_key.as_deref() != Some(key_id) {
        state.homeserver.set_password(&account.matrix_user, &password).await?;
        let mut conn = state.store.pool().acquire().await?;
        accounts::set_password_key(&mut conn, account.app_user, key_id).await?;
        tracing::info!(user = account.app_user, "matrix password set from the current credentials secret");
    }
    Ok(Json(CredentialsResponse {
        username: account.matrix_user.to_string(),
        password: password.expose_secret().to_owned(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    /// The device to log in on: 1 to 64 characters of `A-Z a-z 0-9 . _ -`. Reusing a device id
    /// keeps one device; without one, a new device id is generated.
    #[serde(rename = "deviceID")]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub device_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub access_token: String,
    /// Renews the access token at the homeserver's `POST /_matrix/client/v3/refresh`.
    pub refresh_token: Option<String>,
    /// Lifetime of the access token in milliseconds.
    #[serde(rename = "expiresInMS")]
    pub expires_in_ms: Option<u64>,
    #[serde(rename = "deviceID")]
    pub device_id: String,
    #[serde(rename = "userID")]
    pub user_id: String,
    /// The homeserver's `/.well-known/matrix/client`: where the client finds the homeserver.
    #[schema(value_type = Object)]
    pub well_known: serde_json::Value,
}

fn valid_device_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn generate_device_id() -> String {
    rand::thread_rng().sample_iter(Uniform::new_inclusive(b'A', b'Z')).take(10).map(char::from).collect()
}

/// Login to Matrix: an access token, a refresh token and what the client needs to find the
/// homeserver, for the caller on the given device.
#[utoipa::path(
    post, path = "/user/login", tag = "user",
    params(SubjectQuery),
    request_body(content = LoginRequest, description = "May be empty"),
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed JSON, or user_id missing with an API token or not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Another user, or the user is deactivated", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "A body that is not JSON (an empty body needs no content type)", body = ErrorBody),
        (status = 422, description = "Invalid deviceID, or the body is not a JSON object", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable; try again", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn login(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SubjectQuery>,
    ApiJsonOrEmpty(request): ApiJsonOrEmpty<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let user = caller.subject(query.user_id.map(|Id(user)| user))?;
    let device_id = match request.device_id {
        Some(id) if valid_device_id(&id) => id,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "deviceID must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            ))
        }
        None => generate_device_id(),
    };
    let matrix_user = provision_account(&state, user).await?.matrix_user;
    let session = state.homeserver.login(&matrix_user, &device_id).await?;
    tracing::info!(user, device = %session.device_id, "logged in");
    Ok(Json(LoginResponse {
        access_token: session.access_token.expose_secret().to_owned(),
        refresh_token: session.refresh_token.map(|t| t.expose_secret().to_owned()),
        expires_in_ms: session.expires_in_ms,
        device_id: session.device_id.to_string(),
        user_id: session.user_id.to_string(),
        well_known: session.well_known,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DevicesResponse {
    pub devices: Vec<Device>,
}

/// Lists the caller's devices.
#[utoipa::path(
    get, path = "/user/devices", tag = "user",
    params(SubjectQuery),
    responses(
        (status = 200, description = "The devices", body = DevicesResponse),
        (status = 400, description = "user_id missing with an API token, or not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Another user's devices, or the user is deactivated", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable; try again", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn list_devices(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SubjectQuery>,
) -> ApiResult<Json<DevicesResponse>> {
    let matrix_user = subject_account(&state, &caller, &query).await?.matrix_user;
    let devices = state.homeserver.devices(&matrix_user).await?;
    Ok(Json(DevicesResponse { devices }))
}

/// Logs one of the caller's devices out: its access and refresh tokens stop working.
#[utoipa::path(
    delete, path = "/user/devices/{deviceID}", tag = "user",
    params(("deviceID" = String, Path, description = "The device"), SubjectQuery),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "user_id missing with an API token, or not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Another user's device, or the user is deactivated", body = ErrorBody),
        (status = 404, description = "The user has no such device", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable; try again", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn logout_device(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(device_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SubjectQuery>,
) -> ApiResult<StatusCode> {
    let matrix_user = subject_account(&state, &caller, &query).await?.matrix_user;
    let devices = state.homeserver.devices(&matrix_user).await?;
    if !devices.iter().any(|d| d.device_id == device_id) {
        return Err(ApiError::not_found(format!("no device {device_id:?}")));
    }
    state.homeserver.delete_devices(&matrix_user, &[device_id]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Logs all of the caller's devices out.
#[utoipa::path(
    delete, path = "/user/devices", tag = "user",
    params(SubjectQuery),
    responses(
        (status = 204, description = "Every device logged out"),
        (status = 400, description = "user_id missing with an API token, or not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Another user's devices, or the user is deactivated", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable; try again", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`; the message names the Matrix errcode); nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn logout_all_devices(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SubjectQuery>,
) -> ApiResult<StatusCode> {
    let matrix_user = subject_account(&state, &caller, &query).await?.matrix_user;
    let devices = state.homeserver.devices(&matrix_user).await?;
    let ids: Vec<String> = devices.into_iter().map(|d| d.device_id).collect();
    if !ids.is_empty() {
        state.homeserver.delete_devices(&matrix_user, &ids).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_checked_and_generated_valid() {
        assert!(valid_device_id("PHONE_1.a-b"));
        assert!(!valid_device_id(""));
        assert!(!valid_device_id(&"A".repeat(65)));
        assert!(!valid_device_id("bad id"));
        assert!(!valid_device_id("ünï"));
        let generated = generate_device_id();
        assert!(valid_device_id(&generated) && generated.len() == 10, "{generated}");
    }
}
