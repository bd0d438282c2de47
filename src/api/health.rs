//! Liveness and readiness probes.

use axum::{
    extract::State,
    http::{header, HeaderName, StatusCode},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when a dependency is down.
    pub status: &'static str,
    /// Per dependency: `ok`, or what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub homeserver: Option<String>,
    /// Whether the homeserver reaches the service with its pushes (its appservice ping):
    /// `ok (<n> ms)`, or what failed. Reported, not judged: an instance that the homeserver
    /// cannot reach still serves the API, and taking it out of rotation would not fix that.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appservice: Option<String>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok", database: None, homeserver: None, appservice: None })
}

/// The database is reachable, and the homeserver answers and accepts the service's own tokens
/// (appservice and admin, checked with `whoami`); a refused token is reported as such.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "A dependency is unreachable, or the homeserver refuses the service's credentials", body = Health),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let appservice_id = &state.config.matrix.appservice_id;
    let (database, homeserver, pushed) = tokio::join!(
        state.store.ping(),
        state.homeserver.ping(),
        // Bounded: a slow ping is reported, it does not hold the probe.
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            state.homeserver.ping_appservice(appservice_id)
        )
    );
    let ready = database.is_ok() && homeserver.is_ok();
    let describe = |ok: bool, err: String| if ok { "ok".to_owned() } else { err };
    let health = Health {
        status: if ready { "ok" } else { "unavailable" },
        database: Some(describe(database.is_ok(), database.err().map(|e| e.to_string()).unwrap_or_default())),
        homeserver: Some(describe(
            homeserver.is_ok(),
            homeserver.err().map(|e| e.to_string()).unwrap_or_default(),
        )),
        appservice: Some(match pushed {
            Ok(Ok(ms)) => format!("ok ({ms} ms)"),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the homeserver's ping took over 2 s".to_owned(),
        }),
    };
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(health))
}

/// Metrics in the OpenMetrics text format, which Prometheus scrapes: sync counters, HTTP
/// request and homeserver call durations (histograms), the sync backlog and rooms by sync status.
#[utoipa::path(
    get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Metrics", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"))
)]
pub async fn metrics(State(state): State<AppState>) -> ([(HeaderName, &'static str); 1], String) {
    let backlog = state
        .store
        .backlog()
        .await
        .inspect_err(|e| tracing::warn!(error = %e, "reading the sync backlog for metrics"))
        .ok();
    let text = state.metrics.render(backlog.as_ref(), state.clock.now_ms());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}
