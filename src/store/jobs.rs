//! The sync outboxes: `sync_jobs` for rooms, `space_jobs` for organizations' spaces. A row means
//! "this room's (or space's) homeserver state must catch up"; its `version` grows with every
//! change, so a sync that ran while another change came in leaves the row.

use sqlx::AnyConnection;

use crate::domain::{ChatroomId, OrganizationId};

/// What a job converges: a chatroom's Matrix room, or an organization's space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKey {
    Room(ChatroomId),
    Space(OrganizationId),
}

impl JobKey {
    fn table(self) -> &'static str {
        match self {
            Self::Room(_) => "sync_jobs",
            Self::Space(_) => "space_jobs",
        }
    }
    fn column(self) -> &'static str {
        match self {
            Self::Room(_) => "chatroom_id",
            Self::Space(_) => "organization_id",
        }
    }
    pub(super) fn id(self) -> i64 {
        match self {
            Self::Room(id) | Self::Space(id) => id,
        }
    }
    /// The chatroom, for a room's job (log fields).
    pub fn room(self) -> Option<ChatroomId> {
        match self {
            Self::Room(id) => Some(id),
            Self::Space(_) => None,
        }
    }
    /// The organization, for a space's job (log fields).
    pub fn space(self) -> Option<OrganizationId> {
        match self {
            Self::Space(org) => Some(org),
            Self::Room(_) => None,
        }
    }
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Room(id) => write!(f, "chatroom {id}"),
            Self::Space(org) => write!(f, "the space of organization {org}"),
        }
    }
}

/// Why a job is queued: `change` (ours), `reconcile` (a drift check) or `link` (a room joining
/// its organization's new space). A check or link nobody has tried yet is no pending change: the
/// room stays `synced` and out of the backlog; only a drift check that changes something is drift.
const CHECKS: [&str; 2] = ["reconcile", "link"];

/// SQL: the job (of table alias `alias`) is a check or link not tried yet.
pub(super) fn untried_check(alias: &str) -> String {
    let [check, link] = CHECKS;
    format!("({alias}reason IN ('{check}', '{link}') AND {alias}attempts = 0)")
}

/// Whether a room's (or space's) job, read with it, makes it `pending`.
pub fn pending(job: Option<i64>, reason: Option<&str>, attempts: Option<i64>) -> bool {
    let check = reason.is_some_and(|reason| CHECKS.contains(&reason));
    job.is_some() && (!check || attempts.unwrap_or(0) > 0)
}

