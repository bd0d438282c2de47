//! The homeserver's pushed transactions: stored before they are answered.

use sqlx::AnyConnection;

/// The transaction has been acted on.
pub async fn mark_processed(conn: &mut AnyConnection, txn_id: &str, now: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE appservice_transactions SET processed_at = $2 WHERE txn_id = $1")
        .bind(txn_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Keeps the transaction; false when this txn id was taken already (a retry, or another
/// replica got it first).
pub async fn record(
    conn: &mut AnyConnection,
    txn_id: &str,
    body: &str,
    events: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO appservice_transactions (txn_id, body, events, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (txn_id) DO NOTHING",
    )
    .bind(txn_id)
    .bind(body)
    .bind(events)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}
