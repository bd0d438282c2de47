//! The periodic drift pass's bookkeeping: when each room and space was last read back from the
//! homeserver, and since when the homeserver's pushes are known to reach the service.

use sqlx::{AnyConnection, AnyPool};

use super::jobs::JobKey;

/// Rows queued per statement: a write waits behind one such batch at most.
const QUEUE_BATCH: i64 = 200;

/// Which rooms and spaces a pass queues, and how it spreads their reads over time.
#[derive(Clone, Copy, Debug)]
pub struct Pass {
    /// At most this many rooms and spaces together.
    pub limit: i64,
    /// The first check is due at `start`, each next one this much later.
    pub start: i64,
    pub spacing_ms: i64,
    /// Rooms and spaces checked at or after this time are skipped: the homeserver's pushes
    /// reached the service since, and a foreign change would have queued a recheck at once.
    pub checked_before: Option<i64>,
}

/// Queues drift checks of the longest-unchecked rooms, then spaces, that have no job yet, in
/// bounded statements, each on a connection of its own: writes queue behind one batch at
/// most. How many it queued.
pub async fn queue(pool: &AnyPool, pass: &Pass) -> sqlx::Result<i64> {
    let mut queued = 0;
    for (jobs, column, records, live) in [
        ("sync_jobs", "chatroom_id", "chatrooms", "matrix_room_id IS NOT NULL AND deleted_at IS NULL"),
        ("space_jobs", "organization_id", "organizations", "matrix_space_id IS NOT NULL"),
    ] {
        // The pick is limited before it is numbered, so each statement reads only its batch
        // off the (checked_at, id) index.
        let sql = format!(
            "INSERT INTO {jobs} ({column}, version, attempts, next_attempt_at, failed, reason, queued_at) \
             SELECT id, 1, 0, $1 + (ROW_NUMBER() OVER (ORDER BY checked_at, id) - 1) * $2, 0, 'reconcile', $3 \
             FROM (SELECT r.id, r.checked_at FROM {records} r WHERE {live} AND r.checked_at < $4 \
                     AND NOT EXISTS (SELECT 1 FROM {jobs} j WHERE j.{column} = r.id) \
                   ORDER BY r.checked_at, r.id LIMIT $5) picked \
             WHERE true ON CONFLICT ({column}) DO NOTHING"
        );
        loop {
            let batch = QUEUE_BATCH.min(pass.limit - queued);
            if batch <= 0 {
                return Ok(queued);
            }
            let inserted = sqlx::query(&sql)
                .bind(pass.start + queued * pass.spacing_ms)
                .bind(pass.spacing_ms)
                .bind(pass.start)
                .bind(pass.checked_before.unwrap_or(i64::MAX))
                .bind(batch)
                .execute(pool)
                .await?
                .rows_affected() as i64;
            queued += inserted;
            if inserted < batch {
                break;
            }
        }
    }
    Ok(queued)
}

/// The room (or space) was read from the homeserver at `at` and left in step.
pub async fn mark_checked(conn: &mut AnyConnection, key: JobKey, at: i64) -> sqlx::Result<()> {
    let sql = match key {
        JobKey::Room(_) => "UPDATE chatrooms SET checked_at = $2 WHERE id = $1 AND checked_at < $2",
        JobKey::Space(_) => "UPDATE organizations SET checked_at = $2 WHERE id = $1 AND checked_at < $2",
    };
    sqlx::query(sql).bind(key.id()).bind(at).execute(&mut *conn).await.map(|_| ())
}

/// Records whether the homeserver's ping of the service worked at `now`, and answers since
/// when its pushes are known to reach the service (none after a failed ping).
pub async fn record_intake(conn: &mut AnyConnection, reached: bool, now: i64) -> sqlx::Result<Option<i64>> {
    if !reached {
        sqlx::query("DELETE FROM intake_proof").execute(&mut *conn).await?;
        return Ok(None);
    }
    // The proof runs from the first ping that worked: an existing row keeps its time.
    sqlx::query_scalar(
        "INSERT INTO intake_proof (id, since) VALUES (1, $1) \
         ON CONFLICT (id) DO UPDATE SET since = intake_proof.since RETURNING since",
    )
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map(Some)
}
