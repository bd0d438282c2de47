//! Message reports and their resolution; the cursor of the homeserver's report feed.

use sqlx::{any::AnyRow, AnyConnection, Row};

use super::Tx;
use crate::domain::{AppUserId, ChatroomId, OrganizationId};

/// Where a report came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportSource {
    /// `POST /chatrooms/{roomID}/messages/{eventID}/reports`.
    Api,
    /// A Matrix client's report, read from the homeserver.
    Homeserver,
}

impl ReportSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Homeserver => "homeserver",
        }
    }
}

/// What a moderator did about a reported message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub at: i64,
    /// `backend` or `user:<id>`.
    pub by: String,
    pub action: String,
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub id: i64,
    pub chatroom_id: ChatroomId,
    pub organization_id: OrganizationId,
    pub event_id: String,
    pub sender: String,
    pub reporter: String,
    pub reporter_user_id: Option<AppUserId>,
    pub reason: Option<String>,
    pub source: String,
    pub created_at: i64,
    /// `None` while open.
    pub resolution: Option<Resolution>,
}

pub struct NewReport<'a> {
    pub chatroom_id: ChatroomId,
    pub event_id: &'a str,
    pub sender: &'a str,
    pub reporter: &'a str,
    pub reporter_user_id: Option<AppUserId>,
    pub reason: Option<&'a str>,
    pub source: ReportSource,
    pub homeserver_report_id: Option<i64>,
    pub at: i64,
}

const COLUMNS: &str = "r.id, r.chatroom_id, c.organization_id, r.event_id, r.sender, r.reporter, \
     r.reporter_user_id, r.reason, r.source, r.created_at, r.resolved_at, r.resolved_by, r.action, r.note";

fn from_row(row: &AnyRow) -> sqlx::Result<Report> {
    let resolved_at: Option<i64> = row.try_get("resolved_at")?;
    let resolution = match resolved_at {
        None => None,
        Some(at) => Some(Resolution {
            at,
            by: row.try_get::<Option<String>, _>("resolved_by")?.unwrap_or_default(),
            action: row.try_get::<Option<String>, _>("action")?.unwrap_or_default(),
            note: row.try_get("note")?,
        }),
    };
    Ok(Report {
        id: row.try_get("id")?,
        chatroom_id: row.try_get("chatroom_id")?,
        organization_id: row.try_get("organization_id")?,
        event_id: row.try_get("event_id")?,
        sender: row.try_get("sender")?,
        reporter: row.try_get("reporter")?,
        reporter_user_id: row.try_get("reporter_user_id")?,
        reason: row.try_get("reason")?,
        source: row.try_get("source")?,
        created_at: row.try_get("created_at")?,
        resolution,
    })
}

/// Stores a report; `None` when it is there already (the same homeserver report, or an open
/// report through the API of the same reporter on the same message).
pub async fn insert(conn: &mut AnyConnection, report: &NewReport<'_>) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "INSERT INTO message_reports (chatroom_id, event_id, sender, reporter, reporter_user_id, reason, \
         source, homeserver_report_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(report.chatroom_id)
    .bind(report.event_id)
    .bind(report.sender)
    .bind(report.reporter)
    .bind(report.reporter_user_id)
    .bind(report.reason)
    .bind(report.source.as_str())
    .bind(report.homeserver_report_id)
    .bind(report.at)
    .fetch_optional(&mut *conn)
    .await
}

/// Whether the reporter has an open report of the message, made anywhere.
pub async fn open_by(
    conn: &mut AnyConnection,
    chatroom: ChatroomId,
    event_id: &str,
    reporter: &str,
) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM message_reports \
         WHERE chatroom_id = $1 AND event_id = $2 AND reporter = $3 AND resolved_at IS NULL LIMIT 1",
    )
    .bind(chatroom)
    .bind(event_id)
    .bind(reporter)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// A report of a live room.
pub async fn find(conn: &mut AnyConnection, id: i64) -> sqlx::Result<Option<Report>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM message_reports r JOIN chatrooms c ON c.id = r.chatroom_id \
         WHERE r.id = $1 AND c.deleted_at IS NULL"
    );
    sqlx::query(&sql).bind(id).fetch_optional(&mut *conn).await?.as_ref().map(from_row).transpose()
}

