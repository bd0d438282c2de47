//! App users' Matrix accounts: whether one exists, which secret its password was derived from,
//! and whether the user was deactivated.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::{fetch_where_in, Tx};
use crate::domain::AppUserId;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Fingerprint of the credentials secret the current password was derived from.
    pub password_key: Option<String>,
    pub deactivated: bool,
}

pub async fn find(conn: &mut AnyConnection, user: AppUserId) -> sqlx::Result<Option<Account>> {
    Ok(find_many(conn, &[user]).await?.remove(&user))
}

/// The accounts that exist among `users`, a few queries for any number of users.
pub async fn find_many(
    conn: &mut AnyConnection,
    users: &[AppUserId],
) -> sqlx::Result<HashMap<AppUserId, Account>> {
    let select = "SELECT app_user_id, password_key, deactivated_at FROM matrix_accounts WHERE app_user_id";
    let mut found = HashMap::with_capacity(users.len());
    for row in fetch_where_in(conn, select, users).await? {
        let account = Account {
            password_key: row.try_get("password_key")?,
            deactivated: row.try_get::<Option<i64>, _>("deactivated_at")?.is_some(),
        };
        found.insert(row.try_get::<i64, _>("app_user_id")?, account);
    }
    Ok(found)
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
