//! Background loops: the outbox worker retries pending rooms; the scheduler starts the
//! deletions whose time has come. Both survive restarts because their work is in the database.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use tokio::{
    sync::watch,
    task::{JoinHandle, JoinSet},
};

use super::Reconciler;
use crate::{
    clock::Clock,
    config::SyncConfig,
    domain::ChatroomId,
    metrics::Metrics,
    store::{
        chatrooms, idempotency,
        jobs::{self, JobKey},
        moderation, organizations, Store,
    },
};

pub struct BackgroundTasks {
    shutdown: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
    reconciler: Arc<Reconciler>,
    store: Store,
}

impl BackgroundTasks {
    /// Stops the loops after their current attempt and releases this instance's room leases.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for handle in self.handles {
            let _ = handle.await;
        }
        let released = match self.store.pool().acquire().await {
            Ok(mut conn) => jobs::release_all(&mut conn, self.reconciler.owner()).await,
            Err(e) => Err(e),
        };
        if let Err(e) = released {
            tracing::warn!(error = %e, "releasing room leases failed; they expire by themselves");
        }
    }
}

pub fn spawn_background(
    reconciler: Arc<Reconciler>,
    store: Store,
    clock: Arc<dyn Clock>,
    config: SyncConfig,
) -> BackgroundTasks {
    let (shutdown, stopped) = watch::channel(false);
    let worker = tokio::spawn(run_worker(
        reconciler.clone(),
        store.clone(),
        clock.clone(),
        config.clone(),
        stopped.clone(),
    ));
    let mut handles = vec![worker];
    if let Some(interval) = config.reconcile_interval {
        handles.push(tokio::spawn(run_drift_checks(store.clone(), clock.clone(), interval, stopped.clone())));
    }
    handles.push(tokio::spawn(run_retired_purges(reconciler.clone(), config.clone(), stopped.clone())));
    let metrics = reconciler.metrics().clone();
    handles.push(tokio::spawn(run_scheduler(store.clone(), clock, config, metrics, stopped)));
    BackgroundTasks { shutdown, handles, reconciler, store }
}

/// Sleeps for `period` or until shutdown; true when it is time to stop.
async fn wait_or_stop(stopped: &mut watch::Receiver<bool>, period: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => *stopped.borrow(),
        _ = stopped.changed() => true,
    }
}

/// Keeps up to `concurrency` rooms converging; a slot that frees up is filled at once, so
/// one slow room (a long purge, hundreds of joins) holds up only its own slot.
async fn run_worker(
    reconciler: Arc<Reconciler>,
    store: Store,
    clock: Arc<dyn Clock>,
    config: SyncConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, JobKey> = HashMap::new();
    loop {
        let free = config.concurrency.saturating_sub(running.len());
        if free > 0 && !*stopped.borrow() {
            let due = match store.pool().acquire().await {
                Ok(mut conn) => jobs::due(&mut conn, clock.now_ms(), (free + in_flight.len()) as i64).await,
                Err(e) => Err(e),
            };
            match due {
                Ok(rooms) => {
                    let busy: HashSet<JobKey> = in_flight.values().copied().collect();
                    for id in rooms.into_iter().filter(|id| !busy.contains(id)).take(free) {
                        let reconciler = reconciler.clone();
                        let task = running.spawn(async move {
                            reconciler.converge_job(id).await;
                        });
                        in_flight.insert(task.id(), id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading due sync jobs failed"),
            }
        }
        tokio::select! {
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let task = match &done {
                    Ok((task, ())) => *task,
                    Err(e) => e.id(),
                };
                let room = in_flight.remove(&task);
                if let Err(e) = done {
                    // converge catches panics; this is a last line of defence for the loop.
                    tracing::error!(chatroom = ?room, error = %e, "a room's sync task ended abnormally");
                }
            }
            _ = tokio::time::sleep(config.worker_poll) => {}
            _ = reconciler.woken() => {}
            // An error means the sender is gone: that is a stop too.
            changed = stopped.changed() => if changed.is_err() {
                while running.join_next().await.is_some() {}
                return;
            },
        }
        if *stopped.borrow() && running.is_empty() {
            return;
        }
    }
}

/// Queues a drift check for every room the homeserver has; the worker runs them with its
/// bounded concurrency, and a room whose state differs is restored and counted.
async fn run_drift_checks(
    store: Store,
    clock: Arc<dyn Clock>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if wait_or_stop(&mut stopped, interval).await {
            return;
        }
        if let Err(e) = queue_drift_checks(&store, clock.as_ref()).await {
            tracing::warn!(error = %e, "queueing drift checks failed");
        }
    }
}

/// Queues a drift check of every room the homeserver has, and of every organization's space
/// (which makes the spaces of organizations whose rooms predate them). The rooms checked.
pub async fn queue_drift_checks(store: &Store, clock: &dyn Clock) -> sqlx::Result<usize> {
    let mut conn = store.pool().acquire().await?;
    let rooms = chatrooms::created_room_ids(&mut conn).await?;
    for &id in &rooms {
        jobs::enqueue_check(&mut conn, JobKey::Room(id), clock.now_ms()).await?;
    }
    let spaces = organizations::with_rooms_or_space(&mut conn).await?;
    for &org in &spaces {
        jobs::enqueue_check(&mut conn, JobKey::Space(org), clock.now_ms()).await?;
    }
    tracing::debug!(rooms = rooms.len(), spaces = spaces.len(), "drift checks queued");
    Ok(rooms.len())
}

/// Starts due deletions; the worker purges them alongside other rooms, each in its own slot.
async fn run_scheduler(
    store: Store,
    clock: Arc<dyn Clock>,
    config: SyncConfig,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        forget_old_idempotency_keys(&store, clock.as_ref()).await;
        if let Err(e) = start_due_deletions(&store, clock.as_ref()).await {
            tracing::warn!(error = %e, "scheduled deletions failed");
        }
        match end_due_moderation(&store, clock.as_ref()).await {
            Ok(rooms) => {
                metrics.moderation_expiries.inc_by(rooms.len() as u64);
            }
            Err(e) => tracing::warn!(error = %e, "ending due bans and mutes failed"),
        }
        if wait_or_stop(&mut stopped, config.scheduler_interval).await {
            return;
        }
    }
}

