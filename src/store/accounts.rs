//! App users whose Matrix account is known to exist, so it is registered only once.

use sqlx::AnyConnection;

use crate::domain::AppUserId;

pub async fn is_provisioned(conn: &mut AnyConnection, user: AppUserId) -> sqlx::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT app_user_id FROM matrix_accounts WHERE app_user_id = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

pub async fn mark_provisioned(conn: &mut AnyConnection, user: AppUserId, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO matrix_accounts (app_user_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(user)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}
