//! What an export reads beside the rooms (`chatrooms::page_after`): roster entries and accounts
//! in key order, a page at a time (keyset pages: each starts after the last key of the one
//! before).

use sqlx::{AnyConnection, Row};

use crate::domain::{AppUserId, EventId, OrganizationId};

/// Organization members after `(organization, user)`.
pub async fn members(
    conn: &mut AnyConnection,
    org: Option<OrganizationId>,
    after: (OrganizationId, AppUserId),
    limit: i64,
) -> sqlx::Result<Vec<(OrganizationId, AppUserId, String)>> {
    sqlx::query_as(
        "SELECT organization_id, app_user_id, role FROM organization_members \
         WHERE ($1 IS NULL OR organization_id = $1) AND (organization_id > $2 OR (organization_id = $2 AND app_user_id > $3)) \
         ORDER BY organization_id, app_user_id LIMIT $4",
    )
    .bind(org)
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

/// Event participants after `(organization, event, user)`.
pub async fn participants(
    conn: &mut AnyConnection,
    org: Option<OrganizationId>,
    after: (OrganizationId, EventId, AppUserId),
    limit: i64,
) -> sqlx::Result<Vec<(OrganizationId, EventId, AppUserId)>> {
    sqlx::query_as(
        "SELECT organization_id, event_id, app_user_id FROM event_participants \
         WHERE ($1 IS NULL OR organization_id = $1) AND (organization_id > $2 OR (organization_id = $2 \
           AND (event_id > $3 OR (event_id = $3 AND app_user_id > $4)))) \
         ORDER BY organization_id, event_id, app_user_id LIMIT $5",
    )
    .bind(org)
    .bind(after.0)
    .bind(after.1)
    .bind(after.2)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

/// Matrix accounts after `after` in user id order, with whether each was deactivated: all of
/// them, or those of users the organization's rooms, roster or events name.
pub async fn accounts(
    conn: &mut AnyConnection,
    org: Option<OrganizationId>,
    after: AppUserId,
    limit: i64,
) -> sqlx::Result<Vec<(AppUserId, bool)>> {
    let rows = sqlx::query(
        "SELECT a.app_user_id, a.deactivated_at FROM matrix_accounts a WHERE a.app_user_id > $2 AND ($1 IS NULL \
           OR EXISTS (SELECT 1 FROM chatroom_members m JOIN chatrooms c ON c.id = m.chatroom_id \
                      WHERE m.app_user_id = a.app_user_id AND c.organization_id = $1 AND c.deleted_at IS NULL) \
           OR EXISTS (SELECT 1 FROM organization_members o WHERE o.app_user_id = a.app_user_id AND o.organization_id = $1) \
           OR EXISTS (SELECT 1 FROM event_participants p WHERE p.app_user_id = a.app_user_id AND p.organization_id = $1)) \
         ORDER BY a.app_user_id LIMIT $3",
    )
    .bind(org)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((row.try_get("app_user_id")?, row.try_get::<Option<i64>, _>("deactivated_at")?.is_some()))
        })
        .collect()
}