/// Which reports a queue shows.
pub enum ReportScope {
    Room(ChatroomId),
    Organization(OrganizationId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportStatus {
    Open,
    Resolved,
}

pub struct ReportsQuery {
    pub scope: ReportScope,
    /// Only this reporter's reports.
    pub reporter: Option<AppUserId>,
    pub status: ReportStatus,
    pub page: (i64, i64),
}

/// Reports of one message that are open together or were resolved together; the queue's entry.
/// Newest first, never empty.
pub type ReportGroup = Vec<Report>;

/// Two reports of the same message in the same state (both open, or closed by one resolution).
const SAME_GROUP: &str = "r.chatroom_id = g.chatroom_id AND r.event_id = g.event_id \
     AND (r.resolved_at = g.resolved_at OR (r.resolved_at IS NULL AND g.resolved_at IS NULL))";

/// A page of the queue, one entry per reported message (and resolution), newest report first;
/// and how many entries there are in all.
pub async fn list(conn: &mut AnyConnection, query: &ReportsQuery) -> sqlx::Result<(Vec<ReportGroup>, i64)> {
    let scope = match query.scope {
        ReportScope::Room(_) => "r.chatroom_id = $1",
        ReportScope::Organization(_) => "c.organization_id = $1",
    };
    let status = match query.status {
        ReportStatus::Open => "r.resolved_at IS NULL",
        ReportStatus::Resolved => "r.resolved_at IS NOT NULL",
    };
    let reporter = if query.reporter.is_some() { "r.reporter_user_id = $2" } else { "$2 IS NULL" };
    let groups = format!(
        "SELECT r.chatroom_id, r.event_id, r.resolved_at, MAX(r.id) AS newest \
         FROM message_reports r JOIN chatrooms c ON c.id = r.chatroom_id \
         WHERE {scope} AND {reporter} AND {status} AND c.deleted_at IS NULL \
         GROUP BY r.chatroom_id, r.event_id, r.resolved_at"
    );
    let key = match query.scope {
        ReportScope::Room(id) => id,
        ReportScope::Organization(org) => org,
    };
    let (limit, offset) = query.page;
    // One round trip: the page's groups, counted, joined back to their reports.
    let sql = format!(
        "WITH g AS (SELECT grouped.*, COUNT(*) OVER () AS total FROM ({groups}) grouped \
           ORDER BY newest DESC LIMIT $3 OFFSET $4) \
         SELECT {COLUMNS}, g.newest, g.total FROM g \
         JOIN message_reports r ON {SAME_GROUP} JOIN chatrooms c ON c.id = r.chatroom_id \
         WHERE {reporter} ORDER BY g.newest DESC, r.id DESC"
    );
    let rows = sqlx::query(&sql)
        .bind(key)
        .bind(query.reporter)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
    let total = match rows.first() {
        Some(row) => row.try_get("total")?,
        // A page past the end still says how many there are.
        None => {
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM ({groups}) grouped"))
                .bind(key)
                .bind(query.reporter)
                .fetch_one(&mut *conn)
                .await?
        }
    };
    let mut page: Vec<(i64, ReportGroup)> = Vec::new();
    for row in &rows {
        let newest: i64 = row.try_get("newest")?;
        let report = from_row(row)?;
        match page.last_mut() {
            Some((group, reports)) if *group == newest => reports.push(report),
            _ => page.push((newest, vec![report])),
        }
    }
    Ok((page.into_iter().map(|(_, reports)| reports).collect(), total))
}

/// The report's group: every report of its message in the same state, newest first (empty
/// when there is no such report in a live room).
pub async fn group_of(conn: &mut AnyConnection, id: i64) -> sqlx::Result<ReportGroup> {
    let sql = format!(
        "SELECT {COLUMNS} FROM message_reports g JOIN message_reports r ON {SAME_GROUP} \
         JOIN chatrooms c ON c.id = r.chatroom_id WHERE g.id = $1 AND c.deleted_at IS NULL ORDER BY r.id DESC"
    );
    let rows = sqlx::query(&sql).bind(id).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Closes every open report of the message, each once (a concurrent resolution closes none a
/// second time): the ids closed, with the homeserver's report ids among them.
pub async fn resolve_message(
    tx: &mut Tx,
    chatroom: ChatroomId,
    event_id: &str,
    resolution: &Resolution,
) -> sqlx::Result<Vec<(i64, Option<i64>)>> {
    sqlx::query_as(
        "UPDATE message_reports SET resolved_at = $3, resolved_by = $4, action = $5, note = $6 \
         WHERE chatroom_id = $1 AND event_id = $2 AND resolved_at IS NULL RETURNING id, homeserver_report_id",
    )
    .bind(chatroom)
    .bind(event_id)
    .bind(resolution.at)
    .bind(&resolution.by)
    .bind(&resolution.action)
    .bind(&resolution.note)
    .fetch_all(&mut **tx)
    .await
}

/// Opens again reports whose resolution's action failed, in one transaction. A report through
/// the API whose reporter has reported the message again meanwhile stays closed: their newer
/// report is the open one (one open API report per reporter and message).
pub async fn reopen(tx: &mut Tx, ids: &[i64]) -> sqlx::Result<()> {
    for id in ids {
        sqlx::query(
            "UPDATE message_reports SET resolved_at = NULL, resolved_by = NULL, action = NULL, note = NULL \
             WHERE id = $1 AND NOT (source = 'api' AND EXISTS (SELECT 1 FROM message_reports o \
               WHERE o.chatroom_id = message_reports.chatroom_id AND o.event_id = message_reports.event_id \
                 AND o.reporter = message_reports.reporter AND o.source = 'api' AND o.resolved_at IS NULL))",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Homeserver reports resolved here but not yet deleted there.
pub async fn unclosed_on_homeserver(conn: &mut AnyConnection, limit: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT homeserver_report_id FROM message_reports \
         WHERE resolved_at IS NOT NULL AND homeserver_closed = 0 AND homeserver_report_id IS NOT NULL \
         ORDER BY id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

pub async fn closed_on_homeserver(conn: &mut AnyConnection, homeserver_report_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE message_reports SET homeserver_closed = 1 WHERE homeserver_report_id = $1")
        .bind(homeserver_report_id)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// How far a homeserver feed has been read (0 before the first read).
pub async fn cursor(conn: &mut AnyConnection, name: &str) -> sqlx::Result<i64> {
    let position: Option<i64> = sqlx::query_scalar("SELECT position FROM homeserver_cursors WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(position.unwrap_or(0))
}

/// Moves the cursor forward (never back: another replica may have read further).
pub async fn advance_cursor(conn: &mut AnyConnection, name: &str, position: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO homeserver_cursors (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position \
         WHERE homeserver_cursors.position < excluded.position",
    )
    .bind(name)
    .bind(position)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}
