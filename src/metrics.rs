//! What operators watch, served at `/metrics` in the OpenMetrics text format (which Prometheus
//! scrapes) by the `prometheus-client` crate: counters of sync outcomes, histograms of HTTP
//! requests and homeserver calls, gauges of the sync backlog.

use std::{
    sync::atomic::AtomicU64,
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use crate::store::jobs::Backlog;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    /// The route's template (`/chatrooms/{roomID}`), so ids do not make a series each.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HomeserverLabels {
    operation: &'static str,
    /// `success`, or the answer's class ([`crate::matrix::HomeserverError::outcome`]).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    /// `word`, `pattern` or `link`.
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncStatusLabels {
    sync_status: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to ~33 s: from a cached read to a write that waits out its retries.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub syncs_succeeded: Counter,
    pub syncs_failed: Counter,
    pub drift_repairs: Counter,
    pub rooms_created: Counter,
    pub rooms_purged: Counter,
    pub half_made_rooms_retired: Counter,
    /// Rooms whose bans or mutes ran out, counted once per room and scheduler pass.
    pub moderation_expiries: Counter,
    webhook_attempts: Family<OutcomeLabels, Counter>,
    webhook_latency: Histogram,
    messages_blocked: Family<RuleLabels, Counter>,
    client_moderation: Family<OutcomeLabels, Counter>,
    http_requests: Histograms<HttpLabels>,
    homeserver_calls: Histograms<HomeserverLabels>,
    homeserver_queue: Histograms<OperationLabels>,
    jobs_pending: Gauge,
    oldest_job_age: Gauge<f64, AtomicU64>,
    rooms: Family<SyncStatusLabels, Gauge>,
    spaces: Family<SyncStatusLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let syncs_succeeded = counter(
            &mut registry,
            "chatrooms_syncs_succeeded",
            "Room syncs that brought the homeserver in line",
        );
        let syncs_failed = counter(
            &mut registry,
            "chatrooms_syncs_failed",
            "Room sync attempts that failed (retried or failed)",
        );
        let drift_repairs = counter(
            &mut registry,
            "chatrooms_drift_repairs",
            "Rooms changed on the homeserver behind our back and restored",
        );
        let rooms_created = counter(&mut registry, "chatrooms_rooms_created", "Matrix rooms created");
        let rooms_purged =
            counter(&mut registry, "chatrooms_rooms_purged", "Matrix rooms deleted and purged");
        let half_made_rooms_retired = counter(
            &mut registry,
            "chatrooms_half_made_rooms_retired",
            "Rooms a homeserver crash left half-made, purged and created afresh",
        );
        let moderation_expiries = counter(
            &mut registry,
            "chatrooms_moderation_expiries",
            "Rooms whose timed bans or mutes ran out and were queued for a sync",
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "chatrooms_webhook_attempts",
            "Webhook delivery attempts, by outcome: delivered, retrying, given_up",
            webhook_attempts.clone(),
        );
        let webhook_latency = duration_histogram();
        registry.register(
            "chatrooms_webhook_delivery_latency_seconds",
            "From an event to its delivery's 2xx, retries included",
            webhook_latency.clone(),
        );
        let messages_blocked = Family::<RuleLabels, Counter>::default();
        registry.register(
            "chatrooms_messages_blocked",
            "Messages redacted for breaking a blocklist, by the kind of rule",
            messages_blocked.clone(),
        );
        let client_moderation = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "chatrooms_client_moderation",
            "Bans, unbans and kicks done in Matrix clients, by outcome: adopted or reverted",
            client_moderation.clone(),
        );
        let http_requests: Histograms<HttpLabels> = Family::new_with_constructor(duration_histogram);
        registry.register(
            "chatrooms_http_request_duration_seconds",
            "HTTP requests served, by method, route and status",
            http_requests.clone(),
        );
        let homeserver_calls: Histograms<HomeserverLabels> = Family::new_with_constructor(duration_histogram);
        registry.register(
            "chatrooms_homeserver_request_duration_seconds",
            "Calls to the homeserver, by operation and outcome",
            homeserver_calls.clone(),
        );
        let homeserver_queue: Histograms<OperationLabels> = Family::new_with_constructor(duration_histogram);
        registry.register(
            "chatrooms_homeserver_queue_seconds",
            "How long calls to the homeserver waited for a free slot, by operation",
            homeserver_queue.clone(),
        );
        let jobs_pending = Gauge::default();
        registry.register(
            "chatrooms_sync_jobs_pending",
            "Rooms waiting for a sync, drift check or deletion that is still being retried",
            jobs_pending.clone(),
        );
        let oldest_job_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "chatrooms_sync_jobs_oldest_age_seconds",
            "How long the longest-waiting of those rooms has waited (0 with none)",
            oldest_job_age.clone(),
        );
        let rooms = Family::<SyncStatusLabels, Gauge>::default();
        registry.register("chatrooms_rooms", "Live rooms by sync status", rooms.clone());
        let spaces = Family::<SyncStatusLabels, Gauge>::default();
        registry.register("chatrooms_spaces", "Organizations' spaces by sync status", spaces.clone());
        Self {
            registry,
            syncs_succeeded,
            syncs_failed,
            drift_repairs,
            rooms_created,
            rooms_purged,
            half_made_rooms_retired,
            moderation_expiries,
            webhook_attempts,
            webhook_latency,
            messages_blocked,
            client_moderation,
            http_requests,
            homeserver_calls,
            homeserver_queue,
            jobs_pending,
            oldest_job_age,
            rooms,
            spaces,
        }
    }
}

