//! Converging the homeserver to the database: the plan (pure), the reconciler (applies it for
//! one room at a time), the worker (retries the outbox) and the scheduler (timed deletions).

mod locks;
pub mod plan;
mod reconciler;
mod wait;
mod worker;

pub use reconciler::{Reconciler, SyncError, SyncOutcome};
pub use wait::{request_wait, with_request_wait};
pub use worker::{
    end_due_moderation, queue_drift_checks, spawn_background, start_due_deletions, BackgroundTasks, DriftPass,
};
