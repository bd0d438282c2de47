//! An organization's Matrix space: its name and avatar.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, ApiPath};
use crate::{
    auth::Caller,
    domain::{schema::Byte, AvatarInput, Id},
    error::{ApiResult, ErrorBody},
    rooms::{
        input::{parse_avatar, parse_name},
        organizations::{self as use_cases},
        SyncStatus,
    },
    state::AppState,
    store::organizations::Organization,
};

/// The organization's name and avatar, as its space shows them. `PUT` sets both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutOrganizationRequest {
    /// 1 to 255 characters after trimming, at least one of them visible.
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// Image bytes (array of integers or base64, as for rooms); absent, null or empty for none.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Byte>>, inline)]
    pub avatar: Option<AvatarInput>,
}

/// An organization and its Matrix space.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationResponse {
    #[serde(rename = "organizationID")]
    pub organization_id: i64,
    /// As the backend set it; null until then.
    pub name: Option<String>,
    /// What the space is called: `name`, or `Organization <id>` until it is set.
    pub space_name: String,
    #[serde(rename = "avatarURL")]
    pub avatar_url: Option<String>,
    /// The space (`m.space`) whose children are the organization's rooms; null until the
    /// organization's first room is on the homeserver. Kept when its last room is deleted.
    #[serde(rename = "matrixSpaceID")]
    pub matrix_space_id: Option<String>,
    pub sync_status: SyncStatus,
    pub sync_error: Option<String>,
}

impl From<Organization> for OrganizationResponse {
    fn from(org: Organization) -> Self {
        let sync_status = match (org.sync_pending, org.sync_failed) {
            (false, _) => SyncStatus::Synced,
            (true, true) => SyncStatus::Failed,
            (true, false) => SyncStatus::Pending,
        };
        Self {
            organization_id: org.id,
            space_name: org.space_name(),
            name: org.name,
            avatar_url: org.avatar_url.map(|u| u.to_string()),
            matrix_space_id: org.matrix_space_id.map(|id| id.to_string()),
            sync_status,
            sync_error: org.sync_error,
        }
    }
}

/// An organization and its Matrix space.
#[utoipa::path(
    get, path = "/organizations/{organizationID}", tag = "organizations",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1)),
    responses(
        (status = 200, description = "The organization (its defaults when never set)", body = OrganizationResponse),
        (status = 400, description = "organizationID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn get_organization(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(org)): ApiPath<Id>,
) -> ApiResult<Json<OrganizationResponse>> {
    caller.require_manage(org)?;
    Ok(Json(use_cases::organization(&state, org).await?.into()))
}

/// Sets an organization's name and avatar, which its Matrix space shows.
#[utoipa::path(
    put, path = "/organizations/{organizationID}", tag = "organizations",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1)),
    request_body = PutOrganizationRequest,
    responses(
        (status = 200, description = "Set; the space (if any yet) is in sync", body = OrganizationResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = OrganizationResponse),
        (status = 400, description = "Malformed JSON, or organizationID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "An empty or overlong name, an avatar that is not an image or too big, wrong types", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable for the avatar upload; nothing changed", body = ErrorBody),
        (status = 502, description = "The homeserver refused the upload; nothing changed", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn put_organization(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(org)): ApiPath<Id>,
    ApiJson(body): ApiJson<PutOrganizationRequest>,
) -> ApiResult<(StatusCode, Json<OrganizationResponse>)> {
    caller.require_manage(org)?;
    let name = parse_name(&body.name)?;
    let avatar = parse_avatar(&state, body.avatar)?;
    let (organization, synced) = use_cases::put_organization(&state, org, name, avatar).await?;
    let status = if synced { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(organization.into())))
}
