//! Reported messages and the moderation queue: report, list, resolve.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    extract::{self, ApiJson, ApiPath, ApiQuery},
    standing,
};
use crate::{
    auth::Caller,
    clock::to_datetime,
    domain::{check_id, Id},
    error::{ApiError, ApiResult, ErrorBody},
    rooms::{
        self,
        moderation::{parse_duration, Actor},
        reports::{self, Action, Decision, ReportView},
    },
    state::AppState,
    store::reports::{ReportScope, ReportStatus, ReportsQuery},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportRequest {
    /// Why, in the reporter's words: at most 1,000 characters.
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
    /// The app user who reports: required with the backend's token; an app user reports as
    /// themselves.
    #[serde(rename = "reporterID")]
    #[schema(minimum = 1)]
    pub reporter_id: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResolveRequest {
    pub action: ActionName,
    /// For `mute` and `ban`: 1 to 31,536,000 (a year); left out, until lifted.
    #[schema(minimum = 1, maximum = 31536000)]
    pub duration_seconds: Option<i64>,
    /// Kept with the resolution (and given as the redaction's or ban's reason): at most 1,000
    /// characters.
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// `dismiss` (nothing happens to the message), `redact` it, `mute` or `ban` its sender.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionName {
    Dismiss,
    Redact,
    Mute,
    Ban,
}

impl From<ActionName> for Action {
    fn from(name: ActionName) -> Self {
        match name {
            ActionName::Dismiss => Action::Dismiss,
            ActionName::Redact => Action::Redact,
            ActionName::Mute => Action::Mute,
            ActionName::Ban => Action::Ban,
        }
    }
}

/// `open` (the default) or `resolved`.
#[derive(Clone, Copy, Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusParam {
    #[default]
    Open,
    Resolved,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueQuery {
    /// `open` (default) or `resolved`.
    #[param(inline)]
    pub status: Option<StatusParam>,
    /// Page size, 1 to 50 (default 10).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<i64>,
    /// Entries to skip, 0 or more (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// The reported message as the homeserver has it now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedMessage {
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// The sender's Matrix id.
    pub sender: String,
    /// The sender as an app user; null for the bot and users outside the app.
    #[serde(rename = "senderID")]
    pub sender_id: Option<i64>,
    /// Null once redacted, in an end-to-end encrypted room, or when the homeserver could not
    /// be asked.
    pub body: Option<String>,
    pub redacted: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportResolution {
    pub resolved_at: Option<DateTime<Utc>>,
    /// `backend` or `user:<app user id>`.
    pub resolved_by: String,
    /// `dismiss`, `redact`, `mute` or `ban`.
    pub action: String,
    pub note: Option<String>,
}

/// One report of the message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportItem {
    #[serde(rename = "reportID")]
    pub report_id: i64,
    /// The reporter's Matrix id.
    pub reporter: String,
    /// The reporter as an app user; null for users outside the app.
    #[serde(rename = "reporterID")]
    pub reporter_id: Option<i64>,
    pub reason: Option<String>,
    /// `api`, or `homeserver` for a report made in a Matrix client.
    pub source: String,
    pub created_at: Option<DateTime<Utc>>,
}

/// A reported message with its reports: an entry of the moderation queue. A message's open
/// reports are one entry; once resolved, the reports that resolution closed are one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportResponse {
    /// The newest of `reports`; any of their ids resolves the entry.
    #[serde(rename = "reportID")]
    pub report_id: i64,
    #[serde(rename = "roomID")]
    pub room_id: i64,
    #[serde(rename = "organizationID")]
    pub organization_id: i64,
    pub message: ReportedMessage,
    /// `open` or `resolved`.
    pub status: String,
    /// Who reported it and why, newest first (a reporter sees only their own).
    pub reports: Vec<ReportItem>,
    /// How it was resolved; null while open.
    pub resolution: Option<ReportResolution>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReportPage {
    /// One per reported message (and resolution), the newest report first.
    pub entries: Vec<ReportResponse>,
    /// Entries in all.
    pub total: i64,
}

impl From<ReportView> for ReportResponse {
    fn from(view: ReportView) -> Self {
        let newest = view.newest;
        let resolution = newest.resolution.clone().map(|r| ReportResolution {
            resolved_at: to_datetime(r.at),
            resolved_by: r.by,
            action: r.action,
            note: r.note,
        });
        Self {
            report_id: newest.id,
            room_id: newest.chatroom_id,
            organization_id: newest.organization_id,
            message: ReportedMessage {
                event_id: newest.event_id.clone(),
                sender: newest.sender.clone(),
                sender_id: view.sender_id,
                body: view.body,
                redacted: view.redacted,
            },
            status: if resolution.is_some() { "resolved" } else { "open" }.to_owned(),
            resolution,
            reports: std::iter::once(newest)
                .chain(view.older)
                .map(|r| ReportItem {
                    report_id: r.id,
                    reporter: r.reporter,
                    reporter_id: r.reporter_user_id,
                    reason: r.reason,
                    source: r.source,
                    created_at: to_datetime(r.created_at),
                })
                .collect(),
        }
    }
}

/// Reports one of a chatroom's messages for its moderators (one open report per user and
/// message). An app user holding a role in the room reports as themselves; the backend names
/// the reporter. Reported as the webhook `message.reported`.
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/messages/{eventID}/reports", tag = "reports",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("eventID" = String, Path, description = "The message's Matrix event id"),
    ),
    request_body = ReportRequest,
    responses(
        (status = 201, description = "Reported: the message's entry, with only this report in `reports`", body = ReportResponse),
        (status = 400, description = "Malformed JSON, a bad roomID or eventID, or no reporterID with the backend's token", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The reporter holds no role in the room, or an app user reports for someone else", body = ErrorBody),
        (status = 404, description = "No such chatroom, or no such message in it", body = ErrorBody),
        (status = 409, description = "The reporter's report of this message is still open (`already_reported`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A reason over 1,000 characters or with control characters, a reporterID below 1, or the body is not a JSON object", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn report_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, event)): ApiPath<(Id, String)>,
    ApiJson(body): ApiJson<ReportRequest>,
) -> ApiResult<(StatusCode, Json<ReportResponse>)> {
    let Id(id) = id;
    let event = ruma::EventId::parse(&event)
        .map_err(|_| ApiError::bad_request("eventID is not a Matrix event id"))?;
    let named =
        body.reporter_id.map(|r| check_id("reporterID", r).map_err(ApiError::unprocessable)).transpose()?;
    let reporter = caller.subject(named)?;
    let reason = reports::parse_text("reason", body.reason)?;
    let report = reports::report(&state, id, &event, reporter, reason).await?;
    Ok((StatusCode::CREATED, Json(report.into())))
}

/// A chatroom's reported messages, one entry per message with its reports, the newest report
/// first: every report for the backend, organization admins and the room's admins and
/// moderators; for anyone else holding a role, their own.
#[utoipa::path(
    get, path = "/chatrooms/{roomID}/reports", tag = "reports",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1), QueueQuery),
    responses(
        (status = 200, description = "A page of reported messages", body = ReportPage),
        (status = 400, description = "Bad roomID, status, limit or offset", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller holds no role in the room", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn room_reports(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> ApiResult<Json<ReportPage>> {
    let page = extract::page(query.limit, query.offset, 10, 50)?;
    let room = rooms::load(&state, id).await?;
    caller.require_read(room.id, room.organization_id, &room.roles)?;
    // Staff see the room's queue; a reporter only their own reports.
    let reporter = match standing::moderation_rank(&state, &caller, &room).await {
        Ok(_) => None,
        Err(_) => caller.app_user(),
    };
    let query = ReportsQuery { scope: ReportScope::Room(id), reporter, status: status(query.status), page };
    page_of(&state, &query).await
}

/// An organization's reported messages, one entry per message with its reports, the newest
/// report first: every report for the backend and the organization's admins; for an app user,
/// their own.
#[utoipa::path(
    get, path = "/organizations/{organizationID}/reports", tag = "reports",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1), QueueQuery),
    responses(
        (status = 200, description = "A page of reported messages", body = ReportPage),
        (status = 400, description = "Bad organizationID, status, limit or offset", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn organization_reports(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(organization)): ApiPath<Id>,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> ApiResult<Json<ReportPage>> {
    let page = extract::page(query.limit, query.offset, 10, 50)?;
    let reporter = caller.app_user().filter(|_| !caller.may_manage(organization));
    let query = ReportsQuery {
        scope: ReportScope::Organization(organization),
        reporter,
        status: status(query.status),
        page,
    };
    page_of(&state, &query).await
}

fn status(param: Option<StatusParam>) -> ReportStatus {
    match param.unwrap_or_default() {
        StatusParam::Open => ReportStatus::Open,
        StatusParam::Resolved => ReportStatus::Resolved,
    }
}

async fn page_of(state: &AppState, query: &ReportsQuery) -> ApiResult<Json<ReportPage>> {
    let (entries, total) = reports::queue(state, query).await?;
    Ok(Json(ReportPage { entries: entries.into_iter().map(ReportResponse::from).collect(), total }))
}

/// Resolves a report: `dismiss`, `redact` the message, `mute` or `ban` its sender (through the
/// moderation layer, with its rank rules: a moderator never acts on an admin or another
/// moderator), then closes every open report of that message, here and on the homeserver.
/// The backend, organization admins and the room's admins and moderators.
#[utoipa::path(
    post, path = "/reports/{reportID}/resolve", tag = "reports",
    params(("reportID" = i64, Path, description = "Id of the report", minimum = 1)),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "Resolved: the message's entry, with every report it closed", body = ReportResponse),
        (status = 400, description = "Malformed JSON, or reportID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller does not moderate the room, or is outranked by the message's sender", body = ErrorBody),
        (status = 404, description = "No such report; or, for `mute`, its sender is no longer in the room's lists, and for `redact`, the message is gone (a truncation)", body = ErrorBody),
        (status = 409, description = "The report is resolved already (`report_resolved`); a mute of an admin or moderator (`not_mutable`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "An unknown action, durationSeconds outside 1 to 31,536,000 or with dismiss or redact, a note over 1,000 characters, a mute or ban of a sender who is not an app user, or the body is not a JSON object", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn resolve_report(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(report_id)): ApiPath<Id>,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> ApiResult<Json<ReportResponse>> {
    let action = Action::from(body.action);
    let duration_secs = match (action, body.duration_seconds) {
        (Action::Mute | Action::Ban, Some(secs)) => Some(parse_duration(secs)?),
        (_, None) => None,
        (_, Some(_)) => return Err(ApiError::unprocessable("durationSeconds goes with mute and ban only")),
    };
    let note = reports::parse_text("note", body.note)?;
    let report = reports::find(&state, report_id).await?;
    let room = rooms::load(&state, report.chatroom_id).await?;
    let rank = standing::moderation_rank(&state, &caller, &room).await?;
    let actor = Actor { key: caller.key(), rank };
    let resolved =
        reports::resolve(&state, report_id, actor, Decision { action, duration_secs, note }).await?;
    Ok(Json(resolved.into()))
}
