//! Blocklists of organizations and rooms.

use sqlx::{AnyConnection, Row};

use crate::domain::blocklist::Blocklist;

/// Whose list: an organization's, or a room's additions to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Organization(i64),
    Room(i64),
}

impl Scope {
    fn key(self) -> (&'static str, i64) {
        match self {
            Self::Organization(id) => ("organization", id),
            Self::Room(id) => ("room", id),
        }
    }
}

fn to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn from_json(text: &str) -> sqlx::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// The list and when it last changed; an empty list and 0 when there is none.
pub async fn get(conn: &mut AnyConnection, scope: Scope) -> sqlx::Result<(Blocklist, i64)> {
    let (kind, id) = scope.key();
    let row = sqlx::query(
        "SELECT words, patterns, allowed_link_domains, updated_at FROM blocklists WHERE scope = $1 AND scope_id = $2",
    )
    .bind(kind)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok((Blocklist::default(), 0)) };
    let list = Blocklist {
        words: from_json(&row.try_get::<String, _>("words")?)?,
        patterns: from_json(&row.try_get::<String, _>("patterns")?)?,
        allowed_link_domains: from_json(&row.try_get::<String, _>("allowed_link_domains")?)?,
    };
    Ok((list, row.try_get("updated_at")?))
}

/// Replaces the whole list.
pub async fn put(conn: &mut AnyConnection, scope: Scope, list: &Blocklist, now: i64) -> sqlx::Result<()> {
    let (kind, id) = scope.key();
    sqlx::query(
        "INSERT INTO blocklists (scope, scope_id, words, patterns, allowed_link_domains, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (scope, scope_id) DO UPDATE SET words = $3, patterns = $4, allowed_link_domains = $5, \
           updated_at = $6",
    )
    .bind(kind)
    .bind(id)
    .bind(to_json(&list.words))
    .bind(to_json(&list.patterns))
    .bind(to_json(&list.allowed_link_domains))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}
