//! Request values every room endpoint parses the same way; a refusal is `RoomError::Invalid`
//! (a `422`).

use super::{RoomError, RoomResult};
use crate::{
    domain::{
        check_id, check_max_users, parse_scheduled_deletion, Avatar, AvatarInput, OrganizationId, RoleLists,
        RoomName, RoomTopic, SettingsChange,
    },
    state::AppState,
};

pub fn parse_name(raw: &str) -> RoomResult<RoomName> {
    RoomName::parse(raw).map_err(RoomError::Invalid)
}

/// An organization id from a JSON body: at least 1.
pub fn parse_organization(id: i64) -> RoomResult<OrganizationId> {
    check_id("organizationID", id).map_err(RoomError::Invalid)
}

pub fn parse_roles(admins: &[i64], moderators: &[i64], assigned: &[i64]) -> RoomResult<RoleLists> {
    RoleLists::parse(admins, moderators, assigned).map_err(RoomError::Invalid)
}

/// An empty byte array or null means "no avatar".
pub fn parse_avatar(state: &AppState, input: Option<AvatarInput>) -> RoomResult<Option<Avatar>> {
    match input {
        Some(input) if !input.0.is_empty() => {
            Avatar::parse(input, state.config.limits.avatar_max_bytes).map(Some).map_err(RoomError::Invalid)
        }
        _ => Ok(None),
    }
}

/// `topic`, `readOnly` and `maxUsers` of a request; absent fields stay as they are.
pub fn parse_settings(
    topic: Option<Option<String>>,
    read_only: Option<bool>,
    max_users: Option<Option<i64>>,
) -> RoomResult<SettingsChange> {
    let topic = match topic {
        Some(Some(raw)) => Some(RoomTopic::parse(&raw).map_err(RoomError::Invalid)?),
        Some(None) => Some(None),
        None => None,
    };
    let max_users = match max_users {
        Some(Some(max)) => Some(Some(check_max_users(max).map_err(RoomError::Invalid)?)),
        other => other,
    };
    Ok(SettingsChange { topic, read_only, max_users })
}

/// The time as given; that it lies in the future is checked when it is stored, after an
/// idempotent replay had its chance.
pub fn parse_deletion(value: &serde_json::Value) -> RoomResult<Option<i64>> {
    parse_scheduled_deletion(value).map(|at| at.map(|at| at.timestamp_millis())).map_err(RoomError::Invalid)
}
