//! Chatroom records and their role lists.

use std::collections::BTreeMap;

use ruma::{OwnedMxcUri, OwnedRoomId, RoomId};
use sqlx::{any::AnyRow, AnyConnection, Row};

use super::{fetch_where_in, rosters, Tx};
use crate::domain::{
    AppUserId, ChatroomId, EventId, OrganizationId, Role, RoleLists, RoomKind, RoomMembers, RoomSettings,
    RoomTopic, SettingsChange,
};

/// A chatroom as stored, with its role lists and sync state.
#[derive(Clone, Debug)]
pub struct Chatroom {
    pub id: ChatroomId,
    pub kind: RoomKind,
    pub organization_id: OrganizationId,
    pub event_id: Option<EventId>,
    pub name: String,
    pub avatar_url: Option<OwnedMxcUri>,
    pub automation_enabled: bool,
    /// Unix milliseconds.
    pub scheduled_deletion: Option<i64>,
    pub matrix_room_id: Option<OwnedRoomId>,
    pub matrix_alias: String,
    /// The organization's Matrix space, once made: the room's canonical parent.
    pub space_id: Option<OwnedRoomId>,
    pub deleted: bool,
    /// When the room was archived (Unix milliseconds), or None.
    pub archived_at: Option<i64>,
    /// End-to-end encrypted: the homeserver holds only ciphertext, the service reads nothing.
    pub encrypted: bool,
    pub settings: RoomSettings,
    /// Pinned messages (event ids) as last seen on the homeserver.
    pub pinned: Vec<String>,
    /// Its explicit lists and, when automation follows a roster, what the roster makes of it.
    pub roles: RoomMembers,
    pub sync: SyncState,
}

/// What a room's automation follows: an automated default room its organization's members, an
/// automated event room its event's participants. Custom rooms have no roster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RosterOf {
    Organization(OrganizationId),
    Event(OrganizationId, EventId),
}

impl RosterOf {
    pub fn for_room(
        kind: RoomKind,
        org: OrganizationId,
        event: Option<EventId>,
        automated: bool,
    ) -> Option<Self> {
        match (automated, kind, event) {
            (true, RoomKind::Default, _) => Some(Self::Organization(org)),
            (true, RoomKind::Event, Some(event)) => Some(Self::Event(org, event)),
            _ => None,
        }
    }
}

impl Chatroom {
    pub fn roster_of(&self) -> Option<RosterOf> {
        RosterOf::for_room(self.kind, self.organization_id, self.event_id, self.automation_enabled)
    }
}

/// The room roles a roster gives: an organization's admins are admins, its members and an
/// event's participants assigned users.
pub async fn roster_roles(conn: &mut AnyConnection, roster: Option<RosterOf>) -> sqlx::Result<RoleLists> {
    Ok(match roster {
        None => RoleLists::default(),
        Some(RosterOf::Organization(org)) => rosters::members(conn, org).await?.room_roles(),
        Some(RosterOf::Event(org, event)) => rosters::participants(conn, org, event).await?.room_roles(),
    })
}

/// Derived from the room's outbox row: no row means the homeserver matches the database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncState {
    pub pending: bool,
    pub failed: bool,
    pub last_error: Option<String>,
    /// While pending, how far the last sync with joins to make got.
    pub progress: Option<MembersProgress>,
}

/// Of the users a room's lists want joined, how many were when its sync last counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembersProgress {
    pub joined: i64,
    pub listed: i64,
}

pub struct NewChatroom<'a> {
    pub kind: RoomKind,
    pub organization_id: OrganizationId,
    pub event_id: Option<EventId>,
    pub name: &'a str,
    pub avatar_url: Option<&'a OwnedMxcUri>,
    pub automation_enabled: bool,
    pub scheduled_deletion: Option<i64>,
    pub matrix_alias: &'a str,
    pub settings: &'a RoomSettings,
    pub encrypted: bool,
}

