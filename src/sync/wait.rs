//! How long a request waits for the homeserver to catch up with its change: the configured
//! default, or what the caller asked for (`Prefer: wait=N`, `respond-async`), carried in a
//! task-local for the request's duration so every use case's wait honours it.

use std::{future::Future, time::Duration};

tokio::task_local! {
    static REQUEST_WAIT: Duration;
}

/// Runs `request` with `wait` as its wait for the homeserver.
pub async fn with_request_wait<F: Future>(wait: Duration, request: F) -> F::Output {
    REQUEST_WAIT.scope(wait, request).await
}

/// The current request's wait, or `default` outside a request that asked for one.
pub fn request_wait(default: Duration) -> Duration {
    REQUEST_WAIT.try_with(|wait| *wait).unwrap_or(default)
}
