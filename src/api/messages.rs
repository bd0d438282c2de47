//! A room's messages: send (as the bot or as one of its users), read back, redact.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    extract::{ApiJson, ApiPath, ApiQuery, IdempotencyKey},
    standing,
};
use crate::{
    auth::Caller,
    clock::to_datetime,
    domain::{check_id, Id, Role},
    error::{ApiError, ApiResult, ErrorBody},
    matrix::PurgeStatus,
    rooms::{
        self,
        messages::{self, Message, NewMessage, SearchTerm, MAX_PAGE},
        moderation as room_moderation, Idempotency,
    },
    state::AppState,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessageRequest {
    /// Plain text, 1 to 16,000 characters.
    #[schema(min_length = 1, max_length = 16000)]
    pub body: String,
    /// The same message as HTML (`org.matrix.custom.html`), at most 32 KiB.
    pub formatted_body: Option<String>,
    /// Send as `m.notice` (announcements, bots), not `m.text`.
    #[serde(default)]
    pub notice: bool,
    /// Send as this app user, who must hold a role in the room; left out, the service's bot
    /// sends it. An app user's own token may only send as themselves.
    #[serde(rename = "senderID")]
    #[schema(minimum = 1)]
    pub sender_id: Option<i64>,
    /// Pin the message once sent (callers who may pin: the backend, organization admins, the
    /// room's admins and moderators).
    #[serde(default)]
    pub pin: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SentMessage {
    /// The Matrix event id of the message.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// Whether it was pinned (`pin: true`); false when the pin failed after the send, which a
    /// `PUT .../pins/{eventID}` can retry.
    pub pinned: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` token of the previous page.
    #[param(max_length = 512)]
    pub from: Option<String>,
    /// Only messages whose text holds these words, in any case, through the homeserver's
    /// own search: 1 to 200 characters. The pages' `next` tokens are search tokens then.
    #[param(min_length = 1, max_length = 200)]
    pub search: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The words to find, in any case: 1 to 200 characters.
    #[param(min_length = 1, max_length = 200)]
    pub search: String,
    /// Messages per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` token of the previous page.
    #[param(max_length = 512)]
    pub from: Option<String>,
}

/// One message of a room's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageEntry {
    /// The chatroom it was sent in.
    #[serde(rename = "roomID")]
    pub room_id: i64,
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// The app user who sent it; null for the service's bot and senders outside the app.
    #[serde(rename = "senderID")]
    pub sender_id: Option<i64>,
    /// The sender's Matrix id.
    pub sender: String,
    /// Null once redacted.
    pub body: Option<String>,
    pub formatted_body: Option<String>,
    pub notice: bool,
    pub timestamp: Option<DateTime<Utc>>,
    pub redacted: bool,
    /// Whether its sender edited it; `body` and `formattedBody` are then the latest edit's.
    pub edited: bool,
    /// When the latest edit was made.
    pub edited_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    /// Newest first.
    pub entries: Vec<MessageEntry>,
    /// Pass as `from` for the next (older) page; null on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedactQuery {
    /// Shown to Matrix clients with the redaction; at most 500 characters.
    #[param(max_length = 500)]
    pub reason: Option<String>,
}

impl From<Message> for MessageEntry {
    fn from(message: Message) -> Self {
        Self {
            room_id: message.chatroom_id,
            event_id: message.event_id,
            sender_id: message.sender_id,
            sender: message.sender,
            body: message.body,
            formatted_body: message.formatted_body,
            notice: message.notice,
            timestamp: message.timestamp.and_then(to_datetime),
            redacted: message.redacted,
            edited: message.edited_at.is_some(),
            edited_at: message.edited_at.and_then(to_datetime),
        }
    }
}

/// Sends a message to a chatroom.
///
/// As the bot (no `senderID`: the backend, organization admins, the room's admins and
/// moderators) or as one of the room's users (the backend and organization admins for anyone
/// holding a role; an app user only as themselves). A banned or muted sender, or an assigned
/// user in a read-only room, is refused (`403`, `cannot_post`). With an `Idempotency-Key` a
/// retry within a day answers with the first send's event instead of sending again (the same
/// key for another message is a `422`, `idempotency_key_reused`); a `503` may follow a send
/// that reached the homeserver, so retry with the same key.
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/messages", tag = "messages",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request safe: 1 to 255 visible ASCII characters", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$"),
    ),
    request_body = SendMessageRequest,
    responses(
        (status = 201, description = "Sent", body = SentMessage),
        (status = 400, description = "Malformed JSON or Idempotency-Key, or roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller may not send as this sender here, or the sender may not post (`cannot_post`: banned, muted, read-only room)", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 409, description = "The room is not on the homeserver yet (`room_pending`), archived (`room_archived`), or end-to-end encrypted (`room_encrypted`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "An empty or too long body, formattedBody over 32 KiB, a message too big for one Matrix event, a senderID below 1 or holding no role in the room, the body is not a JSON object, or an Idempotency-Key used for another message (`idempotency_key_reused`)", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`); nothing was sent", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`); retry with the same Idempotency-Key, as the message may have reached it", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn send_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(body): ApiJson<SendMessageRequest>,
) -> ApiResult<(StatusCode, Json<SentMessage>)> {
    let sender =
        body.sender_id.map(|id| check_id("senderID", id).map_err(ApiError::unprocessable)).transpose()?;
    let message = NewMessage::parse(body.body, body.formatted_body, body.notice)?;
    let room = rooms::load(&state, id).await?;
    // The backend and organization admins send as the bot or as anyone in the room; an app
    // user as themselves, or as the bot (and pins) when they moderate the room.
    if !caller.may_manage(room.organization_id) {
        if sender.is_some_and(|sender| Some(sender) != caller.app_user()) {
            return Err(ApiError::forbidden("an app user sends only as themselves"));
        }
        if sender.is_none() || body.pin {
            standing::moderation_rank(&state, &caller, &room).await?;
        }
    }
    let idempotency = Idempotency::for_caller(caller.key(), key);
    let event = messages::send(&state, id, sender, message, idempotency.as_ref()).await?;
    // The message is out: a pin that fails now must not make the send look failed.
    let pinned = body.pin
        && match messages::pin(&state, id, &event, true).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(chatroom = id, event = %event, error = %e, "pinning the sent message failed");
                false
            }
        };
    Ok((StatusCode::CREATED, Json(SentMessage { event_id: event.to_string(), pinned })))
}

/// Reads a chatroom's messages, newest first, a page at a time (the backend, organization
/// admins, and users holding a role in the room who are not banned from it); with `search`,
/// only those that match. Messages show their latest edit by their sender.
#[utoipa::path(
    get, path = "/chatrooms/{roomID}/messages", tag = "messages",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1), HistoryQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, description = "Bad roomID or limit, an empty or over-long search, or a from that is not a page token `next` gave", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller may not read this room", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 409, description = "The room is end-to-end encrypted (`room_encrypted`): its members' clients read it, the service cannot", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn list_messages(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<MessagePage>> {
    let limit = page_size(query.limit)?;
    check_page_token(query.from.as_deref())?;
    let term = query.search.as_deref().map(parse_search).transpose()?;
    let room = rooms::load(&state, id).await?;
    caller.require_read(room.id, room.organization_id, &room.roles)?;
    if let Some(me) = caller.app_user().filter(|_| !caller.may_manage(room.organization_id)) {
        if room_moderation::is_banned(&state, id, me).await? {
            return Err(ApiError::forbidden(format!("you are banned from chatroom {id}")));
        }
    }
    let from = query.from.as_deref();
    let (entries, next) = match term {
        None => messages::history(&state, id, from, limit).await?,
        Some(term) => {
            messages::search(&state, &messages::room_scope(&state, id).await?, &term, from, limit).await?
        }
    };
    Ok(Json(MessagePage { entries: entries.into_iter().map(MessageEntry::from).collect(), next }))
}

/// Searches the messages of an organization's rooms the caller may read, newest first: every
/// room for the backend and the organization's admins, else the rooms the app user holds a
/// role in and is not banned from (none: an empty page). Through the homeserver's own search;
/// redacted messages never come back, edited ones show their latest text.
#[utoipa::path(
    get, path = "/organizations/{organizationID}/messages", tag = "messages",
    params(("organizationID" = i64, Path, description = "Id of the organization", minimum = 1), SearchQuery),
    responses(
        (status = 200, description = "A page of matching messages, each with its room", body = MessagePage),
        (status = 400, description = "Bad organizationID or limit, an empty or over-long search, or a from that is not a page token `next` gave", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn search_organization_messages(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(organization)): ApiPath<Id>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<MessagePage>> {
    let limit = page_size(query.limit)?;
    check_page_token(query.from.as_deref())?;
    let term = parse_search(&query.search)?;
    let reader = caller.app_user().filter(|_| !caller.may_manage(organization));
    let scope = messages::organization_scope(&state, organization, reader).await?;
    let (entries, next) = messages::search(&state, &scope, &term, query.from.as_deref(), limit).await?;
    Ok(Json(MessagePage { entries: entries.into_iter().map(MessageEntry::from).collect(), next }))
}

fn page_size(limit: Option<u32>) -> ApiResult<u32> {
    let limit = limit.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    Ok(limit)
}

fn check_page_token(from: Option<&str>) -> ApiResult<()> {
    match from {
        Some(from) if from.is_empty() || from.len() > 512 || !from.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(ApiError::bad_request("from must be a page token as `next` gave it"))
        }
        _ => Ok(()),
    }
}

/// A bad search term is a bad query parameter: `400`, as a bad `limit` is.
fn parse_search(raw: &str) -> ApiResult<SearchTerm> {
    SearchTerm::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A history truncation's progress.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TruncationStatus {
    /// Synapse's purge id: poll `GET /chatrooms/{roomID}/truncate/{purgeID}` while `active`.
    #[serde(rename = "purgeID")]
    pub purge_id: String,
    /// `active`, `complete` or `failed`.
    pub status: String,
}

fn status_name(status: PurgeStatus) -> &'static str {
    match status {
        PurgeStatus::Active => "active",
        PurgeStatus::Complete => "complete",
        PurgeStatus::Failed => "failed",
    }
}

/// Purges a chatroom's message history on the homeserver (the backend, organization admins
/// and the room's admins). Members, settings and the rest of the room's state stay; messages
/// sent afterwards are kept. `204` when the purge finished within the request's wait, `202`
/// with a purge id to poll otherwise.
#[utoipa::path(
    post, path = "/chatrooms/{roomID}/truncate", tag = "messages",
    params(("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1)),
    responses(
        (status = 204, description = "The history is gone"),
        (status = 202, description = "The purge is running: poll its status", body = TruncationStatus),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller is neither the backend, an organization admin nor one of the room's admins", body = ErrorBody),
        (status = 404, description = "No such chatroom", body = ErrorBody),
        (status = 409, description = "The room is not on the homeserver yet (`room_pending`), a truncation of it is running (`truncation_running`), or it is end-to-end encrypted (`room_encrypted`)", body = ErrorBody),
        (status = 502, description = "The homeserver refused (`homeserver_refused`), or its purge failed (`truncation_failed`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn truncate_history(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(Id(id)): ApiPath<Id>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    require_room_admin(&state, &caller, id).await?;
    let truncation = messages::truncate(&state, id).await?;
    if truncation.status == PurgeStatus::Complete {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let body =
        TruncationStatus { purge_id: truncation.purge_id, status: status_name(truncation.status).to_owned() };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// How a history truncation is going.
#[utoipa::path(
    get, path = "/chatrooms/{roomID}/truncate/{purgeID}", tag = "messages",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("purgeID" = String, Path, description = "The purge id a `202` gave"),
    ),
    responses(
        (status = 200, description = "The purge's status", body = TruncationStatus),
        (status = 400, description = "roomID is not a positive integer", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller is neither the backend, an organization admin nor one of the room's admins", body = ErrorBody),
        (status = 404, description = "No such chatroom, or no purge of this room with that id", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn truncation_status(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, purge_id)): ApiPath<(Id, String)>,
) -> ApiResult<Json<TruncationStatus>> {
    let Id(id) = id;
    require_room_admin(&state, &caller, id).await?;
    if purge_id.is_empty() || purge_id.len() > 255 || !purge_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found("no such purge"));
    }
    let status = messages::purge_status(&state, id, &purge_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such purge"))?;
    Ok(Json(TruncationStatus { purge_id, status: status_name(status).to_owned() }))
}

/// Pins a message of the chatroom (`m.room.pinned_events`; the backend, organization admins,
/// the room's admins and moderators). Pinning twice changes nothing. Pins made in Matrix
/// clients stay; room responses list them as of the room's last sync.
#[utoipa::path(
    put, path = "/chatrooms/{roomID}/pins/{eventID}", tag = "messages",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("eventID" = String, Path, description = "The message's Matrix event id"),
    ),
    responses(
        (status = 200, description = "Pinned: the room's pinned messages", body = PinnedEvents),
        (status = 400, description = "Bad roomID or eventID", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller neither manages the organization nor moderates the room, or the message's sender is one of the room's admins or moderators at or above the caller's rank", body = ErrorBody),
        (status = 404, description = "No such chatroom, or no such message in it", body = ErrorBody),
        (status = 409, description = "The room is not on the homeserver yet (`room_pending`)", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn pin_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, event)): ApiPath<(Id, String)>,
) -> ApiResult<Json<PinnedEvents>> {
    change_pin(state, caller, id, event, true).await
}

/// Unpins a message of the chatroom.
#[utoipa::path(
    delete, path = "/chatrooms/{roomID}/pins/{eventID}", tag = "messages",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("eventID" = String, Path, description = "The message's Matrix event id"),
    ),
    responses(
        (status = 200, description = "Unpinned: the room's pinned messages", body = PinnedEvents),
        (status = 400, description = "Bad roomID or eventID", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller neither manages the organization nor moderates the room", body = ErrorBody),
        (status = 404, description = "No such chatroom, or the message is not pinned", body = ErrorBody),
        (status = 409, description = "The room is not on the homeserver yet (`room_pending`)", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn unpin_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, event)): ApiPath<(Id, String)>,
) -> ApiResult<Json<PinnedEvents>> {
    change_pin(state, caller, id, event, false).await
}

/// The room's pinned messages after a change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PinnedEvents {
    #[serde(rename = "pinnedEventIDs")]
    pub pinned_event_ids: Vec<String>,
}

async fn change_pin(
    state: AppState,
    caller: Caller,
    id: Id,
    event: String,
    pinned: bool,
) -> ApiResult<Json<PinnedEvents>> {
    let Id(id) = id;
    let event = parse_event_id(&event)?;
    require_staff(&state, &caller, id).await?;
    let pinned_event_ids = messages::pin(&state, id, &event, pinned).await?;
    Ok(Json(PinnedEvents { pinned_event_ids }))
}

fn parse_event_id(event: &str) -> ApiResult<ruma::OwnedEventId> {
    ruma::EventId::parse(event)
        .map_err(|e| ApiError::bad_request(format!("eventID {event:?} is not a Matrix event id: {e}")))
}

/// The backend, organization admins, the room's admins and moderators (not banned); their rank.
async fn require_staff(state: &AppState, caller: &Caller, id: i64) -> ApiResult<i64> {
    standing::moderation_rank(state, caller, &rooms::load(state, id).await?).await
}

/// The backend, organization admins and the room's own admins (not banned).
async fn require_room_admin(state: &AppState, caller: &Caller, id: i64) -> ApiResult<()> {
    let rank = require_staff(state, caller, id).await?;
    if rank < Role::rank(Some(Role::Admin)) {
        return Err(ApiError::forbidden(format!("only an admin of chatroom {id} may truncate its history")));
    }
    Ok(())
}

/// Redacts a message of the chatroom on the homeserver (the backend, organization admins, the
/// room's admins and moderators). Redacting it again changes nothing.
#[utoipa::path(
    delete, path = "/chatrooms/{roomID}/messages/{eventID}", tag = "messages",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("eventID" = String, Path, description = "The message's Matrix event id"),
        RedactQuery,
    ),
    responses(
        (status = 204, description = "Redacted"),
        (status = 400, description = "Bad roomID or eventID", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "The caller neither manages the organization nor moderates the room", body = ErrorBody),
        (status = 404, description = "No such chatroom, or no such message in it", body = ErrorBody),
        (status = 422, description = "A reason over 500 characters", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn redact_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, event)): ApiPath<(Id, String)>,
    ApiQuery(query): ApiQuery<RedactQuery>,
) -> ApiResult<StatusCode> {
    let Id(id) = id;
    let event = parse_event_id(&event)?;
    let reason = room_moderation::parse_reason(query.reason)?;
    let rank = require_staff(&state, &caller, id).await?;
    messages::redact(&state, id, &event, rank, reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditMessageRequest {
    /// The new plain text, 1 to 16,000 characters.
    #[schema(min_length = 1, max_length = 16000)]
    pub body: String,
    /// The new HTML (`org.matrix.custom.html`), at most 32 KiB.
    pub formatted_body: Option<String>,
}

/// Edits a message (an `m.replace` on the homeserver, sent as the message's sender): the
/// backend edits the bot's messages, an app user their own; anyone else is refused (`403`,
/// `not_the_sender`). The sender must still be allowed to post. History and search then show
/// the new text, with `edited` and `editedAt`; a blocklist applies to it as to a new message.
#[utoipa::path(
    patch, path = "/chatrooms/{roomID}/messages/{eventID}", tag = "messages",
    params(
        ("roomID" = i64, Path, description = "Id of the chatroom", minimum = 1),
        ("eventID" = String, Path, description = "The message's Matrix event id"),
    ),
    request_body = EditMessageRequest,
    responses(
        (status = 200, description = "Edited: the message as history now shows it", body = MessageEntry),
        (status = 400, description = "Malformed JSON, or a bad roomID or eventID", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the message's sender (`not_the_sender`), or the sender may not post (`cannot_post`: banned, muted, read-only room)", body = ErrorBody),
        (status = 404, description = "No such chatroom, or no such (unredacted) message in it", body = ErrorBody),
        (status = 409, description = "The room is archived (`room_archived`) or end-to-end encrypted (`room_encrypted`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "An empty or too long body, formattedBody over 32 KiB, a message too big for one Matrix event, a sender who no longer holds a role in the room, or the body is not a JSON object", body = ErrorBody),
        (status = 502, description = "The homeserver refused (code `homeserver_refused`)", body = ErrorBody),
        (status = 503, description = "Homeserver unavailable (with `Retry-After`)", body = ErrorBody),
        (status = 500, description = "A fault of ours, or the homeserver refuses this service's own credentials (code `homeserver_credentials_refused`)", body = ErrorBody),
    ),
    security(("api_token" = []), ("personal_access_token" = []), ("bearer" = []))
)]
pub async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, event)): ApiPath<(Id, String)>,
    ApiJson(body): ApiJson<EditMessageRequest>,
) -> ApiResult<Json<MessageEntry>> {
    let Id(id) = id;
    let event = parse_event_id(&event)?;
    let message = NewMessage::parse(body.body, body.formatted_body, false)?;
    // The backend speaks as the bot; an app user as themselves. The sender check is the
    // use case's: it reads who sent the message.
    let edited = messages::edit(&state, id, &event, caller.app_user(), message).await?;
    Ok(Json(MessageEntry::from(edited)))
}
