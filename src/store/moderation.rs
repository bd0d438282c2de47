//! Bans and mutes of a room's users, and their expiries.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use super::{fetch_where_in, Tx};
use crate::domain::{AppUserId, ChatroomId, Role};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub user: AppUserId,
    pub reason: Option<String>,
    pub actor: String,
    /// The actor's rank when they banned: only as high a rank may lift or replace the ban.
    pub actor_rank: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mute {
    pub user: AppUserId,
    pub actor: String,
    pub actor_rank: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// What the reconciler needs of a room's moderation.
#[derive(Clone, Debug, Default)]
pub struct RoomModeration {
    /// Bans in force.
    pub bans: Vec<Ban>,
    /// Users whose ban ended (and when) and who may still be banned on the homeserver.
    pub lifted: Vec<(AppUserId, i64)>,
    pub mutes: Vec<Mute>,
}

/// Bans the user (again: a new ban replaces an earlier one).
pub async fn put_ban(tx: &mut Tx, room: ChatroomId, ban: &Ban) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO room_bans (chatroom_id, app_user_id, reason, actor, actor_rank, created_at, expires_at, \
           lifted_at) \
         VALUES ($1, $2, $3, $4, $7, $5, $6, NULL) \
         ON CONFLICT (chatroom_id, app_user_id) DO UPDATE SET reason = $3, actor = $4, actor_rank = $7, \
           created_at = $5, expires_at = $6, lifted_at = NULL",
    )
    .bind(room)
    .bind(ban.user)
    .bind(ban.reason.as_deref())
    .bind(&ban.actor)
    .bind(ban.created_at)
    .bind(ban.expires_at)
    .bind(ban.actor_rank)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Ends a ban in force; false when there was none.
pub async fn lift_ban(tx: &mut Tx, room: ChatroomId, user: AppUserId, now: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE room_bans SET lifted_at = $3 WHERE chatroom_id = $1 AND app_user_id = $2 AND lifted_at IS NULL",
    )
    .bind(room)
    .bind(user)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn put_mute(tx: &mut Tx, room: ChatroomId, mute: &Mute) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO room_mutes (chatroom_id, app_user_id, actor, actor_rank, created_at, expires_at) \
         VALUES ($1, $2, $3, $6, $4, $5) \
         ON CONFLICT (chatroom_id, app_user_id) DO UPDATE SET actor = $3, actor_rank = $6, created_at = $4, \
           expires_at = $5",
    )
    .bind(room)
    .bind(mute.user)
    .bind(&mute.actor)
    .bind(mute.created_at)
    .bind(mute.expires_at)
    .bind(mute.actor_rank)
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Ends a mute; false when there was none.
pub async fn remove_mute(tx: &mut Tx, room: ChatroomId, user: AppUserId) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM room_mutes WHERE chatroom_id = $1 AND app_user_id = $2")
        .bind(room)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn bans(conn: &mut AnyConnection, room: ChatroomId) -> sqlx::Result<Vec<Ban>> {
    Ok(bans_in(conn, &[room]).await?.remove(&room).unwrap_or_default())
}

pub async fn mutes(conn: &mut AnyConnection, room: ChatroomId) -> sqlx::Result<Vec<Mute>> {
    Ok(mutes_in(conn, &[room]).await?.remove(&room).unwrap_or_default())
}

/// The bans in force in each of `rooms`, by user id.
pub async fn bans_in(
    conn: &mut AnyConnection,
    rooms: &[ChatroomId],
) -> sqlx::Result<BTreeMap<ChatroomId, Vec<Ban>>> {
    let select = "SELECT chatroom_id, app_user_id, reason, actor, actor_rank, created_at, expires_at \
                  FROM room_bans WHERE lifted_at IS NULL AND chatroom_id";
    let mut bans: BTreeMap<ChatroomId, Vec<Ban>> = BTreeMap::new();
    for row in fetch_where_in(conn, select, rooms).await? {
        bans.entry(row.try_get("chatroom_id")?).or_default().push(Ban {
            user: row.try_get("app_user_id")?,
            reason: row.try_get("reason")?,
            actor: row.try_get("actor")?,
            actor_rank: row.try_get("actor_rank")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        });
    }
    bans.values_mut().for_each(|list| list.sort_by_key(|ban| ban.user));
    Ok(bans)
}

