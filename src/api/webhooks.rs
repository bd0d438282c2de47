//! Webhook subscriptions of the backend, and each one's delivery log.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{
    auth::Caller,
    clock::to_datetime,
    error::{ApiError, ApiResult, ErrorBody},
    state::AppState,
    store::webhooks::{Delivery, Subscription},
    webhooks::{
        subscriptions::{self, NewSubscription, SubscriptionError},
        EventType,
    },
};

impl From<SubscriptionError> for ApiError {
    fn from(err: SubscriptionError) -> Self {
        match err {
            SubscriptionError::Invalid(_) => ApiError::unprocessable(err.to_string()),
            SubscriptionError::NotFound(_) => ApiError::not_found(err.to_string()),
            SubscriptionError::TooMany => ApiError::conflict("too_many_subscriptions", err.to_string()),
            SubscriptionError::Database(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// The receiver: `http` or `https`, at most 2,048 characters. Loopback and private
    /// addresses are refused unless the operator allows them
    /// (`CHATROOMS_WEBHOOKS_ALLOW_PRIVATE`).
    #[schema(max_length = 2048)]
    pub url: String,
    /// Only this organization's events; left out, every organization's.
    #[serde(rename = "organizationID")]
    #[schema(minimum = 1)]
    pub organization_id: Option<i64>,
    /// The events wanted; left out, all but `message.created` (which must be named).
    pub event_types: Option<Vec<EventType>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionResponse {
    pub id: String,
    pub url: String,
    #[serde(rename = "organizationID")]
    pub organization_id: Option<i64>,
    pub event_types: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The `whsec_` signing secret (Standard Webhooks); only in the answer to the creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl SubscriptionResponse {
    fn of(sub: Subscription, with_secret: bool) -> Self {
        Self {
            id: sub.id,
            url: sub.url,
            organization_id: sub.organization_id,
            event_types: sub.event_types,
            created_at: to_datetime(sub.created_at),
            secret: with_secret.then_some(sub.secret),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionList {
    pub entries: Vec<SubscriptionResponse>,
}

/// Subscribes a receiver to events.
///
/// Events are posted as the Standard Webhooks specification says: headers `webhook-id` (the
/// same on every retry of one delivery), `webhook-timestamp` and `webhook-signature`
/// (`v1,<base64 HMAC-SHA256 of id.timestamp.body>` keyed with the secret), and the body
/// `{"type", "timestamp", "data"}`. A `2xx` answer is a delivery; anything else is retried
/// after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, then given up. A room's events arrive
/// in order.
#[utoipa::path(
    post, path = "/webhooks", tag = "webhooks",
    request_body = SubscriptionRequest,
    responses(
        (status = 201, description = "Subscribed; the answer holds the signing secret", body = SubscriptionResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 409, description = "100 subscriptions exist already (`too_many_subscriptions`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A bad or private url, organizationID below 1, an unknown or empty eventTypes, wrong types", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SubscriptionRequest>,
) -> ApiResult<(StatusCode, Json<SubscriptionResponse>)> {
    caller.require_backend()?;
    let new = NewSubscription {
        url: body.url,
        organization_id: body.organization_id,
        event_types: body
            .event_types
            .map(|kinds| kinds.iter().map(|kind| kind.as_str().to_owned()).collect()),
    };
    let subscription = subscriptions::create(&state, new).await?;
    Ok((StatusCode::CREATED, Json(SubscriptionResponse::of(subscription, true))))
}

/// Lists the webhook subscriptions (without their secrets), oldest first.
#[utoipa::path(
    get, path = "/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "Every subscription", body = SubscriptionList),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<SubscriptionList>> {
    caller.require_backend()?;
    let entries =
        subscriptions::list(&state).await?.into_iter().map(|sub| SubscriptionResponse::of(sub, false));
    Ok(Json(SubscriptionList { entries: entries.collect() }))
}

#[derive(Debug, Deserialize)]
pub struct SubscriptionPath {
    #[serde(rename = "subscriptionID")]
    id: String,
}

/// One webhook subscription (without its secret).
#[utoipa::path(
    get, path = "/webhooks/{subscriptionID}", tag = "webhooks",
    params(("subscriptionID" = String, Path, description = "Id of the subscription")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionResponse),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<SubscriptionPath>,
) -> ApiResult<Json<SubscriptionResponse>> {
    caller.require_backend()?;
    Ok(Json(SubscriptionResponse::of(subscriptions::find(&state, &path.id).await?, false)))
}

/// Ends a webhook subscription; its pending deliveries are dropped.
#[utoipa::path(
    delete, path = "/webhooks/{subscriptionID}", tag = "webhooks",
    params(("subscriptionID" = String, Path, description = "Id of the subscription")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn delete_subscription(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<SubscriptionPath>,
) -> ApiResult<StatusCode> {
    caller.require_backend()?;
    subscriptions::delete(&state, &path.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next` of the previous page: deliveries older than it.
    #[param(minimum = 1)]
    pub before: Option<i64>,
}

/// One delivery: an event for this subscription and how posting it went.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryResponse {
    /// The `webhook-id` of every attempt.
    pub id: String,
    pub event_type: String,
    #[serde(rename = "roomID")]
    pub room_id: i64,
    /// `pending` (retrying), `delivered`, or `failed` (retries given up).
    pub status: String,
    pub attempts: i64,
    /// The receiver's status code at the last attempt; null if it did not answer.
    pub last_response_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryResponse {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_type: d.event_type,
            room_id: d.chatroom_id,
            status: d.status,
            attempts: d.attempts,
            last_response_code: d.last_status_code,
            last_error: d.last_error,
            created_at: to_datetime(d.created_at),
            last_attempt_at: d.last_attempt_at.and_then(to_datetime),
            next_attempt_at: d.next_attempt_at.and_then(to_datetime),
            delivered_at: d.delivered_at.and_then(to_datetime),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    /// Newest first.
    pub entries: Vec<DeliveryResponse>,
    /// `before` for the next page; null on the last.
    pub next: Option<i64>,
}

/// The subscription's delivery log, newest first.
#[utoipa::path(
    get, path = "/webhooks/{subscriptionID}/deliveries", tag = "webhooks",
    params(("subscriptionID" = String, Path, description = "Id of the subscription"), DeliveriesQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 400, description = "limit outside 1-200, before below 1, wrong types", body = ErrorBody),
        (status = 401, description = "No or invalid credentials", body = ErrorBody),
        (status = 403, description = "Not the backend", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
        (status = 500, description = "A fault of ours", body = ErrorBody),
    ),
    security(("api_token" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(path): ApiPath<SubscriptionPath>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<DeliveryPage>> {
    caller.require_backend()?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and 200, not {limit}")));
    }
    if query.before.is_some_and(|before| before < 1) {
        return Err(ApiError::bad_request("before must be a positive integer"));
    }
    let page = subscriptions::deliveries(&state, &path.id, query.before, limit).await?;
    let next = (page.len() as i64 == limit).then(|| page.last().map(|d| d.seq)).flatten();
    Ok(Json(DeliveryPage { entries: page.into_iter().map(Into::into).collect(), next }))
}