/// Fields an update may change; `None` leaves a field as it is.
pub struct ChatroomChanges<'a> {
    pub name: Option<&'a str>,
    pub avatar_url: Option<Option<&'a OwnedMxcUri>>,
    pub automation_enabled: Option<bool>,
    pub scheduled_deletion: Option<Option<i64>>,
    pub settings: &'a SettingsChange,
}

const COLUMNS: &str =
    "c.id, c.kind, c.organization_id, c.event_id, c.name, c.avatar_url, c.automation_enabled, \
     c.scheduled_deletion, c.matrix_room_id, c.matrix_alias, c.deleted_at, c.topic, c.read_only, c.max_users, c.pinned_events, c.archived_at, c.encrypted, \
     j.chatroom_id AS job_room, j.failed AS job_failed, j.last_error AS job_error, j.reason AS job_reason, \
     j.attempts AS job_attempts, j.members_listed AS job_listed, j.members_joined AS job_joined, \
     o.matrix_space_id AS space_id";
const FROM: &str = "chatrooms c LEFT JOIN sync_jobs j ON j.chatroom_id = c.id \
     LEFT JOIN organizations o ON o.id = c.organization_id";

fn from_row(row: &AnyRow) -> sqlx::Result<Chatroom> {
    let kind: String = row.try_get("kind")?;
    let room_id: Option<String> = row.try_get("matrix_room_id")?;
    let avatar: Option<String> = row.try_get("avatar_url")?;
    let deleted_at: Option<i64> = row.try_get("deleted_at")?;
    let job_room: Option<i64> = row.try_get("job_room")?;
    let job_reason: Option<String> = row.try_get("job_reason")?;
    let job_attempts: Option<i64> = row.try_get("job_attempts")?;
    // A drift check is not a pending change, unless it has failed.
    let pending = super::jobs::pending(job_room, job_reason.as_deref(), job_attempts);
    Ok(Chatroom {
        id: row.try_get("id")?,
        kind: RoomKind::parse(&kind).ok_or_else(|| decode_error(format!("room kind {kind:?}")))?,
        organization_id: row.try_get("organization_id")?,
        event_id: row.try_get("event_id")?,
        name: row.try_get("name")?,
        avatar_url: avatar.map(OwnedMxcUri::from),
        automation_enabled: row.try_get::<i64, _>("automation_enabled")? != 0,
        scheduled_deletion: row.try_get("scheduled_deletion")?,
        matrix_room_id: room_id
            .map(|id| RoomId::parse(&id).map_err(|e| decode_error(format!("room id {id:?}: {e}"))))
            .transpose()?,
        matrix_alias: row.try_get("matrix_alias")?,
        space_id: row.try_get::<Option<String>, _>("space_id")?.and_then(|id| RoomId::parse(id).ok()),
        deleted: deleted_at.is_some(),
        archived_at: row.try_get("archived_at")?,
        encrypted: row.try_get::<i64, _>("encrypted")? != 0,
        settings: RoomSettings {
            topic: row.try_get::<Option<String>, _>("topic")?.map(RoomTopic::stored),
            read_only: row.try_get::<i64, _>("read_only")? != 0,
            max_users: row.try_get("max_users")?,
        },
        pinned: row
            .try_get::<Option<String>, _>("pinned_events")?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
        roles: RoomMembers::default(),
        sync: SyncState {
            pending,
            failed: row.try_get::<Option<i64>, _>("job_failed")?.unwrap_or(0) != 0,
            last_error: row.try_get("job_error")?,
            progress: match (row.try_get::<Option<i64>, _>("job_joined")?, row.try_get("job_listed")?) {
                (Some(joined), Some(listed)) if pending => Some(MembersProgress { joined, listed }),
                _ => None,
            },
        },
    })
}