/// The mutes of each of `rooms`, by user id.
pub async fn mutes_in(
    conn: &mut AnyConnection,
    rooms: &[ChatroomId],
) -> sqlx::Result<BTreeMap<ChatroomId, Vec<Mute>>> {
    let select =
        "SELECT chatroom_id, app_user_id, actor, actor_rank, created_at, expires_at FROM room_mutes WHERE chatroom_id";
    let mut mutes: BTreeMap<ChatroomId, Vec<Mute>> = BTreeMap::new();
    for row in fetch_where_in(conn, select, rooms).await? {
        mutes.entry(row.try_get("chatroom_id")?).or_default().push(Mute {
            user: row.try_get("app_user_id")?,
            actor: row.try_get("actor")?,
            actor_rank: row.try_get("actor_rank")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        });
    }
    mutes.values_mut().for_each(|list| list.sort_by_key(|mute| mute.user));
    Ok(mutes)
}

/// The room's bans, lifted bans and mutes, read in one transaction (one snapshot).
pub async fn for_room(tx: &mut Tx, room: ChatroomId) -> sqlx::Result<RoomModeration> {
    let lifted = sqlx::query_as(
        "SELECT app_user_id, lifted_at FROM room_bans WHERE chatroom_id = $1 AND lifted_at IS NOT NULL",
    )
    .bind(room)
    .fetch_all(&mut **tx)
    .await?;
    Ok(RoomModeration { bans: bans(tx, room).await?, lifted, mutes: mutes(tx, room).await? })
}

/// The rank of whoever set the user's ban (or mute) in force, if any.
pub async fn ban_rank(
    conn: &mut AnyConnection,
    room: ChatroomId,
    user: AppUserId,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT actor_rank FROM room_bans WHERE chatroom_id = $1 AND app_user_id = $2 AND lifted_at IS NULL",
    )
    .bind(room)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await
}

pub async fn mute_rank(
    conn: &mut AnyConnection,
    room: ChatroomId,
    user: AppUserId,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT actor_rank FROM room_mutes WHERE chatroom_id = $1 AND app_user_id = $2")
        .bind(room)
        .bind(user)
        .fetch_optional(&mut *conn)
        .await
}

/// Forgets the lifted bans a sync read and has unbanned: exactly those, so a lift that came
/// (or was banned again and lifted) meanwhile stays for the next sync.
pub async fn forget_lifted(
    conn: &mut AnyConnection,
    room: ChatroomId,
    lifted: &[(AppUserId, i64)],
) -> sqlx::Result<()> {
    for (user, lifted_at) in lifted {
        sqlx::query("DELETE FROM room_bans WHERE chatroom_id = $1 AND app_user_id = $2 AND lifted_at = $3")
            .bind(room)
            .bind(user)
            .bind(lifted_at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Mutes apply to assigned users only (by the lists or the roster): a user promoted or removed
/// loses theirs.
pub async fn drop_mutes_of_unassigned(tx: &mut Tx, room: ChatroomId) -> sqlx::Result<()> {
    let Some(current) = super::chatrooms::find_including_deleted(tx, room).await? else { return Ok(()) };
    for mute in mutes(tx, room).await? {
        if current.roles.role_of(mute.user) != Some(Role::Assigned) {
            sqlx::query("DELETE FROM room_mutes WHERE chatroom_id = $1 AND app_user_id = $2")
                .bind(room)
                .bind(mute.user)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Ends the bans and mutes whose time has come, and queues their rooms, in the transaction:
/// an expiry happens once, whichever instance gets there first. The rooms, one per room.
/// A live room is asked per due row (`EXISTS`): `IN (SELECT ...)` made SQLite list every live
/// room on each scheduler tick.
pub async fn expire(tx: &mut Tx, now: i64) -> sqlx::Result<Vec<ChatroomId>> {
    let mut rooms: Vec<ChatroomId> = sqlx::query_scalar(
        "UPDATE room_bans SET lifted_at = $1 WHERE lifted_at IS NULL AND expires_at IS NOT NULL \
         AND expires_at <= $1 AND EXISTS (SELECT 1 FROM chatrooms c WHERE c.id = room_bans.chatroom_id \
           AND c.deleted_at IS NULL) RETURNING chatroom_id",
    )
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    rooms.extend(
        sqlx::query_scalar::<_, ChatroomId>(
            "DELETE FROM room_mutes WHERE expires_at IS NOT NULL AND expires_at <= $1 \
             AND EXISTS (SELECT 1 FROM chatrooms c WHERE c.id = room_mutes.chatroom_id AND c.deleted_at IS NULL) \
             RETURNING chatroom_id",
        )
        .bind(now)
        .fetch_all(&mut **tx)
        .await?,
    );
    rooms.sort_unstable();
    rooms.dedup();
    Ok(rooms)
}