impl Metrics {
    pub fn webhook_attempt(&self, outcome: &'static str) {
        self.webhook_attempts.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn webhook_delivered_after(&self, latency: Duration) {
        self.webhook_latency.observe(latency.as_secs_f64());
    }

    pub fn message_blocked(&self, rule: &'static str) {
        self.messages_blocked.get_or_create(&RuleLabels { rule }).inc();
    }

    /// `adopted` or `reverted`.
    pub fn client_moderation(&self, outcome: &'static str) {
        self.client_moderation.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn observe_homeserver_call(&self, operation: &'static str, outcome: &'static str, elapsed: Duration) {
        self.homeserver_calls
            .get_or_create(&HomeserverLabels { operation, outcome })
            .observe(elapsed.as_secs_f64());
    }

    pub fn observe_homeserver_queue(&self, operation: &'static str, waited: Duration) {
        self.homeserver_queue.get_or_create(&OperationLabels { operation }).observe(waited.as_secs_f64());
    }

    /// The exposition, with the backlog gauges as of `now_ms` (read from the database per scrape,
    /// so every replica reports the shared outbox; `None` when it could not be read keeps the
    /// last values).
    pub fn render(&self, backlog: Option<&Backlog>, now_ms: i64) -> String {
        if let Some(backlog) = backlog {
            self.set_backlog(backlog, now_ms);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    fn set_backlog(&self, backlog: &Backlog, now_ms: i64) {
        self.jobs_pending.set(backlog.pending);
        let age_ms = backlog.oldest_queued_at.map_or(0, |queued| (now_ms - queued).max(0));
        self.oldest_job_age.set(age_ms as f64 / 1000.0);
        for (gauge, counts) in [(&self.rooms, &backlog.rooms), (&self.spaces, &backlog.spaces)] {
            for (sync_status, n) in
                [("synced", counts.synced), ("pending", counts.pending), ("failed", counts.failed)]
            {
                gauge.get_or_create(&SyncStatusLabels { sync_status }).set(n);
            }
        }
    }
}

/// Middleware: times every request by its route template and answer.
pub async fn track_http(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Known methods only: any token is a valid HTTP method, and each would make a series.
    let method = match *request.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::PATCH
        | Method::DELETE
        | Method::OPTIONS => request.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let labels = HttpLabels { method, route, status: response.status().as_u16() };
    metrics.http_requests.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::jobs::ByStatus;

    #[test]
    fn the_exposition_carries_counters_histograms_and_backlog_gauges() {
        let metrics = Metrics::default();
        metrics.syncs_succeeded.inc();
        metrics.observe_homeserver_call("create room", "success", Duration::from_millis(3));
        let backlog = Backlog {
            pending: 2,
            oldest_queued_at: Some(1_000),
            rooms: ByStatus { synced: 5, pending: 1, failed: 1 },
            spaces: ByStatus { synced: 2, pending: 0, failed: 1 },
        };
        let text = metrics.render(Some(&backlog), 3_500);
        assert!(text.contains("\nchatrooms_syncs_succeeded_total 1\n"), "{text}");
        assert!(
            text.contains(r#"chatrooms_homeserver_request_duration_seconds_count{operation="create room",outcome="success"} 1"#),
            "{text}"
        );
        let bucket = |le: &str| {
            format!(
                r#"chatrooms_homeserver_request_duration_seconds_bucket{{le="{le}",operation="create room",outcome="success"}}"#
            )
        };
        assert!(text.contains(&format!("{} 0\n", bucket("0.002"))), "{text}");
        assert!(text.contains(&format!("{} 1\n", bucket("0.004"))), "{text}");
        assert!(text.contains("\nchatrooms_sync_jobs_pending 2\n"), "{text}");
        assert!(text.contains("\nchatrooms_sync_jobs_oldest_age_seconds 2.5\n"), "{text}");
        assert!(text.contains("chatrooms_rooms{sync_status=\"failed\"} 1\n"), "{text}");
        assert!(text.contains("chatrooms_spaces{sync_status=\"failed\"} 1\n"), "{text}");
        assert!(text.contains("chatrooms_spaces{sync_status=\"synced\"} 2\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