fn decode_error(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

/// Fills in the role lists of `rooms`, and the rosters automated rooms follow: a few queries for
/// a whole page, not one per room.
async fn attach_roles(conn: &mut AnyConnection, rooms: &mut [Chatroom]) -> sqlx::Result<()> {
    let ids: Vec<ChatroomId> = rooms.iter().map(|room| room.id).collect();
    let mut roles: BTreeMap<ChatroomId, BTreeMap<AppUserId, Role>> = BTreeMap::new();
    let select = "SELECT chatroom_id, app_user_id, role FROM chatroom_members WHERE chatroom_id";
    for row in fetch_where_in(conn, select, &ids).await? {
        let role: String = row.try_get("role")?;
        let role = Role::parse(&role).ok_or_else(|| decode_error(format!("role {role:?}")))?;
        roles.entry(row.try_get("chatroom_id")?).or_default().insert(row.try_get("app_user_id")?, role);
    }
    let rostered: Vec<RosterOf> = rooms.iter().filter_map(Chatroom::roster_of).collect();
    let orgs: Vec<OrganizationId> = rostered
        .iter()
        .filter_map(|r| match r {
            RosterOf::Organization(org) => Some(*org),
            RosterOf::Event(..) => None,
        })
        .collect();
    let events: Vec<(OrganizationId, EventId)> = rostered
        .iter()
        .filter_map(|r| match r {
            RosterOf::Event(org, event) => Some((*org, *event)),
            RosterOf::Organization(_) => None,
        })
        .collect();
    let members = if orgs.is_empty() { BTreeMap::new() } else { rosters::members_of(conn, &orgs).await? };
    let participants =
        if events.is_empty() { BTreeMap::new() } else { rosters::participants_of(conn, &events).await? };
    for room in rooms.iter_mut() {
        let explicit = RoleLists::from_roles(roles.remove(&room.id).unwrap_or_default());
        let roster = match room.roster_of() {
            None => RoleLists::default(),
            Some(RosterOf::Organization(org)) => {
                members.get(&org).map(|m| m.room_roles()).unwrap_or_default()
            }
            Some(RosterOf::Event(org, event)) => {
                participants.get(&(org, event)).map(|p| p.room_roles()).unwrap_or_default()
            }
        };
        room.roles = RoomMembers::new(explicit, roster);
    }
    Ok(())
}

/// The organization a chatroom (live or being deleted) belongs to, without loading the room.
pub async fn organization_of(
    conn: &mut AnyConnection,
    id: ChatroomId,
) -> sqlx::Result<Option<OrganizationId>> {
    sqlx::query_scalar("SELECT organization_id FROM chatrooms WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
}

/// A live (not deleted) chatroom.
pub async fn find(conn: &mut AnyConnection, id: ChatroomId) -> sqlx::Result<Option<Chatroom>> {
    Ok(find_including_deleted(conn, id).await?.filter(|room| !room.deleted))
}

/// A chatroom even after its deletion was requested: the reconciler still has to purge it.
pub async fn find_including_deleted(
    conn: &mut AnyConnection,
    id: ChatroomId,
) -> sqlx::Result<Option<Chatroom>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE c.id = $1");
    find_one(conn, sqlx::query(&sql).bind(id)).await
}

pub async fn find_default(conn: &mut AnyConnection, org: OrganizationId) -> sqlx::Result<Option<Chatroom>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE c.organization_id = $1 AND c.kind = 'default' AND c.deleted_at IS NULL"
    );
    find_one(conn, sqlx::query(&sql).bind(org)).await
}

pub async fn find_for_event(
    conn: &mut AnyConnection,
    org: OrganizationId,
    event: EventId,
) -> sqlx::Result<Option<Chatroom>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} \
         WHERE c.organization_id = $1 AND c.event_id = $2 AND c.kind = 'event' AND c.deleted_at IS NULL"
    );
    find_one(conn, sqlx::query(&sql).bind(org).bind(event)).await
}

