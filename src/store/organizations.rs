//! Organizations: the name and avatar of their Matrix space, the space itself, and who belongs
//! in it.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedMxcUri, OwnedRoomId, RoomId};
use sqlx::{AnyConnection, Row};

use super::Tx;
use crate::domain::{AppUserId, OrganizationId, Role};

#[derive(Clone, Debug)]
pub struct Organization {
    pub id: OrganizationId,
    /// As the backend named it; `None` until it does.
    pub name: Option<String>,
    pub avatar_url: Option<OwnedMxcUri>,
    pub space_alias: String,
    pub matrix_space_id: Option<OwnedRoomId>,
    /// The space has changes the homeserver has not caught up with (or they failed).
    pub sync_pending: bool,
    pub sync_failed: bool,
    pub sync_error: Option<String>,
}

impl Organization {
    /// The space's name until the backend names the organization.
    pub fn space_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("Organization {}", self.id))
    }
}

pub async fn find(conn: &mut AnyConnection, org: OrganizationId) -> sqlx::Result<Option<Organization>> {
    let row = sqlx::query(
        "SELECT o.id, o.name, o.avatar_url, o.space_alias, o.matrix_space_id, \
           j.organization_id AS job_org, j.failed AS job_failed, j.last_error AS job_error, \
           j.reason AS job_reason, j.attempts AS job_attempts \
         FROM organizations o LEFT JOIN space_jobs j ON j.organization_id = o.id WHERE o.id = $1",
    )
    .bind(org)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let job: Option<i64> = row.try_get("job_org")?;
    let reason: Option<String> = row.try_get("job_reason")?;
    let attempts: Option<i64> = row.try_get("job_attempts")?;
    // A drift check is not a pending change, unless it has failed (as for rooms).
    let pending = super::jobs::pending(job, reason.as_deref(), attempts);
    Ok(Some(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        avatar_url: row.try_get::<Option<String>, _>("avatar_url")?.map(OwnedMxcUri::from),
        space_alias: row.try_get("space_alias")?,
        matrix_space_id: row
            .try_get::<Option<String>, _>("matrix_space_id")?
            .and_then(|id| RoomId::parse(id).ok()),
        sync_pending: pending,
        sync_failed: row.try_get::<Option<i64>, _>("job_failed")?.unwrap_or(0) != 0,
        sync_error: row.try_get("job_error")?,
    }))
}

/// Makes the organization's row (with the alias its space will have) unless it exists; then
/// `on_conflict` for an existing one.
async fn insert(
    conn: &mut AnyConnection,
    org: OrganizationId,
    now: i64,
    on_conflict: &str,
) -> sqlx::Result<()> {
    let alias = format!("chatrooms_space_{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    sqlx::query(&format!(
        "INSERT INTO organizations (id, space_alias, updated_at) VALUES ($1, $2, $3) ON CONFLICT (id) {on_conflict}"
    ))
    .bind(org)
    .bind(alias)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Makes sure the organization has a row; returns it.
pub async fn ensure(conn: &mut AnyConnection, org: OrganizationId, now: i64) -> sqlx::Result<Organization> {
    insert(conn, org, now, "DO NOTHING").await?;
    find(conn, org).await?.ok_or(sqlx::Error::RowNotFound)
}

/// Takes the organization's row lock for the rest of the transaction (making the row if
/// needed): roster writes, room creations and automation switches of one organization happen
/// one after the other.
pub async fn lock(tx: &mut Tx, org: OrganizationId, now: i64) -> sqlx::Result<()> {
    insert(tx, org, now, "DO UPDATE SET updated_at = excluded.updated_at").await
}

/// Sets the name and avatar the organization's space shows.
pub async fn set_profile(
    tx: &mut Tx,
    org: OrganizationId,
    name: &str,
    avatar: Option<&OwnedMxcUri>,
    now: i64,
) -> sqlx::Result<()> {
    lock(tx, org, now).await?;
    sqlx::query("UPDATE organizations SET name = $2, avatar_url = $3, updated_at = $4 WHERE id = $1")
        .bind(org)
        .bind(name)
        .bind(avatar.map(|a| a.to_string()))
        .bind(now)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

pub async fn set_space_id(conn: &mut AnyConnection, org: OrganizationId, space: &RoomId) -> sqlx::Result<()> {
    sqlx::query("UPDATE organizations SET matrix_space_id = $2 WHERE id = $1")
        .bind(org)
        .bind(space.as_str())
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Forgets a half-made space and queues it for purging, in one transaction.
pub async fn retire_space(tx: &mut Tx, org: OrganizationId, space: &RoomId, now: i64) -> sqlx::Result<()> {
    super::chatrooms::queue_retired(tx, space, now).await?;
    sqlx::query("UPDATE organizations SET matrix_space_id = NULL WHERE id = $1 AND matrix_space_id = $2")
        .bind(org)
        .bind(space.as_str())
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// The organization whose space this Matrix room is.
pub async fn find_by_space(conn: &mut AnyConnection, space: &str) -> sqlx::Result<Option<OrganizationId>> {
    sqlx::query_scalar("SELECT id FROM organizations WHERE matrix_space_id = $1")
        .bind(space)
        .fetch_optional(&mut *conn)
        .await
}

/// The organization's live rooms, and which of them the homeserver has (the space's children).
pub async fn rooms(
    conn: &mut AnyConnection,
    org: OrganizationId,
) -> sqlx::Result<(usize, BTreeSet<OwnedRoomId>)> {
    let rows: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT matrix_room_id FROM chatrooms WHERE organization_id = $1 AND deleted_at IS NULL",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    let created = rows.iter().flatten().filter_map(|id| RoomId::parse(id).ok()).collect();
    Ok((rows.len(), created))
}

/// Who belongs in the space: everyone holding a role (explicit or by roster) in one of the
/// organization's live rooms, as members; the organization's admins, as admins (power 100).
pub async fn space_members(
    conn: &mut AnyConnection,
    org: OrganizationId,
) -> sqlx::Result<BTreeMap<AppUserId, Role>> {
    let users: Vec<i64> = sqlx::query_scalar(
        "SELECT m.app_user_id FROM chatroom_members m JOIN chatrooms c ON c.id = m.chatroom_id \
           WHERE c.organization_id = $1 AND c.deleted_at IS NULL \
         UNION SELECT o.app_user_id FROM organization_members o WHERE o.organization_id = $1 \
           AND EXISTS (SELECT 1 FROM chatrooms c WHERE c.organization_id = $1 AND c.kind = 'default' \
             AND c.automation_enabled <> 0 AND c.deleted_at IS NULL) \
         UNION SELECT p.app_user_id FROM event_participants p JOIN chatrooms c \
           ON c.organization_id = p.organization_id AND c.event_id = p.event_id AND c.kind = 'event' \
             AND c.automation_enabled <> 0 AND c.deleted_at IS NULL \
           WHERE p.organization_id = $1",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    let admins: Vec<i64> = sqlx::query_scalar(
        "SELECT app_user_id FROM organization_members WHERE organization_id = $1 AND role = 'admin'",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    let mut members: BTreeMap<AppUserId, Role> =
        users.into_iter().map(|user| (user, Role::Assigned)).collect();
    members.extend(admins.into_iter().map(|user| (user, Role::Admin)));
    Ok(members)
}

/// The organization's live rooms on the homeserver (each must name the space as its parent).
pub async fn created_room_ids(conn: &mut AnyConnection, org: OrganizationId) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT id FROM chatrooms WHERE organization_id = $1 AND deleted_at IS NULL AND matrix_room_id IS NOT NULL",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await
}
