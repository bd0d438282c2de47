//! App users' Matrix accounts: whether one exists, which secret its password was derived from,
//! and whether the user was deactivated.

use sqlx::{AnyConnection, Row};

use super::Tx;
use crate::domain::AppUserId;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Fingerprint of the credentials secret the current password was derived from.
    pub password_key: Option<String>,
    pub deactivated: bool,
}

pub async fn find(conn: &mut AnyConnection, user: AppUserId) -> sqlx::Result<Option<Account>> {
    let row = sqlx::query("SELECT password_key, deactivated_at FROM matrix_accounts WHERE app_user_id = $1")
        .bind(user)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        Ok(Account {
            password_key: row.try_get("password_key")?,
            deactivated: row.try_get::<Option<i64>, _>("deactivated_at")?.is_some(),
        })
    })
    .transpose()
}

pub async fn is_provisioned(conn: &mut AnyConnection, user: AppUserId) -> sqlx::Result<bool> {
    Ok(find(conn, user).await?.is_some())
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

pub async fn set_password_key(conn: &mut AnyConnection, user: AppUserId, key: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE matrix_accounts SET password_key = $2 WHERE app_user_id = $1")
        .bind(user)
        .bind(key)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

pub async fn mark_deactivated(tx: &mut Tx, user: AppUserId, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO matrix_accounts (app_user_id, created_at, deactivated_at) VALUES ($1, $2, $2) \
         ON CONFLICT (app_user_id) DO UPDATE SET deactivated_at = $2, password_key = NULL",
    )
    .bind(user)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// The deactivated users among `users`.
pub async fn deactivated_among(
    conn: &mut AnyConnection,
    users: &[AppUserId],
) -> sqlx::Result<Vec<AppUserId>> {
    let mut deactivated = Vec::new();
    for &user in users {
        if find(conn, user).await?.is_some_and(|account| account.deactivated) {
            deactivated.push(user);
        }
    }
    Ok(deactivated)
}
