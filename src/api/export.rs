//! Exports as NDJSON: an organization's (its admins and the backend) or everything (the
//! backend), streamed page by page and gzipped when the client accepts it.

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use futures::TryStreamExt;

use super::extract::ApiPath;
use crate::{
    auth::Caller,
    domain::{Id, OrganizationId},
    error::{ApiResult, ErrorBody},
    rooms::{self, ExportLine},
    state::AppState,
};

pub const NDJSON: &str = "application/x-ndjson";

/// Exports an organization: its rooms, roster, event participants and their users' accounts.
///
/// One JSON object per line, each with a `type`: first `export` (the format `version` and
/// `takenAt`), then every `room` (as `GET /chatrooms/{roomID}` answers, with `bans` and
/// `mutes`; archived rooms included), every `organizationMember`, every `eventParticipant`,
/// and the `account` of every user they name. Streamed as it is read (pages of 500 records,
/// not one snapshot); gzipped with `Accept-Encoding: gzip`. A stream cut short by an error
/// ends without its last lines: a complete export ends with the accounts.
#[utoipa::path(
    get, path = "/organizations/{organizationID}/export", tag = "organizations",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1)),
    responses(
        (status = 200, description = "NDJSON, one ExportLine per line", content_type = "application/x-ndjson", body = ExportLine),
        (status = 400, description = "organizationID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend or an admin of the organization", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn export_organization(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(organization)): ApiPath<Id>,
) -> ApiResult<Response> {
    caller.require_manage(organization)?;
    Ok(ndjson(state, Some(organization)))
}

/// Exports every organization: as `GET /organizations/{organizationID}/export`, for all of
/// them, with every account. For the backend.
#[utoipa::path(
    get, path = "/export", tag = "organizations",
    responses(
        (status = 200, description = "NDJSON, one ExportLine per line", content_type = "application/x-ndjson", body = ExportLine),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn export_everything(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    caller.require_backend()?;
    Ok(ndjson(state, None))
}

fn ndjson(state: AppState, organization: Option<OrganizationId>) -> Response {
    let lines =
        rooms::export(state, organization).inspect_err(|e| tracing::warn!(error = %e, "export cut short"));
    let mut response = Body::from_stream(lines).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    response
}
