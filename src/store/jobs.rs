//! The sync outbox. A row means "this room's homeserver state must catch up"; its `version`
//! grows with every change, so a sync that ran while another change came in leaves the row.

use sqlx::AnyConnection;

use crate::domain::ChatroomId;

/// Records that the room changed; pass the change's transaction so both commit together. The
/// room's wait (`queued_at`) goes on from an earlier pending change; after a stopped job or an
/// untried drift check it starts now.
pub async fn enqueue(conn: &mut AnyConnection, id: ChatroomId, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sync_jobs (chatroom_id, version, attempts, next_attempt_at, failed, reason, queued_at) \
         VALUES ($1, 1, 0, $2, 0, 'change', $2) \
         ON CONFLICT (chatroom_id) DO UPDATE SET version = sync_jobs.version + 1, attempts = 0, \
           refusals = 0, next_attempt_at = $2, failed = 0, reason = 'change', \
           queued_at = CASE WHEN sync_jobs.failed <> 0 OR (sync_jobs.reason = 'reconcile' AND sync_jobs.attempts = 0) \
                            THEN $2 ELSE sync_jobs.queued_at END",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Queues a drift check of the room after the homeserver reported a change; a sync queued or
/// running already gets its version bumped, so one that read the room before the change does
/// not close the job.
pub async fn enqueue_recheck(conn: &mut AnyConnection, id: ChatroomId, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sync_jobs (chatroom_id, version, attempts, next_attempt_at, failed, reason, queued_at) \
         VALUES ($1, 1, 0, $2, 0, 'reconcile', $2) \
         ON CONFLICT (chatroom_id) DO UPDATE SET version = sync_jobs.version + 1",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Queues a drift check of the room unless a sync is queued already.
pub async fn enqueue_check(conn: &mut AnyConnection, id: ChatroomId, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sync_jobs (chatroom_id, version, attempts, next_attempt_at, failed, reason, queued_at) \
         VALUES ($1, 1, 0, $2, 0, 'reconcile', $2) ON CONFLICT (chatroom_id) DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Lease {
    /// We hold the room until `locked_until`; the job's version when we took it.
    Held { version: i64, attempts: i64, refusals: i64, drift_check: bool },
    /// Nothing to do: the room is in sync.
    NoJob,
    /// Another worker (maybe another instance) holds the room.
    Busy,
    /// The last attempt failed and the next one is planned this many milliseconds from now:
    /// a second caller does not retry at once behind the first one's back.
    NotDue(i64),
    /// Retries stopped (`failed`) since the caller last looked: another worker made the last
    /// attempt. Only a new change or a forced sync starts them again.
    Stopped { last_error: Option<String> },
}

/// Takes the room's lease, so that no other worker, here or in another instance, writes it.
pub async fn lease(
    conn: &mut AnyConnection,
    id: ChatroomId,
    owner: &str,
    now: i64,
    until: i64,
) -> sqlx::Result<Lease> {
    let taken: Option<(i64, i64, i64, String)> = sqlx::query_as(
        "UPDATE sync_jobs SET locked_by = $2, locked_until = $4 \
         WHERE chatroom_id = $1 AND next_attempt_at <= $3 AND failed = 0 \
           AND (locked_until IS NULL OR locked_until < $3 OR locked_by = $2) \
         RETURNING version, attempts, refusals, reason",
    )
    .bind(id)
    .bind(owner)
    .bind(now)
    .bind(until)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((version, attempts, refusals, reason)) = taken {
        return Ok(Lease::Held { version, attempts, refusals, drift_check: reason == "reconcile" });
    }
    let job: Option<(i64, Option<i64>, i64, Option<String>)> = sqlx::query_as(
        "SELECT next_attempt_at, locked_until, failed, last_error FROM sync_jobs WHERE chatroom_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match job {
        None => Lease::NoJob,
        Some((_, Some(locked_until), _, _)) if locked_until >= now => Lease::Busy,
        Some((_, _, failed, last_error)) if failed != 0 => Lease::Stopped { last_error },
        Some((next_attempt_at, _, _, _)) => Lease::NotDue(next_attempt_at - now),
    })
}

/// Keeps holding the room while a long sync runs.
pub async fn extend_lease(
    conn: &mut AnyConnection,
    id: ChatroomId,
    owner: &str,
    until: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE sync_jobs SET locked_until = $3 WHERE chatroom_id = $1 AND locked_by = $2")
        .bind(id)
        .bind(owner)
        .bind(until)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Rooms whose sync is due and that nobody holds.
pub async fn due(conn: &mut AnyConnection, now: i64, limit: i64) -> sqlx::Result<Vec<ChatroomId>> {
    sqlx::query_scalar(
        "SELECT chatroom_id FROM sync_jobs WHERE failed = 0 AND next_attempt_at <= $1 \
         AND (locked_until IS NULL OR locked_until < $1) ORDER BY next_attempt_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

/// The sync reached `version`: drop the job unless a newer change arrived meanwhile.
/// Closes the job the attempt took; false when a newer change (or a pushed drift report) came
/// in meanwhile and the job stays for another pass.
pub async fn complete(
    conn: &mut AnyConnection,
    id: ChatroomId,
    version: i64,
    owner: &str,
) -> sqlx::Result<bool> {
    let closed = sqlx::query("DELETE FROM sync_jobs WHERE chatroom_id = $1 AND version = $2")
        .bind(id)
        .bind(version)
        .execute(&mut *conn)
        .await?;
    release(conn, id, owner).await?;
    Ok(closed.rows_affected() > 0)
}

/// What a failed attempt leaves behind.
pub struct Failure<'a> {
    pub error: &'a str,
    /// `transient`, `refused` or `configuration`.
    pub kind: &'a str,
    /// Refusals in a row, this one included (0 after a transient failure).
    pub refusals: i64,
    pub next_attempt_at: i64,
    /// Stops the retries until someone forces one (or, for a configuration error, a restart).
    pub failed: bool,
}

/// Records a failed attempt at `version` and when to try again. A change that arrived during
/// the attempt (a newer version) starts afresh: it keeps its reset counts and its due time.
pub async fn record_failure(
    conn: &mut AnyConnection,
    id: ChatroomId,
    owner: &str,
    version: i64,
    failure: &Failure<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sync_jobs SET last_error = $4, error_kind = $5, \
           attempts = CASE WHEN version = $8 THEN attempts + 1 ELSE attempts END, \
           refusals = CASE WHEN version = $8 THEN $3 ELSE 0 END, \
           next_attempt_at = CASE WHEN version = $8 THEN $6 ELSE next_attempt_at END, \
           failed = CASE WHEN version = $8 THEN $7 ELSE 0 END, \
           locked_by = NULL, locked_until = NULL \
         WHERE chatroom_id = $1 AND locked_by = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(failure.refusals)
    .bind(failure.error)
    .bind(failure.kind)
    .bind(failure.next_attempt_at)
    .bind(failure.failed as i64)
    .bind(version)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// After a restart the configuration may be fixed: rooms stopped by a refused service token
/// are retried.
pub async fn retry_configuration_failures(conn: &mut AnyConnection, now: i64) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "UPDATE sync_jobs SET failed = 0, refusals = 0, next_attempt_at = $1 \
         WHERE failed = 1 AND error_kind = 'configuration'",
    )
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}

pub async fn release(conn: &mut AnyConnection, id: ChatroomId, owner: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sync_jobs SET locked_by = NULL, locked_until = NULL WHERE chatroom_id = $1 AND locked_by = $2")
        .bind(id)
        .bind(owner)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Hands back every room this worker holds (on shutdown), so another instance need not wait
/// for the leases to expire.
pub async fn release_all(conn: &mut AnyConnection, owner: &str) -> sqlx::Result<u64> {
    let result =
        sqlx::query("UPDATE sync_jobs SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1")
            .bind(owner)
            .execute(&mut *conn)
            .await?;
    Ok(result.rows_affected())
}

/// The outbox at a glance, for the metrics gauges.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Rooms waiting for a change or deletion to reach the homeserver, or for a drift check
    /// that failed; failed jobs and untried drift checks excluded (as `syncStatus` counts).
    pub pending: i64,
    /// When the longest-waiting of those was queued, in Unix milliseconds.
    pub oldest_queued_at: Option<i64>,
    /// Live rooms by the `syncStatus` their responses show.
    pub rooms_synced: i64,
    pub rooms_pending: i64,
    pub rooms_failed: i64,
}

pub async fn backlog(conn: &mut AnyConnection) -> sqlx::Result<Backlog> {
    let (pending, oldest_queued_at): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(queued_at) FROM sync_jobs \
             WHERE failed = 0 AND NOT (reason = 'reconcile' AND attempts = 0)",
    )
    .fetch_one(&mut *conn)
    .await?;
    // The same rule as a room response's `syncStatus`: an untried drift check is not a change.
    let rooms: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CASE WHEN j.chatroom_id IS NULL OR (j.reason = 'reconcile' AND j.attempts = 0) THEN 'synced' \
                     WHEN j.failed <> 0 THEN 'failed' ELSE 'pending' END, COUNT(*) \
         FROM chatrooms c LEFT JOIN sync_jobs j ON j.chatroom_id = c.id \
         WHERE c.deleted_at IS NULL GROUP BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let count = |status: &str| rooms.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
    Ok(Backlog {
        pending,
        oldest_queued_at,
        rooms_synced: count("synced"),
        rooms_pending: count("pending"),
        rooms_failed: count("failed"),
    })
}
