//! Blocklists: an organization's, and each room's additions to it.

use axum::{extract::State, Json};
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
    domain::{blocklist::Blocklist, Id, Role},
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{self, blocklists},
    state::AppState,
};

/// A whole blocklist; `PUT` replaces it (absent lists are empty).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlocklistRequest {
    /// Words and phrases, matched as whole words in any case; 1 to 100 characters each, at
    /// most 1,000.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub words: Vec<String>,
    /// Regular expressions (Rust `regex` syntax: no look-around or backreferences, matched in
    /// linear time); up to 500 characters each and 256 KiB compiled, at most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub patterns: Vec<String>,
    /// Domains links may go to (subdomains included); empty allows every link. At most 500.
    #[serde(default)]
    #[schema(max_items = 500)]
    pub allowed_link_domains: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlocklistResponse {
    /// Lowercased, sorted, without repeats.
    pub words: Vec<String>,
    pub patterns: Vec<String>,
    pub allowed_link_domains: Vec<String>,
    /// Null when the list was never set.
    pub updated_at: Option<DateTime<Utc>>,
}

fn response(list: Blocklist, updated_at: i64) -> Json<BlocklistResponse> {
    Json(BlocklistResponse {
        words: list.words,
        patterns: list.patterns,
        allowed_link_domains: list.allowed_link_domains,
        updated_at: (updated_at > 0).then(|| to_datetime(updated_at)).flatten(),
    })
}

fn parse(body: BlocklistRequest) -> ApiResult<Blocklist> {
    Blocklist::parse(body.words, body.patterns, body.allowed_link_domains).map_err(ApiError::unprocessable)
}

/// An organization's blocklist, which applies in every one of its rooms.
#[utoipa::path(
    get, path = "/organizations/{organizationID}/blocklist", tag = "moderation",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1)),
    responses(
        (status = 200, description = "The list (empty when never set)", body = BlocklistResponse),
        (status = 400, description = "organizationID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn get_organization_blocklist(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(org)): ApiPath<Id>,
) -> ApiResult<Json<BlocklistResponse>> {
    caller.require_manage(org)?;
    let (list, updated_at) = blocklists::organization_blocklist(&state, org).await?;
    Ok(response(list, updated_at))
}

/// Replaces an organization's blocklist.
///
/// A message that breaks it (or the room's additions) is redacted by the bot within about a
/// second, its reason naming the rule, counted in `chatrooms_messages_blocked_total` and
/// reported as `message.blocked`. Room admins and moderators are exempt.
#[utoipa::path(
    put, path = "/organizations/{organizationID}/blocklist", tag = "moderation",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1)),
    request_body = BlocklistRequest,
    responses(
        (status = 200, description = "Replaced", body = BlocklistResponse),
        (status = 400, description = "Malformed JSON, or organizationID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Too many entries, an empty or overlong word, a pattern that does not compile or is too big, a bad domain, wrong types", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn put_organization_blocklist(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(org)): ApiPath<Id>,
    ApiJson(body): ApiJson<BlocklistRequest>,
) -> ApiResult<Json<BlocklistResponse>> {
    caller.require_manage(org)?;
    let list = parse(body)?;
    let updated_at = blocklists::put_organization_blocklist(&state, org, list.clone()).await?;
    Ok(response(list, updated_at))
}

/// The caller's rank in the room, at least `needed` (1: a moderator, 2: a room admin).
async fn require_rank(state: &AppState, caller: &Caller, room: i64, needed: i64) -> ApiResult<()> {
    let room = rooms::load(state, room).await?;
    if standing::moderation_rank(state, caller, &room).await? < needed {
        let who = if needed >= Role::rank(Some(Role::Admin)) { "admins" } else { "admins and moderators" };
        return Err(ApiError::forbidden(format!(
            "only the room's {who} and organization admins may do this"
        )));
    }
    Ok(())
}

/// A room's additions to its organization's blocklist.
#[utoipa::path(
    get, path = "/chatrooms/{roomID}/blocklist", tag = "moderation",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 200, description = "The room's list (empty when never set)", body = BlocklistResponse),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not one of the room's admins or moderators, nor an organization admin", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn get_room_blocklist(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<Json<BlocklistResponse>> {
    require_rank(&state, &caller, id, Role::rank(Some(Role::Moderator))).await?;
    let (list, updated_at) = blocklists::room_blocklist(&state, id).await?;
    Ok(response(list, updated_at))
}

/// Replaces a room's additions to its organization's blocklist.
#[utoipa::path(
    put, path = "/chatrooms/{roomID}/blocklist", tag = "moderation",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    request_body = BlocklistRequest,
    responses(
        (status = 200, description = "Replaced", body = BlocklistResponse),
        (status = 400, description = "Malformed JSON, or roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not one of the room's admins, nor an organization admin", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 409, description = "The room is end-to-end encrypted (`room_encrypted`): the service never sees its messages", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "Too many entries, an empty or overlong word, a pattern that does not compile or is too big, a bad domain, wrong types", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn put_room_blocklist(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    ApiJson(body): ApiJson<BlocklistRequest>,
) -> ApiResult<Json<BlocklistResponse>> {
    require_rank(&state, &caller, id, Role::rank(Some(Role::Admin))).await?;
    let list = parse(body)?;
    let updated_at = blocklists::put_room_blocklist(&state, id, list.clone()).await?;
    Ok(response(list, updated_at))
}
