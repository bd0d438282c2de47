//! The application-service API the homeserver calls: `PUT /_matrix/app/v1/transactions/{txnId}`
//! (and the legacy unprefixed path), the user and alias queries, and the ping. Answers in
//! Matrix's error shape, which Synapse reads.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header::AUTHORIZATION, HeaderMap, StatusCode},
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{
    appservice::inbox::{self, InboxError},
    rooms::{self, RoomError},
    state::AppState,
};

#[derive(Debug, Deserialize)]
pub struct LegacyToken {
    access_token: Option<String>,
}

type MatrixAnswer = (StatusCode, Json<Value>);

fn matrix_error(status: StatusCode, errcode: &str, error: &str) -> MatrixAnswer {
    (status, Json(json!({"errcode": errcode, "error": error})))
}

/// Receives a transaction of events from the homeserver.
///
/// Only the homeserver's `hs_token` (`Authorization: Bearer`, or the legacy `access_token`
/// query parameter) is accepted; anything else is a `403`. The transaction is stored before
/// the `200`; a txn id seen before is answered `200` again and not taken twice.
#[utoipa::path(
    put, path = "/_matrix/app/v1/transactions/{txnId}", tag = "appservice",
    params(("txnId" = String, Path, description = "The homeserver's transaction id")),
    request_body(content = Value, description = "`{\"events\": [...]}` as the appservice API sends it"),
    responses(
        (status = 200, description = "Stored (or stored before)", body = Value),
        (status = 400, description = "Not a transaction (`M_BAD_JSON`), a bad txnId, or more than 1,000 events", body = Value),
        (status = 403, description = "Not the homeserver's token (`M_FORBIDDEN`)", body = Value),
        (status = 500, description = "The transaction could not be stored or processed; the homeserver retries it", body = Value),
        (status = 503, description = "Another instance holds the transaction and has not finished it within 5 s; the homeserver retries it", body = Value),
    ),
    security(("hs_token" = []))
)]
pub async fn put_transaction(
    State(state): State<AppState>,
    Path(txn_id): Path<String>,
    Query(legacy): Query<LegacyToken>,
    headers: HeaderMap,
    body: Bytes,
) -> MatrixAnswer {
    if !from_homeserver(&state, &headers, &legacy) {
        return forbidden();
    }
    match inbox::receive(&state, &txn_id, &body).await {
        Ok(_) => (StatusCode::OK, Json(json!({}))),
        Err(InboxError::Invalid(message)) => matrix_error(StatusCode::BAD_REQUEST, "M_BAD_JSON", &message),
        Err(InboxError::HeldElsewhere) => matrix_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "M_UNKNOWN",
            "another instance is processing this transaction; retry it",
        ),
        Err(e) => {
            tracing::error!(error = %e, txn_id, "a homeserver transaction could not be stored or processed");
            matrix_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "the transaction could not be stored or processed; retry it",
            )
        }
    }
}

/// The legacy unprefixed path of [`put_transaction`] (older homeservers).
#[utoipa::path(
    put, path = "/transactions/{txnId}", tag = "appservice",
    params(("txnId" = String, Path, description = "The homeserver's transaction id")),
    request_body(content = Value, description = "As for `/_matrix/app/v1/transactions/{txnId}`"),
    responses(
        (status = 200, description = "Stored (or stored before)", body = Value),
        (status = 400, description = "Not a transaction, a bad txnId, or more than 1,000 events", body = Value),
        (status = 403, description = "Not the homeserver's token", body = Value),
        (status = 500, description = "The transaction could not be stored or processed; the homeserver retries it", body = Value),
        (status = 503, description = "Another instance holds the transaction and has not finished it within 5 s; the homeserver retries it", body = Value),
    ),
    security(("hs_token" = []))
)]
pub async fn put_legacy_transaction(
    state: State<AppState>,
    txn_id: Path<String>,
    legacy: Query<LegacyToken>,
    headers: HeaderMap,
    body: Bytes,
) -> MatrixAnswer {
    put_transaction(state, txn_id, legacy, headers, body).await
}

