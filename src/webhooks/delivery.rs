//! The delivery worker: posts due deliveries to their receivers, signed, at least once, in
//! order per subscription and room, retrying on the configured schedule with the same
//! `webhook-id`. It runs apart from intake and syncs: a slow receiver holds up only its own
//! slot (and its own room's later events).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use tokio::{sync::watch, task::JoinSet};

use super::{signing, target};
use crate::{
    clock::Clock,
    config::WebhookConfig,
    metrics::Metrics,
    store::{
        webhooks::{self, Attempt, Due},
        Store,
    },
};

/// Kept of a receiver's answer or error, for the delivery log.
const MAX_ERROR_CHARS: usize = 500;

pub async fn run(
    store: Store,
    clock: Arc<dyn Clock>,
    config: WebhookConfig,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let http = match target::client(config.timeout, config.allow_private) {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for webhooks; nothing is delivered");
            return;
        }
    };
    let mut running: JoinSet<()> = JoinSet::new();
    // Attempts under way: their delivery, and its subscription.
    let mut in_flight: HashMap<tokio::task::Id, (i64, String)> = HashMap::new();
    loop {
        let free = config.concurrency.saturating_sub(running.len());
        if free > 0 && !*stopped.borrow() {
            match take_due(&store, clock.as_ref(), &config, in_flight.values(), free).await {
                Ok(taken) => {
                    for due in taken {
                        let held = (due.seq, due.subscription_id.clone());
                        let (http, store, clock, config, metrics) =
                            (http.clone(), store.clone(), clock.clone(), config.clone(), metrics.clone());
                        let task = running.spawn(async move {
                            attempt(&http, &store, clock.as_ref(), &config, &metrics, due).await;
                        });
                        in_flight.insert(task.id(), held);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading due webhook deliveries failed"),
            }
        }
        tokio::select! {
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                // A panicked attempt frees its slot too; its claim runs out and it is retried.
                let task = match &done {
                    Ok((task, ())) => *task,
                    Err(e) => e.id(),
                };
                in_flight.remove(&task);
            }
            _ = tokio::time::sleep(config.poll) => {}
            _ = stopped.changed() => {
                // Attempts under way finish (or time out); their rows say how they ended.
                while running.join_next().await.is_some() {}
                return;
            }
        }
    }
}

/// Attempts one subscription may have under way: a receiver that hangs holds at most these
/// slots, and the others go on.
fn per_subscription(config: &WebhookConfig) -> usize {
    (config.concurrency / 4).max(1)
}

async fn take_due<'a>(
    store: &Store,
    clock: &dyn Clock,
    config: &WebhookConfig,
    in_flight: impl Iterator<Item = &'a (i64, String)>,
    free: usize,
) -> sqlx::Result<Vec<Due>> {
    let mut busy: HashSet<i64> = HashSet::new();
    let mut per_sub: HashMap<String, usize> = HashMap::new();
    for (seq, sub) in in_flight {
        busy.insert(*seq);
        *per_sub.entry(sub.clone()).or_default() += 1;
    }
    let mut conn = store.pool().acquire().await?;
    let now = clock.now_ms();
    let due = webhooks::due(&mut conn, now, (free + busy.len()) as i64 * 4).await?;
    // Held past the attempt's timeout, so no other replica posts it meanwhile.
    let until = now + config.timeout.as_millis() as i64 + 5_000;
    let mut taken = Vec::new();
    for due in due.into_iter().filter(|due| !busy.contains(&due.seq)) {
        if taken.len() == free {
            break;
        }
        let slots = per_sub.entry(due.subscription_id.clone()).or_default();
        if *slots >= per_subscription(config) {
            continue;
        }
        if webhooks::claim(&mut conn, due.seq, now, until).await? {
            *slots += 1;
            taken.push(due);
        }
    }
    Ok(taken)
}

/// One attempt: posts, then records how it ended and when the next one is due.
async fn attempt(
    http: &reqwest::Client,
    store: &Store,
    clock: &dyn Clock,
    config: &WebhookConfig,
    metrics: &Metrics,
    due: Due,
) {
    let now = clock.now_ms();
    let (status_code, error) = post(http, config, &due, now / 1000).await;
    let delivered = error.is_none();
    let retry_at = (!delivered)
        .then(|| config.retry_schedule.get(due.attempts as usize).map(|delay| now + delay.as_millis() as i64))
        .flatten();
    let outcome = match (delivered, retry_at) {
        (true, _) => "delivered",
        (false, Some(_)) => "retrying",
        (false, None) => "given_up",
    };
    metrics.webhook_attempt(outcome);
    if delivered {
        metrics.webhook_delivered_after(Duration::from_millis((now - due.created_at).max(0) as u64));
    }
    if outcome == "given_up" {
        tracing::warn!(webhook_id = due.id, url = due.url, error = ?error, "webhook delivery given up");
    } else {
        tracing::debug!(webhook_id = due.id, outcome, status = ?status_code, "webhook attempt");
    }
    let attempt = Attempt { at: now, status_code, error: error.as_deref(), delivered, retry_at };
    let recorded = match store.pool().acquire().await {
        Ok(mut conn) => webhooks::record_attempt(&mut conn, due.seq, &attempt).await,
        Err(e) => Err(e),
    };
    // Unrecorded, the claim runs out and the delivery is posted again: at least once.
    if let Err(e) = recorded {
        tracing::warn!(webhook_id = due.id, error = %e, "recording a webhook attempt failed");
    }
}

/// Posts the delivery; its status code if the receiver answered, and what went wrong unless
/// it answered 2xx.
async fn post(
    http: &reqwest::Client,
    config: &WebhookConfig,
    due: &Due,
    timestamp: i64,
) -> (Option<u16>, Option<String>) {
    let url = match target::parse_url(&due.url, config.allow_private) {
        Ok(url) => url,
        Err(e) => return (None, Some(e)),
    };
    let Some(signature) = signing::sign(&due.secret, &due.id, timestamp, &due.payload) else {
        return (None, Some("the subscription's secret is unusable".into()));
    };
    let sent = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &due.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(due.payload.clone())
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => (Some(response.status().as_u16()), None),
        Ok(mut response) => {
            let status = response.status();
            // Only the start of what it said: a receiver cannot make us read a huge body.
            let mut said = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                said.extend_from_slice(&chunk);
                if said.len() >= MAX_ERROR_CHARS {
                    break;
                }
            }
            let said = truncate(&String::from_utf8_lossy(&said));
            (Some(status.as_u16()), Some(format!("the receiver answered {status}: {said}")))
        }
        Err(e) => (None, Some(truncate(&format_error(&e)))),
    }
}

fn format_error(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// The delays before each retry: the Standard Webhooks suggestion, 5 s up to 10 h, giving up
/// after about 27 hours.
pub fn default_schedule() -> Vec<Duration> {
    [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}
