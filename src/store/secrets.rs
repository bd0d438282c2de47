//! Secrets the service generates for itself, once, and every replica then reads.

use sqlx::AnyConnection;

/// The secret stored under `name`; the first caller's `candidate` wins a race between replicas.
pub async fn get_or_insert(
    conn: &mut AnyConnection,
    name: &str,
    candidate: &str,
    now: i64,
) -> sqlx::Result<String> {
    sqlx::query(
        "INSERT INTO service_secrets (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(candidate)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT secret FROM service_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(&mut *conn)
        .await
}