async fn find_one<'q>(
    conn: &mut AnyConnection,
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> sqlx::Result<Option<Chatroom>> {
    let Some(row) = query.fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let mut rooms = [from_row(&row)?];
    attach_roles(conn, &mut rooms).await?;
    let [room] = rooms;
    Ok(Some(room))
}

/// Which rooms a list shows, by whether they are archived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Archived {
    /// Only rooms in use (the default).
    Exclude,
    Only,
    Any,
}

impl Archived {
    fn filter(self) -> &'static str {
        match self {
            Self::Exclude => " AND c.archived_at IS NULL",
            Self::Only => " AND c.archived_at IS NOT NULL",
            Self::Any => "",
        }
    }
}

/// Which page of an organization's rooms to list, and whose view.
pub struct ListQuery {
    pub organization_id: OrganizationId,
    /// Only rooms this user holds a role in (callers who do not manage the organization).
    pub member: Option<AppUserId>,
    pub archived: Archived,
    /// How many rooms, after how many.
    pub page: (i64, i64),
}

/// A page of rooms in id order, and how many rooms there are in all.
pub async fn list(conn: &mut AnyConnection, query: &ListQuery) -> sqlx::Result<(Vec<Chatroom>, i64)> {
    // A role in the lists, or by the roster the room follows.
    let member_filter = if query.member.is_some() {
        " AND (EXISTS (SELECT 1 FROM chatroom_members m WHERE m.chatroom_id = c.id AND m.app_user_id = $2) \
           OR (c.automation_enabled <> 0 AND c.kind = 'default' AND EXISTS (SELECT 1 FROM organization_members o \
               WHERE o.organization_id = c.organization_id AND o.app_user_id = $2)) \
           OR (c.automation_enabled <> 0 AND c.kind = 'event' AND EXISTS (SELECT 1 FROM event_participants p \
               WHERE p.organization_id = c.organization_id AND p.event_id = c.event_id AND p.app_user_id = $2)))"
    } else {
        " AND $2 IS NULL"
    };
    // In the (organization_id, id) index's order.
    let sql = format!(
        "SELECT {COLUMNS}, COUNT(*) OVER () AS total FROM {FROM} \
         WHERE c.organization_id = $1 AND c.deleted_at IS NULL{member_filter}{archived} ORDER BY c.id LIMIT $3 OFFSET $4",
        archived = query.archived.filter()
    );
    fetch_page(conn, query.page, |limit, offset| {
        sqlx::query(&sql).bind(query.organization_id).bind(query.member).bind(limit).bind(offset)
    })
    .await
}

/// Which of a user's rooms to list: within these organizations only, when given.
pub struct UserRoomsQuery<'a> {
    pub user: AppUserId,
    pub organizations: Option<&'a [OrganizationId]>,
    pub archived: Archived,
    /// How many rooms, after how many.
    pub page: (i64, i64),
}

