//! Blocklists of organizations and rooms.

use sqlx::{any::AnyRow, AnyConnection, Row};

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

fn list_of(row: &AnyRow) -> sqlx::Result<(Blocklist, i64)> {
    let list = Blocklist {
        words: from_json(&row.try_get::<String, _>("words")?)?,
        patterns: from_json(&row.try_get::<String, _>("patterns")?)?,
        allowed_link_domains: from_json(&row.try_get::<String, _>("allowed_link_domains")?)?,
    };
    Ok((list, row.try_get("updated_at")?))
}

/// The list and when it last changed; an empty list and 0 when there is none.
pub async fn get(conn: &mut AnyConnection, scope: Scope) -> sqlx::Result<(Blocklist, i64)> {
    let [list, _] = get_both(conn, scope, scope).await?;
    Ok(list)
}

/// Two lists in one query (a room's and its organization's, read for every message).
pub async fn get_both(conn: &mut AnyConnection, a: Scope, b: Scope) -> sqlx::Result<[(Blocklist, i64); 2]> {
    let (keys, rows) = ([a.key(), b.key()], {
        let [(kind_a, id_a), (kind_b, id_b)] = [a.key(), b.key()];
        sqlx::query(
            "SELECT scope, scope_id, words, patterns, allowed_link_domains, updated_at FROM blocklists \
             WHERE (scope = $1 AND scope_id = $2) OR (scope = $3 AND scope_id = $4)",
        )
        .bind(kind_a)
        .bind(id_a)
        .bind(kind_b)
        .bind(id_b)
        .fetch_all(&mut *conn)
        .await?
    });
    let mut found = [(Blocklist::default(), 0), (Blocklist::default(), 0)];
    for row in &rows {
        let key = (row.try_get::<String, _>("scope")?, row.try_get::<i64, _>("scope_id")?);
        for (slot, (kind, id)) in found.iter_mut().zip(keys) {
            if key.0 == kind && key.1 == id {
                *slot = list_of(row)?;
            }
        }
    }
    Ok(found)
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
