//! The application-service API the homeserver calls: `PUT /_matrix/app/v1/transactions/{txnId}`
//! (and the legacy unprefixed path). Answers in Matrix's error shape, which Synapse reads.

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
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    if !inbox::is_homeserver(&state, bearer.or(legacy.access_token.as_deref())) {
        return matrix_error(StatusCode::FORBIDDEN, "M_FORBIDDEN", "not the homeserver's token");
    }
    match inbox::receive(&state, &txn_id, &body).await {
        Ok(_) => (StatusCode::OK, Json(json!({}))),
        Err(InboxError::Invalid(message)) => matrix_error(StatusCode::BAD_REQUEST, "M_BAD_JSON", &message),
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