/// A page of the live rooms a user is in, in id order, each with whether the user is banned
/// there, and how many there are in all: those whose lists name them, automated rooms whose
/// roster does, and those they are banned from.
pub async fn list_of_user(
    conn: &mut AnyConnection,
    query: &UserRoomsQuery<'_>,
) -> sqlx::Result<(Vec<(Chatroom, bool)>, i64)> {
    let scope = match query.organizations {
        None => String::new(),
        Some([]) => return Ok((Vec::new(), 0)),
        Some(orgs) => {
            let placeholders: Vec<String> = (4..4 + orgs.len()).map(|i| format!("${i}")).collect();
            format!(" AND c.organization_id IN ({})", placeholders.join(", "))
        }
    };
    // Each branch reads an index by user; the rooms are then looked up by id.
    let sql = format!(
        "WITH theirs (id) AS ( \
           SELECT chatroom_id FROM chatroom_members WHERE app_user_id = $1 \
           UNION SELECT r.id FROM organization_members m JOIN chatrooms r ON r.organization_id = m.organization_id \
             WHERE m.app_user_id = $1 AND r.kind = 'default' AND r.automation_enabled <> 0 AND r.deleted_at IS NULL \
           UNION SELECT r.id FROM event_participants p JOIN chatrooms r \
             ON r.organization_id = p.organization_id AND r.event_id = p.event_id \
             WHERE p.app_user_id = $1 AND r.kind = 'event' AND r.automation_enabled <> 0 AND r.deleted_at IS NULL \
           UNION SELECT chatroom_id FROM room_bans WHERE app_user_id = $1 AND lifted_at IS NULL) \
         SELECT {COLUMNS}, COUNT(*) OVER () AS total, \
           CAST(CASE WHEN EXISTS (SELECT 1 FROM room_bans b WHERE b.chatroom_id = c.id \
             AND b.app_user_id = $1 AND b.lifted_at IS NULL) THEN 1 ELSE 0 END AS BIGINT) AS banned \
         FROM {FROM} WHERE c.id IN (SELECT id FROM theirs) AND c.deleted_at IS NULL{scope}{archived} \
         ORDER BY c.id LIMIT $2 OFFSET $3",
        archived = query.archived.filter()
    );
    let (rows, total) = page_rows(conn, query.page, |limit, offset| {
        let mut page = sqlx::query(&sql).bind(query.user).bind(limit).bind(offset);
        for org in query.organizations.unwrap_or_default() {
            page = page.bind(*org);
        }
        page
    })
    .await?;
    let rooms = rooms_of_rows(conn, &rows).await?;
    let banned = rows.iter().map(|row| row.try_get::<i64, _>("banned").map(|b| b != 0));
    Ok((
        rooms
            .into_iter()
            .zip(banned)
            .map(|(room, banned)| Ok((room, banned?)))
            .collect::<sqlx::Result<_>>()?,
        total,
    ))
}

/// The Matrix rooms of an organization's live rooms (archived ones included, end-to-end
/// encrypted ones not: nothing in them is readable), in id order.
pub async fn matrix_rooms_of(
    conn: &mut AnyConnection,
    org: OrganizationId,
) -> sqlx::Result<Vec<(ChatroomId, String)>> {
    sqlx::query_as(
        "SELECT id, matrix_room_id FROM chatrooms \
         WHERE organization_id = $1 AND deleted_at IS NULL AND matrix_room_id IS NOT NULL AND encrypted = 0 \
         ORDER BY id",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await
}

/// Up to `limit` live rooms after `after` in id order (of one organization, when given),
/// archived ones included, with their roles.
pub async fn page_after(
    conn: &mut AnyConnection,
    org: Option<OrganizationId>,
    after: ChatroomId,
    limit: i64,
) -> sqlx::Result<Vec<Chatroom>> {
    // Each form reads its own index: (organization_id, id) or the primary key.
    let scope = if org.is_some() { "c.organization_id = $1" } else { "$1 IS NULL" };
    let sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE {scope} AND c.id > $2 AND c.deleted_at IS NULL ORDER BY c.id LIMIT $3"
    );
    let rows = sqlx::query(&sql).bind(org).bind(after).bind(limit).fetch_all(&mut *conn).await?;
    let mut rooms = rows.iter().map(from_row).collect::<sqlx::Result<Vec<_>>>()?;
    attach_roles(conn, &mut rooms).await?;
    Ok(rooms)
}

/// The rooms of a `(limit, offset)` page, with their roles, and the total their rows carry
/// (`COUNT(*) OVER ()`, one round trip).
async fn fetch_page<'q>(
    conn: &mut AnyConnection,
    page: (i64, i64),
    query: impl Fn(i64, i64) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> sqlx::Result<(Vec<Chatroom>, i64)> {
    let (rows, total) = page_rows(conn, page, query).await?;
    Ok((rooms_of_rows(conn, &rows).await?, total))
}

