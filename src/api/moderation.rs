//! Moderation of a room: bans and mutes, timed or until lifted.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    extract::{ApiJson, ApiPath},
    standing,
};
use crate::{
    auth::Caller,
    clock::to_datetime,
    domain::{check_id, Id},
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{
        self,
        moderation::{self, parse_duration, parse_reason, Actor},
    },
    state::AppState,
    store::moderation::{Ban, Mute},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BanRequest {
    /// The app user to ban; they need not hold a role in the room.
    #[serde(rename = "userID")]
    #[schema(minimum = 1)]
    pub user_id: i64,
    /// Shown to Matrix clients with the ban; at most 500 characters.
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// 1 to 31,536,000 (a year); left out, the ban lasts until lifted.
    #[schema(minimum = 1, maximum = 31536000)]
    pub duration_seconds: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MuteRequest {
    /// One of the room's assigned users (admins and moderators cannot be muted: demote first).
    #[serde(rename = "userID")]
    #[schema(minimum = 1)]
    pub user_id: i64,
    /// 1 to 31,536,000 (a year); left out, the mute lasts until lifted.
    #[schema(minimum = 1, maximum = 31536000)]
    pub duration_seconds: Option<i64>,
}

/// A ban in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BanResponse {
    #[serde(rename = "userID")]
    pub user_id: i64,
    pub reason: Option<String>,
    /// `backend`, or `user:<app user id>` for an organization admin or room moderator.
    pub actor: String,
    pub created_at: Option<DateTime<Utc>>,
    /// When the ban ends by itself; null: when lifted.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A mute in force.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuteResponse {
    #[serde(rename = "userID")]
    pub user_id: i64,
    pub actor: String,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BanList {
    pub entries: Vec<BanResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MuteList {
    pub entries: Vec<MuteResponse>,
}

impl From<Ban> for BanResponse {
    fn from(ban: Ban) -> Self {
        Self {
            user_id: ban.user,
            reason: ban.reason,
            actor: ban.actor,
            created_at: to_datetime(ban.created_at),
            expires_at: ban.expires_at.and_then(to_datetime),
        }
    }
}

impl From<Mute> for MuteResponse {
    fn from(mute: Mute) -> Self {
        Self {
            user_id: mute.user,
            actor: mute.actor,
            created_at: to_datetime(mute.created_at),
            expires_at: mute.expires_at.and_then(to_datetime),
        }
    }
}

/// `201` (or `204` for a lift) once the homeserver has it, `202` while it is being retried.
fn status(synced: bool, done: StatusCode) -> StatusCode {
    if synced {
        done
    } else {
        StatusCode::ACCEPTED
    }
}

/// The caller as a moderator of the room: their rank there (a banned admin or moderator has
/// none). Whether they outrank the target is checked by the use case, under the room's lock.
async fn actor(state: &AppState, caller: &Caller, room: i64) -> ApiResult<Actor> {
    let room = rooms::load(state, room).await?;
    let rank = standing::moderation_rank(state, caller, &room).await?;
    Ok(Actor { key: caller.key(), rank })
}

/// Bans a user from a chatroom.
///
/// The user is banned on the homeserver (they leave and cannot rejoin) but keeps their place
/// in the role lists: when the ban ends (`durationSeconds` passed, or lifted) they are unbanned
/// and joined again with their role. Banning a user who holds no role keeps them out. Banning
/// again replaces the earlier ban. The backend and organization admins may ban anyone; a room's
/// admins anyone but another admin; its moderators only assigned users and users without a role.
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/bans", tag = "moderation",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    request_body = BanRequest,
    responses(
        (status = 201, description = "Banned on the homeserver", body = BanResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = BanResponse),
        (status = 400, description = "Malformed JSON, or roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller may not ban this user here", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "userID below 1, durationSeconds outside 1 to 31,536,000, a reason over 500 characters, or the body is not a JSON object", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn ban_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    ApiJson(body): ApiJson<BanRequest>,
) -> ApiResult<(StatusCode, Json<BanResponse>)> {
    let user = check_id("userID", body.user_id).map_err(ApiError::unprocessable)?;
    let reason = parse_reason(body.reason)?;
    let duration = body.duration_seconds.map(parse_duration).transpose()?;
    let actor = actor(&state, &caller, id).await?;
    let (ban, synced) = moderation::ban(&state, id, actor, user, reason, duration).await?;
    Ok((status(synced, StatusCode::CREATED), Json(ban.into())))
}

/// Lists the bans in force in a chatroom (the backend, organization admins, the room's admins
/// and moderators).
#[utoipa::path(
    get, path = "/chatrooms/{roomID}/bans", tag = "moderation",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 200, description = "The bans in force, by user id", body = BanList),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller neither manages the organization nor moderates the room", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn list_bans(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<Json<BanList>> {
    actor(&state, &caller, id).await?;
    let entries = moderation::bans(&state, id).await?.into_iter().map(BanResponse::from).collect();
    Ok(Json(BanList { entries }))
}

/// Lifts a ban: the user is unbanned on the homeserver, and joined again if they hold a role.
#[utoipa::path(
    delete, path = "/chatrooms/{roomID}/bans/{userID}", tag = "moderation",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("userID" = i64, Path, description = "Id of the banned app user", minimum = 1),
    ),
    responses(
        (status = 204, description = "Lifted on the homeserver"),
        (status = 202, description = "Lifted here; the homeserver has not caught up yet"),
        (status = 400, description = "roomID or userID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller may not lift this user's ban", body = ErrorBody),
        (status = 404, description = "No such chatroom, or the user is not banned there", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn lift_ban(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, user)): ApiPath<(Id, Id)>,
) -> ApiResult<StatusCode> {
    let (Id(id), Id(user)) = (id, user);
    let actor = actor(&state, &caller, id).await?;
    Ok(status(moderation::lift_ban(&state, id, actor, user).await?, StatusCode::NO_CONTENT))
}

/// Mutes one of the room's assigned users: they keep reading but cannot post (power level
/// -1) until the mute ends. Admins and moderators cannot be muted (`409`, `not_mutable`).
/// Muting again replaces the earlier mute.
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/mutes", tag = "moderation",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    request_body = MuteRequest,
    responses(
        (status = 201, description = "Muted on the homeserver", body = MuteResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = MuteResponse),
        (status = 400, description = "Malformed JSON, or roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller may not mute this user here", body = ErrorBody),
        (status = 404, description = "No such chatroom, or the user holds no role in it", body = ErrorBody),
        (status = 409, description = "The user is an admin or moderator of the room (`not_mutable`): demote them first", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "userID below 1, durationSeconds outside 1 to 31,536,000, or the body is not a JSON object", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn mute_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    ApiJson(body): ApiJson<MuteRequest>,
) -> ApiResult<(StatusCode, Json<MuteResponse>)> {
    let user = check_id("userID", body.user_id).map_err(ApiError::unprocessable)?;
    let duration = body.duration_seconds.map(parse_duration).transpose()?;
    let actor = actor(&state, &caller, id).await?;
    let (mute, synced) = moderation::mute(&state, id, actor, user, duration).await?;
    Ok((status(synced, StatusCode::CREATED), Json(mute.into())))
}

/// Lists the mutes in force in a chatroom (the backend, organization admins, the room's admins
/// and moderators).
#[utoipa::path(
    get, path = "/chatrooms/{roomID}/mutes", tag = "moderation",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 200, description = "The mutes in force, by user id", body = MuteList),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller neither manages the organization nor moderates the room", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn list_mutes(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<Json<MuteList>> {
    actor(&state, &caller, id).await?;
    let entries = moderation::mutes(&state, id).await?.into_iter().map(MuteResponse::from).collect();
    Ok(Json(MuteList { entries }))
}

/// Lifts a mute: the user may post again.
#[utoipa::path(
    delete, path = "/chatrooms/{roomID}/mutes/{userID}", tag = "moderation",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("userID" = i64, Path, description = "Id of the muted app user", minimum = 1),
    ),
    responses(
        (status = 204, description = "Lifted on the homeserver"),
        (status = 202, description = "Lifted here; the homeserver has not caught up yet"),
        (status = 400, description = "roomID or userID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller may not lift this user's mute", body = ErrorBody),
        (status = 404, description = "No such chatroom, or the user is not muted there", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn unmute_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, user)): ApiPath<(Id, Id)>,
) -> ApiResult<StatusCode> {
    let (Id(id), Id(user)) = (id, user);
    let actor = actor(&state, &caller, id).await?;
    Ok(status(moderation::unmute(&state, id, actor, user).await?, StatusCode::NO_CONTENT))
}