/// Upserts a change into `key`'s outbox (see [`enqueue`]); `select` gives the row's key.
async fn enqueue_change(conn: &mut AnyConnection, key: JobKey, now: i64) -> sqlx::Result<()> {
    let (table, column) = (key.table(), key.column());
    sqlx::query(&format!(
        "INSERT INTO {table} ({column}, version, attempts, next_attempt_at, failed, reason, queued_at) \
         VALUES ($1, 1, 0, $2, 0, 'change', $2) \
         ON CONFLICT ({column}) DO UPDATE SET version = {table}.version + 1, attempts = 0, \
           refusals = 0, next_attempt_at = $2, failed = 0, reason = 'change', \
           queued_at = CASE WHEN {table}.failed <> 0 OR {untried} THEN $2 ELSE {table}.queued_at END",
        untried = untried_check(&format!("{table}."))
    ))
    .bind(key.id())
    .bind(now)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Records that the organization's space must change (its name, children or members).
pub async fn enqueue_space(conn: &mut AnyConnection, org: OrganizationId, now: i64) -> sqlx::Result<()> {
    enqueue_change(conn, JobKey::Space(org), now).await
}

/// Records that the room changed; pass the change's transaction so both commit together. The
/// room's wait (`queued_at`) goes on from an earlier pending change; after a stopped job or an
/// untried drift check it starts now. The organization's space follows the room's members, so
/// it is queued too.
pub async fn enqueue(conn: &mut AnyConnection, id: ChatroomId, now: i64) -> sqlx::Result<()> {
    enqueue_change(conn, JobKey::Room(id), now).await?;
    match super::chatrooms::organization_of(conn, id).await? {
        Some(org) => enqueue_space(conn, org, now).await,
        None => Ok(()),
    }
}

/// Queues a drift check of the room (or space) after the homeserver reported a change; a sync
/// queued or running already gets its version bumped, so one that read the room before the
/// change does not close the job.
pub async fn enqueue_recheck(conn: &mut AnyConnection, key: JobKey, now: i64) -> sqlx::Result<()> {
    enqueue_check(conn, key, "reconcile", now).await
}

/// Queues linking the room to its organization's space, made after the room: as a drift check
/// (the room is not pending for it), but what it changes is not drift.
pub async fn enqueue_link(conn: &mut AnyConnection, room: ChatroomId, now: i64) -> sqlx::Result<()> {
    enqueue_check(conn, JobKey::Room(room), "link", now).await
}

/// A queued change stays a change; a drift check queued beside a link makes it a drift check, so
/// a foreign change is never left uncounted (the link then may count once as a repair).
async fn enqueue_check(conn: &mut AnyConnection, key: JobKey, reason: &str, now: i64) -> sqlx::Result<()> {
    let (table, column) = (key.table(), key.column());
    sqlx::query(&format!(
        "INSERT INTO {table} ({column}, version, attempts, next_attempt_at, failed, reason, queued_at) \
         VALUES ($1, 1, 0, $2, 0, $3, $2) \
         ON CONFLICT ({column}) DO UPDATE SET version = {table}.version + 1, \
           reason = CASE WHEN {table}.reason = 'link' THEN excluded.reason ELSE {table}.reason END"
    ))
    .bind(key.id())
    .bind(now)
    .bind(reason)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Lease {
    /// We hold the room until `locked_until`; the job's version when we took it.
    Held { version: i64, attempts: i64, refusals: i64, drift_check: bool },
    /// Nothing to do: the room is in sync.
    NoJob,
    /// Another worker (maybe another instance) holds the room.
    Busy,
    /// The last attempt failed and the next one is planned this many milliseconds from now:
    /// a second caller does not retry at once behind the first one's back.
    NotDue(i64),
    /// Retries stopped (`failed`) since the caller last looked: another worker made the last
    /// attempt. Only a new change or a forced sync starts them again.
    Stopped { last_error: Option<String> },
}

/// Takes the room's lease, so that no other worker, here or in another instance, writes it.
pub async fn lease(
    conn: &mut AnyConnection,
    key: JobKey,
    owner: &str,
    now: i64,
    until: i64,
) -> sqlx::Result<Lease> {
    let (table, column) = (key.table(), key.column());
    let taken: Option<(i64, i64, i64, String)> = sqlx::query_as(&format!(
        "UPDATE {table} SET locked_by = $2, locked_until = $4 \
         WHERE {column} = $1 AND next_attempt_at <= $3 AND failed = 0 \
           AND (locked_until IS NULL OR locked_until < $3 OR locked_by = $2) \
         RETURNING version, attempts, refusals, reason"
    ))
    .bind(key.id())
    .bind(owner)
    .bind(now)
    .bind(until)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some((version, attempts, refusals, reason)) = taken {
        return Ok(Lease::Held { version, attempts, refusals, drift_check: reason == "reconcile" });
    }
    let job: Option<(i64, Option<i64>, i64, Option<String>)> = sqlx::query_as(&format!(
        "SELECT next_attempt_at, locked_until, failed, last_error FROM {table} WHERE {column} = $1"
    ))
    .bind(key.id())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match job {
        None => Lease::NoJob,
        Some((_, Some(locked_until), _, _)) if locked_until >= now => Lease::Busy,
        Some((_, _, failed, last_error)) if failed != 0 => Lease::Stopped { last_error },
        Some((next_attempt_at, _, _, _)) => Lease::NotDue(next_attempt_at - now),
    })
}

/// Keeps holding the room while a long sync runs.
pub async fn extend_lease(
    conn: &mut AnyConnection,
    key: JobKey,
    owner: &str,
    until: i64,
) -> sqlx::Result<()> {
    let (table, column) = (key.table(), key.column());
    sqlx::query(&format!("UPDATE {table} SET locked_until = $3 WHERE {column} = $1 AND locked_by = $2"))
        .bind(key.id())
        .bind(owner)
        .bind(until)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Rooms and spaces whose sync is due and that nobody holds, longest due first.
pub async fn due(conn: &mut AnyConnection, now: i64, limit: i64) -> sqlx::Result<Vec<JobKey>> {
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT * FROM (SELECT CAST(0 AS BIGINT) AS kind, chatroom_id AS id, next_attempt_at FROM sync_jobs \
           WHERE failed = 0 AND next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until < $1) \
           ORDER BY next_attempt_at LIMIT $2) rooms \
         UNION ALL SELECT * FROM (SELECT CAST(1 AS BIGINT) AS kind, organization_id AS id, next_attempt_at FROM space_jobs \
           WHERE failed = 0 AND next_attempt_at <= $1 AND (locked_until IS NULL OR locked_until < $1) \
           ORDER BY next_attempt_at LIMIT $2) spaces",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut due: Vec<(i64, JobKey)> = rows
        .into_iter()
        .map(|(kind, id, at)| (at, if kind == 0 { JobKey::Room(id) } else { JobKey::Space(id) }))
        .collect();
    due.sort();
    Ok(due.into_iter().take(limit.max(0) as usize).map(|(_, key)| key).collect())
}

/// The sync reached `version`: drop the job unless a newer change arrived meanwhile.
/// Closes the job the attempt took; false when a newer change (or a pushed drift report) came
/// in meanwhile and the job stays for another pass.
pub async fn complete(
    conn: &mut AnyConnection,
    key: JobKey,
    version: i64,
    owner: &str,
) -> sqlx::Result<bool> {
    let (table, column) = (key.table(), key.column());
    let closed = sqlx::query(&format!("DELETE FROM {table} WHERE {column} = $1 AND version = $2"))
        .bind(key.id())
        .bind(version)
        .execute(&mut *conn)
        .await?;
    release(conn, key, owner).await?;
    Ok(closed.rows_affected() > 0)
}

/// What a failed attempt leaves behind.
pub struct Failure<'a> {
    pub error: &'a str,
    /// `transient`, `refused` or `configuration`.
    pub kind: &'a str,
    /// Refusals in a row, this one included (0 after a transient failure).
    pub refusals: i64,
    pub next_attempt_at: i64,
    /// Stops the retries until someone forces one (or, for a configuration error, a restart).
    pub failed: bool,
}

