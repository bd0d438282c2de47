//! Request values every room endpoint parses the same way; refusals are `422`.

use crate::{
    auth::Caller,
    domain::{check_id, parse_scheduled_deletion, Avatar, AvatarInput, OrganizationId, RoleLists, RoomName},
    error::{ApiError, ApiResult},
    rooms::Idempotency,
    state::AppState,
};

pub fn parse_name(raw: &str) -> ApiResult<RoomName> {
    RoomName::parse(raw).map_err(ApiError::unprocessable)
}

/// An organization id from a JSON body: at least 1.
pub fn parse_organization(id: i64) -> ApiResult<OrganizationId> {
    check_id("organizationID", id).map_err(ApiError::unprocessable)
}

pub fn parse_roles(admins: &[i64], moderators: &[i64], assigned: &[i64]) -> ApiResult<RoleLists> {
    RoleLists::parse(admins, moderators, assigned).map_err(ApiError::unprocessable)
}

/// An empty byte array or null means "no avatar".
pub fn parse_avatar(state: &AppState, input: Option<AvatarInput>) -> ApiResult<Option<Avatar>> {
    match input {
        Some(input) if !input.0.is_empty() => Avatar::parse(input, state.config.limits.avatar_max_bytes)
            .map(Some)
            .map_err(ApiError::unprocessable),
        _ => Ok(None),
    }
}

/// The time as given; that it lies in the future is checked when it is stored, after an
/// idempotent replay had its chance.
pub fn parse_deletion(value: &serde_json::Value) -> ApiResult<Option<i64>> {
    parse_scheduled_deletion(value)
        .map(|at| at.map(|at| at.timestamp_millis()))
        .map_err(ApiError::unprocessable)
}

/// A creating request's `Idempotency-Key`, scoped to its caller: two callers may use one key.
pub fn idempotency(caller: &Caller, key: Option<String>) -> Option<Idempotency> {
    key.map(|key| Idempotency { caller: caller.key(), key })
}