/// The homeserver's token from either place it may be sent, checked.
fn from_homeserver(state: &AppState, headers: &HeaderMap, legacy: &LegacyToken) -> bool {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    inbox::is_homeserver(state, bearer.or(legacy.access_token.as_deref()))
}

fn forbidden() -> MatrixAnswer {
    matrix_error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "not the homeserver's token")
}

/// Answers the homeserver's question whether a user of the namespace exists.
///
/// An app user's (`@app_<id>`) account is made then, as the specification asks, and the answer
/// is `200`; a deactivated app user, or any other id, is `404 M_NOT_FOUND`.
#[utoipa::path(
    get, path = "/_matrix/app/v1/users/{userId}", tag = "appservice",
    params(("userId" = String, Path, description = "The Matrix user id asked about")),
    responses(
        (status = 200, description = "The user exists (made now if needed)", body = Value),
        (status = 403, description = "Not the homeserver's token (`M_FORBIDDEN`)", body = Value),
        (status = 404, description = "No such user of this service (`M_NOT_FOUND`)", body = Value),
        (status = 500, description = "The account could not be made; ask again", body = Value),
    ),
    security(("hs_token" = []))
)]
pub async fn query_user(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Query(legacy): Query<LegacyToken>,
    headers: HeaderMap,
) -> MatrixAnswer {
    if !from_homeserver(&state, &headers, &legacy) {
        return forbidden();
    }
    let not_found = || matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such user of this service");
    let Some(user) = ruma::UserId::parse(&user_id).ok().and_then(|id| state.homeserver.ids().app_user(&id))
    else {
        return not_found();
    };
    match rooms::provision_account(&state, user).await {
        Ok(_) => (StatusCode::OK, Json(json!({}))),
        Err(RoomError::UserDeactivated(_)) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, user, "making an account the homeserver asked about failed");
            matrix_error(StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN", "the account could not be made")
        }
    }
}

/// Answers the homeserver's question whether a room alias of the namespace exists.
///
/// The service makes its aliases with their rooms and never on demand, so an alias the
/// homeserver does not know is `404 M_NOT_FOUND` (a room still being created gets it then).
#[utoipa::path(
    get, path = "/_matrix/app/v1/rooms/{roomAlias}", tag = "appservice",
    params(("roomAlias" = String, Path, description = "The room alias asked about")),
    responses(
        (status = 403, description = "Not the homeserver's token (`M_FORBIDDEN`)", body = Value),
        (status = 404, description = "Not made on demand (`M_NOT_FOUND`)", body = Value),
    ),
    security(("hs_token" = []))
)]
pub async fn query_alias(
    State(state): State<AppState>,
    Path(_alias): Path<String>,
    Query(legacy): Query<LegacyToken>,
    headers: HeaderMap,
) -> MatrixAnswer {
    if !from_homeserver(&state, &headers, &legacy) {
        return forbidden();
    }
    matrix_error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "this service makes its rooms' aliases with the rooms")
}

/// The homeserver's ping (`POST /_matrix/client/v1/appservice/{id}/ping` makes it send one):
/// proof that it reaches the service with its token.
#[utoipa::path(
    post, path = "/_matrix/app/v1/ping", tag = "appservice",
    request_body(content = Value, description = "`{\"transaction_id\": ...}`"),
    responses(
        (status = 200, description = "Heard", body = Value),
        (status = 403, description = "Not the homeserver's token (`M_FORBIDDEN`)", body = Value),
    ),
    security(("hs_token" = []))
)]
pub async fn ping(
    State(state): State<AppState>,
    Query(legacy): Query<LegacyToken>,
    headers: HeaderMap,
) -> MatrixAnswer {
    if !from_homeserver(&state, &headers, &legacy) {
        return forbidden();
    }
    (StatusCode::OK, Json(json!({})))
}