/// The rows of a `(limit, offset)` page and the total they carry.
async fn page_rows<'q>(
    conn: &mut AnyConnection,
    (limit, offset): (i64, i64),
    query: impl Fn(i64, i64) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> sqlx::Result<(Vec<AnyRow>, i64)> {
    let rows = query(limit, offset).fetch_all(&mut *conn).await?;
    let first = match (rows.first(), offset) {
        (Some(row), _) => Some(row.try_get("total")?),
        (None, 0) => None,
        // A page past the end: the first page's row still carries the total.
        (None, _) => {
            query(1, 0).fetch_optional(&mut *conn).await?.map(|row| row.try_get("total")).transpose()?
        }
    };
    Ok((rows, first.unwrap_or(0)))
}

/// The rooms of some rows, with their roles.
async fn rooms_of_rows(conn: &mut AnyConnection, rows: &[AnyRow]) -> sqlx::Result<Vec<Chatroom>> {
    let mut rooms = rows.iter().map(from_row).collect::<sqlx::Result<Vec<_>>>()?;
    attach_roles(conn, &mut rooms).await?;
    Ok(rooms)
}

pub async fn insert(tx: &mut Tx, room: &NewChatroom<'_>, now: i64) -> sqlx::Result<ChatroomId> {
    sqlx::query_scalar(
        "INSERT INTO chatrooms (kind, organization_id, event_id, name, avatar_url, automation_enabled, \
         scheduled_deletion, matrix_alias, created_at, updated_at, topic, read_only, max_users, encrypted) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13) RETURNING id",
    )
    .bind(room.kind.as_str())
    .bind(room.organization_id)
    .bind(room.event_id)
    .bind(room.name)
    .bind(room.avatar_url.map(|u| u.to_string()))
    .bind(room.automation_enabled as i64)
    .bind(room.scheduled_deletion)
    .bind(room.matrix_alias)
    .bind(now)
    .bind(room.settings.topic.as_ref().map(RoomTopic::as_str))
    .bind(room.settings.read_only as i64)
    .bind(room.settings.max_users)
    .bind(room.encrypted as i64)
    .fetch_one(&mut **tx)
    .await
}

