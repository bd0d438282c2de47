//! Rosters: an organization's members with their roles, and each event's participants.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AnyConnection, Row};

use super::{fetch_where_in, Tx};
use crate::domain::{AppUserId, EventId, OrganizationId, OrganizationRole, OrganizationRoster, Participants};

/// Rows per multi-row `INSERT`: three values each, well under both backends' parameter limits.
const INSERT_CHUNK: usize = 300;

/// One value of a row to insert.
#[derive(Clone, Copy)]
enum Cell {
    Int(i64),
    Text(&'static str),
}

/// Inserts `rows` (each `width` values, bound in order) into `into`, then `on_conflict`: a few
/// statements for thousands of rows, not one each.
async fn insert_rows(
    tx: &mut Tx,
    into: &str,
    on_conflict: &str,
    width: usize,
    rows: &[Vec<Cell>],
) -> sqlx::Result<()> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        let values: Vec<String> = (0..chunk.len())
            .map(|row| {
                let cells: Vec<String> = (1..=width).map(|col| format!("${}", row * width + col)).collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!("INSERT INTO {into} VALUES {} {on_conflict}", values.join(", "));
        let mut query = sqlx::query(&sql);
        for value in chunk.iter().flatten() {
            query = match *value {
                Cell::Int(number) => query.bind(number),
                Cell::Text(text) => query.bind(text),
            };
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Gives the users their organization role (moving those who held the other one).
pub async fn put_members(tx: &mut Tx, org: OrganizationId, roster: &OrganizationRoster) -> sqlx::Result<()> {
    let rows: Vec<_> = roster
        .iter()
        .map(|(user, role)| vec![Cell::Int(org), Cell::Int(user), Cell::Text(role.as_str())])
        .collect();
    insert_rows(
        tx,
        "organization_members (organization_id, app_user_id, role)",
        "ON CONFLICT (organization_id, app_user_id) DO UPDATE SET role = excluded.role",
        3,
        &rows,
    )
    .await
}

/// Makes the organization's members exactly `roster`.
pub async fn replace_members(
    tx: &mut Tx,
    org: OrganizationId,
    roster: &OrganizationRoster,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM organization_members WHERE organization_id = $1")
        .bind(org)
        .execute(&mut **tx)
        .await?;
    put_members(tx, org, roster).await
}

/// Removes one member; false when they were not one.
pub async fn remove_member(tx: &mut Tx, org: OrganizationId, user: AppUserId) -> sqlx::Result<bool> {
    let done =
        sqlx::query("DELETE FROM organization_members WHERE organization_id = $1 AND app_user_id = $2")
            .bind(org)
            .bind(user)
            .execute(&mut **tx)
            .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn members(conn: &mut AnyConnection, org: OrganizationId) -> sqlx::Result<OrganizationRoster> {
    Ok(members_of(conn, &[org]).await?.remove(&org).unwrap_or_default())
}

/// The rosters of several organizations, in a few queries.
pub async fn members_of(
    conn: &mut AnyConnection,
    orgs: &[OrganizationId],
) -> sqlx::Result<BTreeMap<OrganizationId, OrganizationRoster>> {
    let select = "SELECT organization_id, app_user_id, role FROM organization_members WHERE organization_id";
    let mut rosters: BTreeMap<OrganizationId, BTreeMap<AppUserId, OrganizationRole>> = BTreeMap::new();
    for row in fetch_where_in(conn, select, orgs).await? {
        let role: String = row.try_get("role")?;
        let role = OrganizationRole::parse(&role)
            .ok_or_else(|| sqlx::Error::Decode(format!("organization role {role:?}").into()))?;
        rosters.entry(row.try_get("organization_id")?).or_default().insert(row.try_get("app_user_id")?, role);
    }
    Ok(rosters.into_iter().map(|(org, members)| (org, OrganizationRoster::from_map(members))).collect())
}

/// A page of the organization's members in user id order, and how many there are.
pub async fn members_page(
    conn: &mut AnyConnection,
    org: OrganizationId,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<(AppUserId, OrganizationRole)>, i64)> {
    let total: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM organization_members WHERE organization_id = $1")
            .bind(org)
            .fetch_one(&mut *conn)
            .await?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT app_user_id, role FROM organization_members WHERE organization_id = $1 \
         ORDER BY app_user_id LIMIT $2 OFFSET $3",
    )
    .bind(org)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let entries = rows
        .into_iter()
        .map(|(user, role)| {
            let role = OrganizationRole::parse(&role)
                .ok_or_else(|| sqlx::Error::Decode(format!("organization role {role:?}").into()))?;
            Ok((user, role))
        })
        .collect::<sqlx::Result<_>>()?;
    Ok((entries, total))
}

/// Adds the users to the event's participants.
pub async fn put_participants(
    tx: &mut Tx,
    org: OrganizationId,
    event: EventId,
    participants: &Participants,
) -> sqlx::Result<()> {
    let rows: Vec<_> = participants
        .users()
        .into_iter()
        .map(|user| vec![Cell::Int(org), Cell::Int(event), Cell::Int(user)])
        .collect();
    insert_rows(
        tx,
        "event_participants (organization_id, event_id, app_user_id)",
        "ON CONFLICT (organization_id, event_id, app_user_id) DO NOTHING",
        3,
        &rows,
    )
    .await
}

/// Makes the event's participants exactly `participants`.
pub async fn replace_participants(
    tx: &mut Tx,
    org: OrganizationId,
    event: EventId,
    participants: &Participants,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM event_participants WHERE organization_id = $1 AND event_id = $2")
        .bind(org)
        .bind(event)
        .execute(&mut **tx)
        .await?;
    put_participants(tx, org, event, participants).await
}

pub async fn remove_participant(
    tx: &mut Tx,
    org: OrganizationId,
    event: EventId,
    user: AppUserId,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "DELETE FROM event_participants WHERE organization_id = $1 AND event_id = $2 AND app_user_id = $3",
    )
    .bind(org)
    .bind(event)
    .bind(user)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn participants(
    conn: &mut AnyConnection,
    org: OrganizationId,
    event: EventId,
) -> sqlx::Result<Participants> {
    Ok(participants_of(conn, &[(org, event)]).await?.remove(&(org, event)).unwrap_or_default())
}

/// The participants of several events, in a few queries.
pub async fn participants_of(
    conn: &mut AnyConnection,
    events: &[(OrganizationId, EventId)],
) -> sqlx::Result<BTreeMap<(OrganizationId, EventId), Participants>> {
    let wanted: BTreeSet<_> = events.iter().copied().collect();
    let ids: Vec<EventId> =
        wanted.iter().map(|(_, event)| *event).collect::<BTreeSet<_>>().into_iter().collect();
    let select = "SELECT organization_id, event_id, app_user_id FROM event_participants WHERE event_id";
    let mut found: BTreeMap<(OrganizationId, EventId), BTreeSet<AppUserId>> = BTreeMap::new();
    for row in fetch_where_in(conn, select, &ids).await? {
        let key = (row.try_get("organization_id")?, row.try_get("event_id")?);
        if wanted.contains(&key) {
            found.entry(key).or_default().insert(row.try_get("app_user_id")?);
        }
    }
    Ok(found.into_iter().map(|(key, users)| (key, Participants::from_set(users))).collect())
}

/// A page of the event's participants in user id order, and how many there are.
pub async fn participants_page(
    conn: &mut AnyConnection,
    org: OrganizationId,
    event: EventId,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<AppUserId>, i64)> {
    let total: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM event_participants WHERE organization_id = $1 AND event_id = $2",
    )
    .bind(org)
    .bind(event)
    .fetch_one(&mut *conn)
    .await?;
    let users = sqlx::query_scalar(
        "SELECT app_user_id FROM event_participants WHERE organization_id = $1 AND event_id = $2 \
         ORDER BY app_user_id LIMIT $3 OFFSET $4",
    )
    .bind(org)
    .bind(event)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((users, total))
}

/// Removes a deactivated user from every roster; the organizations and events they were in.
pub async fn remove_user_everywhere(
    tx: &mut Tx,
    user: AppUserId,
) -> sqlx::Result<(Vec<OrganizationId>, Vec<(OrganizationId, EventId)>)> {
    let orgs: Vec<OrganizationId> =
        sqlx::query_scalar("SELECT organization_id FROM organization_members WHERE app_user_id = $1")
            .bind(user)
            .fetch_all(&mut **tx)
            .await?;
    let events: Vec<(OrganizationId, EventId)> =
        sqlx::query_as("SELECT organization_id, event_id FROM event_participants WHERE app_user_id = $1")
            .bind(user)
            .fetch_all(&mut **tx)
            .await?;
    sqlx::query("DELETE FROM organization_members WHERE app_user_id = $1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM event_participants WHERE app_user_id = $1")
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok((orgs, events))
}
