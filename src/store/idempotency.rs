//! Idempotency keys of creating requests: which room a key created, and for what request.

use sqlx::AnyConnection;

use super::Tx;
use crate::domain::ChatroomId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub operation: String,
    pub fingerprint: String,
    pub chatroom_id: ChatroomId,
    /// The message a `message` key sent.
    pub event_id: Option<String>,
}

pub async fn find(conn: &mut AnyConnection, caller: &str, key: &str) -> sqlx::Result<Option<Recorded>> {
    let row: Option<(String, String, i64, Option<String>)> = sqlx::query_as(
        "SELECT operation, fingerprint, chatroom_id, event_id FROM idempotency_keys \
         WHERE caller = $1 AND idem_key = $2",
    )
    .bind(caller)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(operation, fingerprint, chatroom_id, event_id)| Recorded {
        operation,
        fingerprint,
        chatroom_id,
        event_id,
    }))
}

/// Records the key in the creating transaction; a unique violation means a concurrent request
/// with the same key won.
pub async fn insert(tx: &mut Tx, caller: &str, key: &str, recorded: &Recorded, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO idempotency_keys (caller, idem_key, operation, fingerprint, chatroom_id, created_at, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(caller)
    .bind(key)
    .bind(&recorded.operation)
    .bind(&recorded.fingerprint)
    .bind(recorded.chatroom_id)
    .bind(now)
    .bind(recorded.event_id.as_deref())
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Forgets keys older than `cutoff` (Unix ms).
pub async fn forget_before(conn: &mut AnyConnection, cutoff: i64) -> sqlx::Result<u64> {
    let result = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(cutoff)
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected())
}
