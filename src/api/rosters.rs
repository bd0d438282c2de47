//! Rosters the backend pushes: an organization's members and an event's participants. The
//! automated rooms follow them (see `automationEnabled`).

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{self, ApiJson, ApiPath, ApiQuery};
use crate::{
    auth::Caller,
    domain::{schema::PositiveId, Id, OrganizationRoster, Participants},
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{
        rosters::{self, Roster, RosterChange, RosterOf, RosterWritten},
        SyncStatus,
    },
    state::AppState,
};

/// One member of an organization.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    #[serde(rename = "userID")]
    #[schema(value_type = PositiveId)]
    pub user_id: i64,
    /// `admin` or `member`. Admins are admins of the organization's automated default room
    /// (power 100) and of its space; members are assigned users of that room.
    #[schema(example = "member")]
    pub role: String,
}

/// Organization members; each user at most once, at most 10,000.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersRequest {
    #[schema(max_items = 10000)]
    pub members: Vec<MemberEntry>,
}

/// Event participants (app user ids); each at most once, at most 10,000.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantsRequest {
    #[schema(value_type = Vec<PositiveId>, inline, max_items = 10000)]
    pub participants: Vec<i64>,
}

/// A roster after a change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RosterWriteResponse {
    /// Users the roster names now.
    pub total: usize,
    /// The automated rooms that follow this roster (`chatroomIDs`); empty when there are none
    /// yet: the roster is applied when they appear.
    #[serde(rename = "chatroomIDs")]
    pub chatroom_ids: Vec<i64>,
    /// `synced` when those rooms caught up within the request, else `pending`.
    pub sync_status: SyncStatus,
}