/// Purges the half-made rooms a homeserver crash left behind, apart from the worker: such a
/// purge can wait minutes for locks the crashed homeserver still holds.
async fn run_retired_purges(
    reconciler: Arc<Reconciler>,
    config: SyncConfig,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        // Cut off at shutdown: the rooms stay listed, and the next start purges them.
        tokio::select! {
            purged = reconciler.purge_retired_rooms() => if let Err(e) = purged {
                tracing::warn!(error = %e, "purging retired rooms failed");
            },
            _ = stopped.changed() => return,
        }
        if wait_or_stop(&mut stopped, config.scheduler_interval).await {
            return;
        }
    }
}

/// Idempotency keys are honoured for a day; older ones are dropped.
async fn forget_old_idempotency_keys(store: &Store, clock: &dyn Clock) {
    const KEEP_MS: i64 = 24 * 60 * 60 * 1000;
    let forgotten = match store.pool().acquire().await {
        Ok(mut conn) => idempotency::forget_before(&mut conn, clock.now_ms() - KEEP_MS).await,
        Err(e) => Err(e),
    };
    if let Err(e) = forgotten {
        tracing::warn!(error = %e, "forgetting old idempotency keys failed");
    }
}

/// Ends the bans and mutes whose time has come and queues their rooms' syncs, in one
/// transaction: each ends once, whichever instance gets there first. The rooms it queued.
pub async fn end_due_moderation(store: &Store, clock: &dyn Clock) -> sqlx::Result<Vec<ChatroomId>> {
    let now = clock.now_ms();
    let mut tx = store.begin().await?;
    let rooms = moderation::expire(&mut tx, now).await?;
    for id in &rooms {
        jobs::enqueue(&mut tx, *id, now).await?;
    }
    tx.commit().await?;
    for id in &rooms {
        tracing::info!(chatroom = id, "bans or mutes ended");
    }
    Ok(rooms)
}

/// Marks rooms whose scheduled time passed as deleted, each with its sync job, in one
/// transaction per room. The conditional update makes each deletion start exactly once,
/// whichever instance gets there first.
pub async fn start_due_deletions(store: &Store, clock: &dyn Clock) -> sqlx::Result<Vec<i64>> {
    let now = clock.now_ms();
    let due = {
        let mut conn = store.pool().acquire().await?;
        chatrooms::due_for_deletion(&mut conn, now, 100).await?
    };
    let mut started = Vec::new();
    for id in due {
        let mut tx = store.begin().await?;
        if chatrooms::mark_deleted(&mut tx, id, now).await? {
            jobs::enqueue(&mut tx, id, now).await?;
            started.push(id);
            tracing::info!(chatroom = id, "scheduled deletion started");
        }
        tx.commit().await?;
    }
    Ok(started)
}
