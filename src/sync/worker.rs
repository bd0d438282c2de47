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
        chatrooms, drift, idempotency,
        jobs::{self, JobKey},
        moderation, Store,
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
    appservice_id: String,
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
        let max_age_ms = config.reconcile_max_age.as_millis() as i64;
        let pace = Pace { interval, rate: config.reconcile_rate, max_age_ms, appservice_id };
        let checks =
            run_drift_checks(reconciler.clone(), store.clone(), clock.clone(), pace, stopped.clone());
        handles.push(tokio::spawn(checks));
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
            let due = match store.reader().acquire().await {
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

/// How the periodic drift pass runs: every `interval`, reading at most `rate` rooms and spaces
/// per second, none unread longer than `max_age_ms`; the service's appservice id is what the
/// homeserver's ping names.
struct Pace {
    interval: Duration,
    rate: u32,
    max_age_ms: i64,
    appservice_id: String,
}

/// The periodic drift pass: asks the homeserver to ping the service, then queues the checks
/// its pushes cannot vouch for; the worker runs them with its bounded concurrency, and a room
/// whose state differs is restored and counted.
async fn run_drift_checks(
    reconciler: Arc<Reconciler>,
    store: Store,
    clock: Arc<dyn Clock>,
    pace: Pace,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if wait_or_stop(&mut stopped, pace.interval).await {
            return;
        }
        let pushes_arrive = reconciler.pushes_arrive(&pace.appservice_id).await;
        let now = clock.now_ms();
        let queued = match store.pool().acquire().await {
            Ok(mut conn) => match drift::record_intake(&mut conn, pushes_arrive, now).await {
                Ok(proven_since) => {
                    drop(conn);
                    // Vouched for: checked since the proof began, and not longer ago than the
                    // longest a room goes unread (what no push can tell: the bot's own token
                    // used by hand, a restored homeserver).
                    let read_before = proven_since.map(|since| since.max(now - pace.max_age_ms));
                    let pass = DriftPass::paced(now, pace.interval, pace.rate, read_before);
                    queue_drift_checks(&store, &pass).await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match queued {
            Ok(queued) => tracing::debug!(queued, pushes_arrive, "drift checks queued"),
            Err(e) => tracing::warn!(error = %e, "queueing drift checks failed"),
        }
    }
}

/// What one periodic pass reads: at most `rate` rooms and spaces per second of its interval,
/// the longest-unchecked first, each read `1 / rate` seconds after the one before.
pub struct DriftPass(drift::Pass);

impl DriftPass {
    /// `read_before`: rooms and spaces checked at or after it are skipped (`None`: none are).
    pub fn paced(now: i64, interval: Duration, rate: u32, read_before: Option<i64>) -> Self {
        let rate = i64::from(rate.max(1));
        let seconds = (interval.as_millis() as i64 / 1000).max(1);
        Self(drift::Pass {
            limit: rate.saturating_mul(seconds),
            start: now,
            spacing_ms: 1000 / rate,
            checked_before: read_before,
        })
    }

    /// Every room and space on the homeserver, due at once (tests).
    pub fn everything(now: i64) -> Self {
        Self(drift::Pass { limit: i64::MAX, start: now, spacing_ms: 0, checked_before: None })
    }
}

/// Queues the pass's drift checks (rooms and spaces that have a job already keep it), in
/// statements that each hold the writer briefly. How many it queued.
pub async fn queue_drift_checks(store: &Store, pass: &DriftPass) -> sqlx::Result<i64> {
    drift::queue(store.pool(), &pass.0).await
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