/// Records a failed attempt at `version` and when to try again. A change that arrived during
/// the attempt (a newer version) starts afresh: it keeps its reset counts and its due time.
pub async fn record_failure(
    conn: &mut AnyConnection,
    key: JobKey,
    owner: &str,
    version: i64,
    failure: &Failure<'_>,
) -> sqlx::Result<()> {
    let (table, column) = (key.table(), key.column());
    sqlx::query(&format!(
        "UPDATE {table} SET last_error = $4, error_kind = $5, \
           attempts = CASE WHEN version = $8 THEN attempts + 1 ELSE attempts END, \
           refusals = CASE WHEN version = $8 THEN $3 ELSE 0 END, \
           next_attempt_at = CASE WHEN version = $8 THEN $6 ELSE next_attempt_at END, \
           failed = CASE WHEN version = $8 THEN $7 ELSE 0 END, \
           locked_by = NULL, locked_until = NULL \
         WHERE {column} = $1 AND locked_by = $2"
    ))
    .bind(key.id())
    .bind(owner)
    .bind(failure.refusals)
    .bind(failure.error)
    .bind(failure.kind)
    .bind(failure.next_attempt_at)
    .bind(failure.failed as i64)
    .bind(version)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// After a restart the configuration may be fixed: rooms stopped by a refused service token
/// are retried.
pub async fn retry_configuration_failures(conn: &mut AnyConnection, now: i64) -> sqlx::Result<u64> {
    let mut retried = 0;
    for table in ["sync_jobs", "space_jobs"] {
        let result = sqlx::query(&format!(
            "UPDATE {table} SET failed = 0, refusals = 0, next_attempt_at = $1 \
             WHERE failed = 1 AND error_kind = 'configuration'"
        ))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        retried += result.rows_affected();
    }
    Ok(retried)
}

pub async fn release(conn: &mut AnyConnection, key: JobKey, owner: &str) -> sqlx::Result<()> {
    let (table, column) = (key.table(), key.column());
    sqlx::query(&format!(
        "UPDATE {table} SET locked_by = NULL, locked_until = NULL WHERE {column} = $1 AND locked_by = $2"
    ))
    .bind(key.id())
    .bind(owner)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Hands back every room this worker holds (on shutdown), so another instance need not wait
/// for the leases to expire.
pub async fn release_all(conn: &mut AnyConnection, owner: &str) -> sqlx::Result<u64> {
    let mut released = 0;
    for table in ["sync_jobs", "space_jobs"] {
        let result = sqlx::query(&format!(
            "UPDATE {table} SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1"
        ))
        .bind(owner)
        .execute(&mut *conn)
        .await?;
        released += result.rows_affected();
    }
    Ok(released)
}

/// A room's sync is about to make joins: `joined` of the `listed` users are in already.
pub async fn start_progress(
    conn: &mut AnyConnection,
    id: ChatroomId,
    joined: i64,
    listed: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE sync_jobs SET members_joined = $2, members_listed = $3 WHERE chatroom_id = $1")
        .bind(id)
        .bind(joined)
        .bind(listed)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// One more of the room's listed users joined.
pub async fn count_join(conn: &mut AnyConnection, id: ChatroomId) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sync_jobs SET members_joined = members_joined + 1 \
         WHERE chatroom_id = $1 AND members_joined < members_listed",
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// The outbox at a glance, for the metrics gauges.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Rooms waiting for a change or deletion to reach the homeserver, or for a drift check
    /// that failed; failed jobs, untried drift checks and untried space links excluded (as
    /// `syncStatus` counts).
    pub pending: i64,
    /// When the longest-waiting of those was queued, in Unix milliseconds.
    pub oldest_queued_at: Option<i64>,
    /// Live rooms by the `syncStatus` their responses show.
    pub rooms: ByStatus,
    /// Organizations with a space (made, or being made) by their `syncStatus`.
    pub spaces: ByStatus,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ByStatus {
    pub synced: i64,
    pub pending: i64,
    pub failed: i64,
}

impl ByStatus {
    fn of(counts: &[(String, i64)]) -> Self {
        let count = |status: &str| counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        Self { synced: count("synced"), pending: count("pending"), failed: count("failed") }
    }
}

pub async fn backlog(conn: &mut AnyConnection) -> sqlx::Result<Backlog> {
    let (pending, oldest_queued_at): (i64, Option<i64>) = sqlx::query_as(&format!(
        "SELECT COUNT(*), MIN(queued_at) FROM sync_jobs WHERE failed = 0 AND NOT {}",
        untried_check("")
    ))
    .fetch_one(&mut *conn)
    .await?;
    // The same rule as `syncStatus` (an untried check or link is not a change), for the row's
    // job (`column`: its key in the jobs table).
    let status = |column: &str| {
        format!(
            "CASE WHEN j.{column} IS NULL OR {} THEN 'synced' WHEN j.failed <> 0 THEN 'failed' ELSE 'pending' END",
            untried_check("j.")
        )
    };
    let rooms: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT {}, COUNT(*) FROM chatrooms c LEFT JOIN sync_jobs j ON j.chatroom_id = c.id \
         WHERE c.deleted_at IS NULL GROUP BY 1",
        status("chatroom_id")
    ))
    .fetch_all(&mut *conn)
    .await?;
    let spaces: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT {}, COUNT(*) FROM organizations o LEFT JOIN space_jobs j ON j.organization_id = o.id \
         WHERE o.matrix_space_id IS NOT NULL OR j.organization_id IS NOT NULL GROUP BY 1",
        status("organization_id")
    ))
    .fetch_all(&mut *conn)
    .await?;
    Ok(Backlog { pending, oldest_queued_at, rooms: ByStatus::of(&rooms), spaces: ByStatus::of(&spaces) })
}