fn answer(written: RosterWritten) -> (StatusCode, Json<RosterWriteResponse>) {
    let (status, sync_status) = if written.synced {
        (StatusCode::OK, SyncStatus::Synced)
    } else {
        (StatusCode::ACCEPTED, SyncStatus::Pending)
    };
    (status, Json(RosterWriteResponse { total: written.total, chatroom_ids: written.rooms, sync_status }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RosterPageQuery {
    /// Return all entries, ignoring `limit` and `offset`.
    pub all: Option<bool>,
    /// Page size, 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Users to skip, 0 or more (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

impl RosterPageQuery {
    fn page(&self) -> ApiResult<(i64, i64)> {
        let page = extract::page(self.limit, self.offset, 100, 1000)?;
        Ok(if self.all.unwrap_or(false) { (i64::MAX, 0) } else { page })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MembersPage {
    /// In user id order.
    pub entries: Vec<MemberEntry>,
    pub total: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ParticipantsPage {
    /// App user ids, in order.
    pub entries: Vec<i64>,
    pub total: i64,
}

fn parse_members(body: MembersRequest) -> ApiResult<Roster> {
    let entries: Vec<(i64, String)> = body.members.into_iter().map(|m| (m.user_id, m.role)).collect();
    OrganizationRoster::parse(&entries).map(Roster::Members).map_err(ApiError::unprocessable)
}

fn parse_participants(body: ParticipantsRequest) -> ApiResult<Roster> {
    Participants::parse(&body.participants).map(Roster::Participants).map_err(ApiError::unprocessable)
}

type OrgUserPath = (Id, Id);
type EventPath = (Id, Id);
type EventUserPath = (Id, Id, Id);

/// Replaces an organization's members.
///
/// The organization's default room, when `automationEnabled`, holds its explicit lists plus
/// every member (admins as room admins, members as assigned users; an explicit role wins).
/// Refused whole, changing nothing, when that room would break its limits. Stored also for an
/// organization without rooms, and applied when its default room appears.
#[utoipa::path(
    put, path = "/organizations/{organizationID}/members", tag = "organizations",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1)),
    request_body = MembersRequest,
    responses(
        (status = 200, description = "Replaced; the automated rooms are in sync", body = RosterWriteResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = RosterWriteResponse),
        (status = 400, description = "Malformed JSON, or organizationID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 409, description = "The automated default room would hold more users than its maxUsers (`room_full`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "An unknown role, a user listed twice, an id below 1, more than 10,000 members, a deactivated user, more admins than the room's power levels can hold, wrong types", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn put_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(org)): ApiPath<Id>,
    ApiJson(body): ApiJson<MembersRequest>,
) -> ApiResult<(StatusCode, Json<RosterWriteResponse>)> {
    caller.require_backend()?;
    let roster = parse_members(body)?;
    let written =
        rosters::change_roster(&state, RosterOf::Organization(org), RosterChange::Replace(roster)).await?;
    Ok(answer(written))
}

/// Adds members to an organization, or gives members a new role.
#[utoipa::path(
    post, path = "/organizations/{organizationID}/members", tag = "organizations",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1)),
    request_body = MembersRequest,
    responses(
        (status = 200, description = "Added; the automated rooms are in sync", body = RosterWriteResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = RosterWriteResponse),
        (status = 400, description = "Malformed JSON, or organizationID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 409, description = "The automated default room would hold more users than its maxUsers (`room_full`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "An unknown role, a user listed twice, an id below 1, more than 10,000 members afterwards, a deactivated user, more admins than the room's power levels can hold, wrong types", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn add_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(org)): ApiPath<Id>,
    ApiJson(body): ApiJson<MembersRequest>,
) -> ApiResult<(StatusCode, Json<RosterWriteResponse>)> {
    caller.require_backend()?;
    let roster = parse_members(body)?;
    let written =
        rosters::change_roster(&state, RosterOf::Organization(org), RosterChange::Add(roster)).await?;
    Ok(answer(written))
}

/// An organization's members, a page at a time.
#[utoipa::path(
    get, path = "/organizations/{organizationID}/members", tag = "organizations",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1), RosterPageQuery),
    responses(
        (status = 200, description = "The page", body = MembersPage),
        (status = 400, description = "organizationID is not a positive integer, limit outside 1-1000, negative offset, wrong types", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(org)): ApiPath<Id>,
    ApiQuery(query): ApiQuery<RosterPageQuery>,
) -> ApiResult<Json<MembersPage>> {
    caller.require_manage(org)?;
    let (limit, offset) = query.page()?;
    let (entries, total) = rosters::members_page(&state, org, limit, offset).await?;
    let entries = entries
        .into_iter()
        .map(|(user_id, role)| MemberEntry { user_id, role: role.as_str().to_owned() })
        .collect();
    Ok(Json(MembersPage { entries, total }))
}

/// Removes one member from an organization (and from its automated default room, unless they
/// hold an explicit role there).
#[utoipa::path(
    delete, path = "/organizations/{organizationID}/members/{userID}", tag = "organizations",
    params(
        ("organizationID" = i64, Path, description = "Id of the organization", minimum = 1),
        ("userID" = i64, Path, description = "The app user", minimum = 1),
    ),
    responses(
        (status = 200, description = "Removed; the automated rooms are in sync", body = RosterWriteResponse),
        (status = 202, description = "Removed; the homeserver has not caught up yet", body = RosterWriteResponse),
        (status = 400, description = "An id is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 404, description = "The user is not a member", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, user)): ApiPath<OrgUserPath>,
) -> ApiResult<(StatusCode, Json<RosterWriteResponse>)> {
    let (Id(org), Id(user)) = (org, user);
    caller.require_backend()?;
    let written =
        rosters::change_roster(&state, RosterOf::Organization(org), RosterChange::Remove(user)).await?;
    Ok(answer(written))
}

/// Replaces an event's participants.
///
/// The event's room, when `automationEnabled`, holds its explicit lists plus every participant
/// as an assigned user (an explicit role wins). Stored also for an event without a room, and
/// applied when its room appears.
#[utoipa::path(
    put, path = "/organizations/{organizationID}/events/{eventID}/participants", tag = "organizations",
    params(
        ("organizationID" = i64, Path, description = "Id of the organization", minimum = 1),
        ("eventID" = i64, Path, description = "Id of the event", minimum = 1),
    ),
    request_body = ParticipantsRequest,
    responses(
        (status = 200, description = "Replaced; the automated room is in sync", body = RosterWriteResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = RosterWriteResponse),
        (status = 400, description = "Malformed JSON, or an id is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 409, description = "The automated event room would hold more users than its maxUsers (`room_full`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A user listed twice, an id below 1, more than 10,000 participants, a deactivated user, wrong types", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn put_participants(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, event)): ApiPath<EventPath>,
    ApiJson(body): ApiJson<ParticipantsRequest>,
) -> ApiResult<(StatusCode, Json<RosterWriteResponse>)> {
    let (Id(org), Id(event)) = (org, event);
    caller.require_backend()?;
    let roster = parse_participants(body)?;
    let written =
        rosters::change_roster(&state, RosterOf::Event(org, event), RosterChange::Replace(roster)).await?;
    Ok(answer(written))
}

/// Adds participants to an event.
#[utoipa::path(
    post, path = "/organizations/{organizationID}/events/{eventID}/participants", tag = "organizations",
    params(
        ("organizationID" = i64, Path, description = "Id of the organization", minimum = 1),
        ("eventID" = i64, Path, description = "Id of the event", minimum = 1),
    ),
    request_body = ParticipantsRequest,
    responses(
        (status = 200, description = "Added; the automated room is in sync", body = RosterWriteResponse),
        (status = 202, description = "Stored; the homeserver has not caught up yet", body = RosterWriteResponse),
        (status = 400, description = "Malformed JSON, or an id is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 409, description = "The automated event room would hold more users than its maxUsers (`room_full`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A user listed twice, an id below 1, more than 10,000 participants afterwards, a deactivated user, wrong types", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn add_participants(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, event)): ApiPath<EventPath>,
    ApiJson(body): ApiJson<ParticipantsRequest>,
) -> ApiResult<(StatusCode, Json<RosterWriteResponse>)> {
    let (Id(org), Id(event)) = (org, event);
    caller.require_backend()?;
    let roster = parse_participants(body)?;
    let written =
        rosters::change_roster(&state, RosterOf::Event(org, event), RosterChange::Add(roster)).await?;
    Ok(answer(written))
}

/// An event's participants, a page at a time.
#[utoipa::path(
    get, path = "/organizations/{organizationID}/events/{eventID}/participants", tag = "organizations",
    params(
        ("organizationID" = i64, Path, description = "Id of the organization", minimum = 1),
        ("eventID" = i64, Path, description = "Id of the event", minimum = 1),
        RosterPageQuery,
    ),
    responses(
        (status = 200, description = "The page", body = ParticipantsPage),
        (status = 400, description = "An id is not a positive integer, limit outside 1-1000, negative offset, wrong types", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Caller does not administer the organization", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn list_participants(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, event)): ApiPath<EventPath>,
    ApiQuery(query): ApiQuery<RosterPageQuery>,
) -> ApiResult<Json<ParticipantsPage>> {
    let (Id(org), Id(event)) = (org, event);
    caller.require_manage(org)?;
    let (limit, offset) = query.page()?;
    let (entries, total) = rosters::participants_page(&state, org, event, limit, offset).await?;
    Ok(Json(ParticipantsPage { entries, total }))
}

/// Removes one participant from an event (and from its automated room, unless they hold an
/// explicit role there).
#[utoipa::path(
    delete, path = "/organizations/{organizationID}/events/{eventID}/participants/{userID}", tag = "organizations",
    params(
        ("organizationID" = i64, Path, description = "Id of the organization", minimum = 1),
        ("eventID" = i64, Path, description = "Id of the event", minimum = 1),
        ("userID" = i64, Path, description = "The app user", minimum = 1),
    ),
    responses(
        (status = 200, description = "Removed; the automated room is in sync", body = RosterWriteResponse),
        (status = 202, description = "Removed; the homeserver has not caught up yet", body = RosterWriteResponse),
        (status = 400, description = "An id is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 404, description = "The user does not take part in the event", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn remove_participant(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((org, event, user)): ApiPath<EventUserPath>,
) -> ApiResult<(StatusCode, Json<RosterWriteResponse>)> {
    let (Id(org), Id(event), Id(user)) = (org, event, user);
    caller.require_backend()?;
    let written =
        rosters::change_roster(&state, RosterOf::Event(org, event), RosterChange::Remove(user)).await?;
    Ok(answer(written))
}
