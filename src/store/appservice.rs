//! The homeserver's pushed transactions: stored before they are answered, claimed by the
//! replica processing them.

use sqlx::{AnyConnection, Row};

/// What [`take`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The caller holds it and is to process it: it is new, or it was stored but never
    /// processed and nobody holds it (a retry after a failed step).
    ToProcess,
    Processed,
    /// Another replica is processing it (or crashed doing so and its claim has not run out).
    HeldElsewhere,
}

/// Keeps the transaction and claims it until `until`.
pub async fn take(
    conn: &mut AnyConnection,
    txn_id: &str,
    body: &str,
    events: i64,
    now: i64,
    until: i64,
) -> sqlx::Result<Taken> {
    let inserted = sqlx::query(
        "INSERT INTO appservice_transactions (txn_id, body, events, received_at, claimed_until) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (txn_id) DO NOTHING",
    )
    .bind(txn_id)
    .bind(body)
    .bind(events)
    .bind(now)
    .bind(until)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() > 0 || claim(conn, txn_id, now, until).await? {
        return Ok(Taken::ToProcess);
    }
    Ok(if is_processed(conn, txn_id).await? { Taken::Processed } else { Taken::HeldElsewhere })
}

pub async fn is_processed(conn: &mut AnyConnection, txn_id: &str) -> sqlx::Result<bool> {
    let processed: Option<Option<i64>> =
        sqlx::query_scalar("SELECT processed_at FROM appservice_transactions WHERE txn_id = $1")
            .bind(txn_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(processed.flatten().is_some())
}

async fn claim(conn: &mut AnyConnection, txn_id: &str, now: i64, until: i64) -> sqlx::Result<bool> {
    let claimed = sqlx::query(
        "UPDATE appservice_transactions SET claimed_until = $3 \
         WHERE txn_id = $1 AND processed_at IS NULL AND COALESCE(claimed_until, 0) < $2",
    )
    .bind(txn_id)
    .bind(now)
    .bind(until)
    .execute(&mut *conn)
    .await?;
    Ok(claimed.rows_affected() > 0)
}

/// Claims the oldest unprocessed transaction nobody holds: its id and body.
pub async fn take_stale(
    conn: &mut AnyConnection,
    now: i64,
    until: i64,
) -> sqlx::Result<Option<(String, String)>> {
    loop {
        let row = sqlx::query(
            "SELECT txn_id, body FROM appservice_transactions \
             WHERE processed_at IS NULL AND COALESCE(claimed_until, 0) < $1 ORDER BY received_at, txn_id LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (txn_id, body): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        // Another replica may have claimed it between the read and now: look again.
        if claim(conn, &txn_id, now, until).await? {
            return Ok(Some((txn_id, body)));
        }
    }
}

/// Lets a transaction whose processing failed be taken again at once.
pub async fn release(conn: &mut AnyConnection, txn_id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE appservice_transactions SET claimed_until = NULL WHERE txn_id = $1 AND processed_at IS NULL",
    )
    .bind(txn_id)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// The transaction has been acted on.
pub async fn mark_processed(conn: &mut AnyConnection, txn_id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE appservice_transactions SET processed_at = $2, claimed_until = NULL WHERE txn_id = $1",
    )
    .bind(txn_id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}