/// Marks the room end-to-end encrypted (never undone: Matrix cannot turn it off either).
pub async fn set_encrypted(conn: &mut AnyConnection, id: ChatroomId) -> sqlx::Result<()> {
    sqlx::query("UPDATE chatrooms SET encrypted = 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Archives (`Some(at)`) or unarchives (`None`) a live room; false when it already was, or is
/// gone or being deleted (nothing was written).
pub async fn set_archived(tx: &mut Tx, id: ChatroomId, at: Option<i64>, now: i64) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "UPDATE chatrooms SET archived_at = $2, updated_at = $3 \
         WHERE id = $1 AND deleted_at IS NULL AND (archived_at IS NULL) <> ($2 IS NULL)",
    )
    .bind(id)
    .bind(at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(changed.rows_affected() == 1)
}

/// Changes a live room; false when it is gone or being deleted (nothing was written).
pub async fn update(
    tx: &mut Tx,
    id: ChatroomId,
    changes: &ChatroomChanges<'_>,
    now: i64,
) -> sqlx::Result<bool> {
    // Each field is set to itself unless a new value is given; flags say which.
    sqlx::query(
        "UPDATE chatrooms SET \
           name = CASE WHEN $2 THEN $3 ELSE name END, \
           avatar_url = CASE WHEN $4 THEN $5 ELSE avatar_url END, \
           automation_enabled = CASE WHEN $6 THEN $7 ELSE automation_enabled END, \
           scheduled_deletion = CASE WHEN $8 THEN $9 ELSE scheduled_deletion END, \
           updated_at = $10, \
           topic = CASE WHEN $11 THEN $12 ELSE topic END, \
           read_only = CASE WHEN $13 THEN $14 ELSE read_only END, \
           max_users = CASE WHEN $15 THEN $16 ELSE max_users END \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(changes.name.is_some())
    .bind(changes.name.unwrap_or_default())
    .bind(changes.avatar_url.is_some())
    .bind(changes.avatar_url.flatten().map(|u| u.to_string()))
    .bind(changes.automation_enabled.is_some())
    .bind(changes.automation_enabled.unwrap_or_default() as i64)
    .bind(changes.scheduled_deletion.is_some())
    .bind(changes.scheduled_deletion.flatten())
    .bind(now)
    .bind(changes.settings.topic.is_some())
    .bind(changes.settings.topic.clone().flatten().map(|topic| topic.as_str().to_owned()))
    .bind(changes.settings.read_only.is_some())
    .bind(changes.settings.read_only.unwrap_or_default() as i64)
    .bind(changes.settings.max_users.is_some())
    .bind(changes.settings.max_users.flatten())
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected() > 0)
}

/// Another chatroom (a copy made with `copyFrom`, or its template) shows the same avatar.
pub async fn avatar_used_elsewhere(
    conn: &mut AnyConnection,
    id: ChatroomId,
    avatar: &OwnedMxcUri,
) -> sqlx::Result<bool> {
    let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chatrooms WHERE avatar_url = $1 AND id <> $2")
        .bind(avatar.as_str())
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(others > 0)
}

/// Marks a live room changed, taking its row lock for the rest of the transaction (a
/// concurrent deletion waits or is waited for); false when it is gone or being deleted.
pub async fn touch_live(tx: &mut Tx, id: ChatroomId, now: i64) -> sqlx::Result<bool> {
    let result = sqlx::query("UPDATE chatrooms SET updated_at = $2 WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Gives each listed user their role, moving users who held another one.
pub async fn put_roles(tx: &mut Tx, id: ChatroomId, roles: &RoleLists) -> sqlx::Result<()> {
    for (user, role) in roles.iter() {
        sqlx::query(
            "INSERT INTO chatroom_members (chatroom_id, app_user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (chatroom_id, app_user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(id)
        .bind(user)
        .bind(role.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Makes the role lists exactly `roles`.
pub async fn replace_roles(tx: &mut Tx, id: ChatroomId, roles: &RoleLists) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM chatroom_members WHERE chatroom_id = $1").bind(id).execute(&mut **tx).await?;
    put_roles(tx, id, roles).await
}

/// Removes a user from the room's lists; false if they held no role.
pub async fn remove_member(tx: &mut Tx, id: ChatroomId, user: AppUserId) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM chatroom_members WHERE chatroom_id = $1 AND app_user_id = $2")
        .bind(id)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// The chatroom a Matrix room belongs to, live or being deleted.
pub async fn find_by_matrix_room(conn: &mut AnyConnection, room: &str) -> sqlx::Result<Option<Chatroom>> {
    let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE c.matrix_room_id = $1");
    find_one(conn, sqlx::query(&sql).bind(room)).await
}

/// Remembers which room a history purge belongs to.
pub async fn record_truncation(
    conn: &mut AnyConnection,
    id: ChatroomId,
    purge_id: &str,
    now: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO room_truncations (purge_id, chatroom_id, started_at) VALUES ($1, $2, $3)")
        .bind(purge_id)
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Whether the purge was started for this room.
pub async fn truncation_of(conn: &mut AnyConnection, id: ChatroomId, purge_id: &str) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT chatroom_id FROM room_truncations WHERE purge_id = $1 AND chatroom_id = $2",
    )
    .bind(purge_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// Records the room's pinned messages as the homeserver has them.
pub async fn set_pinned(conn: &mut AnyConnection, id: ChatroomId, pinned: &[String]) -> sqlx::Result<()> {
    let json = serde_json::to_string(pinned).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query("UPDATE chatrooms SET pinned_events = $2 WHERE id = $1")
        .bind(id)
        .bind(json)
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

pub async fn set_matrix_room_id(conn: &mut AnyConnection, id: ChatroomId, room: &RoomId) -> sqlx::Result<()> {
    sqlx::query("UPDATE chatrooms SET matrix_room_id = $2 WHERE id = $1")
        .bind(id)
        .bind(room.as_str())
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Forgets a half-made Matrix room of the room and queues it for purging, in one transaction.
pub async fn retire_matrix_room(tx: &mut Tx, id: ChatroomId, room: &RoomId, now: i64) -> sqlx::Result<()> {
    queue_retired(tx, room, now).await?;
    sqlx::query("UPDATE chatrooms SET matrix_room_id = NULL WHERE id = $1 AND matrix_room_id = $2")
        .bind(id)
        .bind(room.as_str())
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Queues a half-made Matrix room (a chatroom's or a space) for purging.
pub async fn queue_retired(tx: &mut Tx, room: &RoomId, now: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO retired_rooms (matrix_room_id, retired_at) VALUES ($1, $2) ON CONFLICT (matrix_room_id) DO NOTHING",
    )
    .bind(room.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Retired Matrix rooms still to purge (never one a chatroom or an organization names).
pub async fn retired_rooms(conn: &mut AnyConnection, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT r.matrix_room_id FROM retired_rooms r \
         WHERE NOT EXISTS (SELECT 1 FROM chatrooms c WHERE c.matrix_room_id = r.matrix_room_id) \
           AND NOT EXISTS (SELECT 1 FROM organizations o WHERE o.matrix_space_id = r.matrix_room_id) \
         ORDER BY r.retired_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

pub async fn forget_retired_room(conn: &mut AnyConnection, room: &RoomId) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM retired_rooms WHERE matrix_room_id = $1")
        .bind(room.as_str())
        .execute(&mut *conn)
        .await
        .map(|_| ())
}

/// Marks a live room for deletion; false if it was gone or marked already (so it happens once).
pub async fn mark_deleted(tx: &mut Tx, id: ChatroomId, now: i64) -> sqlx::Result<bool> {
    let result = sqlx::query("UPDATE chatrooms SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Drops the record once the homeserver has purged the room; members and job go with it, in
/// one transaction so no crash leaves a record without its members or job.
pub async fn remove(tx: &mut Tx, id: ChatroomId) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM chatroom_members WHERE chatroom_id = $1").bind(id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM sync_jobs WHERE chatroom_id = $1").bind(id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM chatrooms WHERE id = $1").bind(id).execute(&mut **tx).await.map(|_| ())
}

/// Live rooms whose scheduled deletion time has come.
pub async fn due_for_deletion(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> sqlx::Result<Vec<ChatroomId>> {
    sqlx::query_scalar(
        "SELECT id FROM chatrooms WHERE deleted_at IS NULL AND scheduled_deletion IS NOT NULL \
         AND scheduled_deletion <= $1 ORDER BY scheduled_deletion LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

/// Rooms (live or being deleted) in which the user holds a role.
pub async fn rooms_of_member(tx: &mut Tx, user: AppUserId) -> sqlx::Result<Vec<ChatroomId>> {
    sqlx::query_scalar("SELECT chatroom_id FROM chatroom_members WHERE app_user_id = $1 ORDER BY chatroom_id")
        .bind(user)
        .fetch_all(&mut **tx)
        .await
}

/// The live rooms whose automation follows the roster: an organization's automated default room,
/// an event's automated room.
pub async fn following(conn: &mut AnyConnection, roster: RosterOf) -> sqlx::Result<Vec<ChatroomId>> {
    let (org, kind, event) = match roster {
        RosterOf::Organization(org) => (org, "default", None),
        RosterOf::Event(org, event) => (org, "event", Some(event)),
    };
    sqlx::query_scalar(
        "SELECT id FROM chatrooms WHERE organization_id = $1 AND kind = $2 AND ($3 IS NULL OR event_id = $3) \
         AND automation_enabled <> 0 AND deleted_at IS NULL ORDER BY id",
    )
    .bind(org)
    .bind(kind)
    .bind(event)
    .fetch_all(&mut *conn)
    .await
}
