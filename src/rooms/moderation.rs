//! Bans and mutes: stored with the room's sync job in one transaction, then converged like any
//! other change. The reconciler keeps them in force (drift repair) and the scheduler ends them.

use super::{checks::check_room_limits, commit_with_job, converge, RoomError, RoomResult};
use crate::{
    domain::{AppUserId, ChatroomId, Role},
    state::AppState,
    store::{
        chatrooms::{self, Chatroom},
        moderation::{self, Ban, Mute},
        Tx,
    },
};

/// The longest timed ban or mute; longer ones are meant to last until lifted.
pub const MAX_DURATION_SECS: i64 = 365 * 24 * 60 * 60;

/// A duration in seconds from a request: 1 to [`MAX_DURATION_SECS`].
pub fn parse_duration(seconds: i64) -> RoomResult<i64> {
    if !(1..=MAX_DURATION_SECS).contains(&seconds) {
        return Err(RoomError::Invalid(format!(
            "durationSeconds is {seconds}; it must be between 1 and {MAX_DURATION_SECS} (a year), or left out for no end"
        )));
    }
    Ok(seconds)
}

/// Ban reasons reach Matrix clients; keep them to a line or two.
pub const MAX_REASON_CHARS: usize = 500;

pub fn parse_reason(reason: Option<String>) -> RoomResult<Option<String>> {
    let Some(reason) = reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()) else { return Ok(None) };
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(RoomError::Invalid(format!(
            "reason is {chars} characters long; at most {MAX_REASON_CHARS} are allowed"
        )));
    }
    Ok(Some(reason))
}

/// Who acts: `backend` or `user:<id>` as recorded, and their rank in the room: 3 the backend
/// or an organization admin, 2 a room admin, 1 a room moderator.
pub struct Actor {
    pub key: String,
    pub rank: i64,
}

/// Which record a change touches, for the rank of whoever set it.
#[derive(Clone, Copy)]
enum Record {
    Ban,
    Mute,
}

/// Opens the change's transaction on a live room (taking its row lock) and checks, under it,
/// that the actor outranks the target and whoever set the ban or mute in force.
async fn begin_as(
    state: &AppState,
    id: ChatroomId,
    actor: &Actor,
    target: AppUserId,
    record: Record,
) -> RoomResult<(Tx, Chatroom)> {
    let mut tx = state.store.begin().await?;
    if !chatrooms::touch_live(&mut tx, id, state.clock.now_ms()).await? {
        return Err(RoomError::NotFound(id));
    }
    let room = chatrooms::find(&mut tx, id).await?.ok_or(RoomError::NotFound(id))?;
    require_outranks(&room, actor.rank, target)?;
    let set_by = match record {
        Record::Ban => moderation::ban_rank(&mut tx, id, target).await?,
        Record::Mute => moderation::mute_rank(&mut tx, id, target).await?,
    };
    if set_by.is_some_and(|rank| rank > actor.rank) {
        return Err(RoomError::Outranked(format!(
            "the ban or mute of user {target} was set by someone above you; only they may change it"
        )));
    }
    Ok((tx, room))
}

/// The actor's rank is above the target's role in the room: a moderator never acts on an
/// admin or another moderator (bans, mutes, redactions of their messages).
pub fn require_outranks(room: &Chatroom, actor_rank: i64, target: AppUserId) -> RoomResult<()> {
    let theirs = room.roles.role_of(target);
    if Role::rank(theirs) >= actor_rank {
        let role = theirs.map_or("user", Role::as_str);
        return Err(RoomError::Outranked(format!("you cannot act on user {target}, a room {role}")));
    }
    Ok(())
}

fn expiry(state: &AppState, duration_secs: Option<i64>) -> Option<i64> {
    duration_secs.map(|secs| state.clock.now_ms() + secs * 1000)
}

/// Bans the user from the room (whether or not they hold a role: their place in the lists is
/// kept for when the ban ends). True when the homeserver has the ban already.
pub async fn ban(
    state: &AppState,
    id: ChatroomId,
    actor: Actor,
    user: AppUserId,
    reason: Option<String>,
    duration_secs: Option<i64>,
) -> RoomResult<(Ban, bool)> {
    let (mut tx, _) = begin_as(state, id, &actor, user, Record::Ban).await?;
    let ban = Ban {
        user,
        reason,
        actor: actor.key,
        actor_rank: actor.rank,
        created_at: state.clock.now_ms(),
        expires_at: expiry(state, duration_secs),
    };
    moderation::put_ban(&mut tx, id, &ban).await?;
    commit_with_job(state, tx, id).await?;
    tracing::info!(chatroom = id, user, expires_at = ?ban.expires_at, "user banned");
    let written = converge(state, id).await?;
    Ok((ban, written.synced))
}

/// Lifts the ban: the user is unbanned, and joined again if they hold a role.
pub async fn lift_ban(state: &AppState, id: ChatroomId, actor: Actor, user: AppUserId) -> RoomResult<bool> {
    let (mut tx, _) = begin_as(state, id, &actor, user, Record::Ban).await?;
    if !moderation::lift_ban(&mut tx, id, user, state.clock.now_ms()).await? {
        return Err(RoomError::NotBanned { room: id, user });
    }
    commit_with_job(state, tx, id).await?;
    tracing::info!(chatroom = id, user, "ban lifted");
    Ok(converge(state, id).await?.synced)
}

/// Mutes one of the room's assigned users: they read but cannot post. Admins and moderators
/// must be demoted first.
pub async fn mute(
    state: &AppState,
    id: ChatroomId,
    actor: Actor,
    user: AppUserId,
    duration_secs: Option<i64>,
) -> RoomResult<(Mute, bool)> {
    let (mut tx, room) = begin_as(state, id, &actor, user, Record::Mute).await?;
    match room.roles.role_of(user) {
        Some(Role::Assigned) => {}
        Some(role) => return Err(RoomError::NotMutable { user, role: role.as_str() }),
        None => return Err(RoomError::NotAMember { room: id, user }),
    }
    // Each muted user is one more entry in the power levels, which must stay one event.
    let mut muted: Vec<AppUserId> = moderation::mutes(&mut tx, id).await?.iter().map(|m| m.user).collect();
    muted.push(user);
    check_room_limits(state, &room.roles, &muted)?;
    let mute = Mute {
        user,
        actor: actor.key,
        actor_rank: actor.rank,
        created_at: state.clock.now_ms(),
        expires_at: expiry(state, duration_secs),
    };
    moderation::put_mute(&mut tx, id, &mute).await?;
    commit_with_job(state, tx, id).await?;
    tracing::info!(chatroom = id, user, expires_at = ?mute.expires_at, "user muted");
    let written = converge(state, id).await?;
    Ok((mute, written.synced))
}

pub async fn unmute(state: &AppState, id: ChatroomId, actor: Actor, user: AppUserId) -> RoomResult<bool> {
    let (mut tx, _) = begin_as(state, id, &actor, user, Record::Mute).await?;
    if !moderation::remove_mute(&mut tx, id, user).await? {
        return Err(RoomError::NotMuted { room: id, user });
    }
    commit_with_job(state, tx, id).await?;
    tracing::info!(chatroom = id, user, "mute lifted");
    Ok(converge(state, id).await?.synced)
}

/// Moderation done in a Matrix client, as the homeserver reports it.
#[derive(Debug)]
pub enum ClientModeration {
    Ban {
        reason: Option<String>,
    },
    /// A banned user let back (a leave after a ban): only the ban record is lifted.
    Unban,
    /// A joined or invited user made to leave: they come off the lists.
    Kick,
}

/// Whether the service took a client's moderation as its own or will put things back.
#[derive(Debug, PartialEq, Eq)]
pub enum Adoption {
    Adopted,
    Reverted,
}

/// Adopts what one of the room's admins or moderators (judged by their role, which is their
/// power level there) did to a user in a Matrix client: a ban becomes a ban record, an unban
/// lifts it, a kick removes the user from the lists. Done by anyone else, or on someone they
/// do not outrank, it is reverted by a drift check. Nothing waits for the homeserver.
pub async fn adopt(
    state: &AppState,
    id: ChatroomId,
    actor: AppUserId,
    target: AppUserId,
    action: ClientModeration,
) -> RoomResult<Adoption> {
    let room = super::load(state, id).await?;
    let actor = Actor { key: format!("user:{actor}"), rank: Role::rank(room.roles.role_of(actor)) };
    let adopted = if actor.rank == 0 {
        None
    } else {
        match begin_as(state, id, &actor, target, Record::Ban).await {
            Ok((tx, _)) => Some(adopt_in(state, tx, id, actor, target, action).await?),
            Err(RoomError::Outranked(why)) => {
                tracing::info!(chatroom = id, target, why, "client moderation by someone outranked");
                None
            }
            Err(e) => return Err(e),
        }
    };
    match adopted {
        Some(tx) => {
            commit_with_job(state, tx, id).await?;
            state.reconciler.wake_worker();
            Ok(Adoption::Adopted)
        }
        None => {
            super::recheck(state, id).await?;
            Ok(Adoption::Reverted)
        }
    }
}

async fn adopt_in(
    state: &AppState,
    mut tx: Tx,
    id: ChatroomId,
    actor: Actor,
    target: AppUserId,
    action: ClientModeration,
) -> RoomResult<Tx> {
    let now = state.clock.now_ms();
    match action {
        ClientModeration::Ban { reason } => {
            let reason = parse_reason(reason.map(|r| r.chars().take(MAX_REASON_CHARS).collect()))?;
            let ban = Ban {
                user: target,
                reason,
                actor: actor.key,
                actor_rank: actor.rank,
                created_at: now,
                expires_at: None,
            };
            moderation::put_ban(&mut tx, id, &ban).await?;
            tracing::info!(
                chatroom = id,
                user = target,
                actor = ban.actor,
                "ban from a Matrix client adopted"
            );
        }
        // Each is safe to take twice: lifting a lifted ban or removing a removed user does nothing.
        ClientModeration::Unban => {
            if moderation::lift_ban(&mut tx, id, target, now).await? {
                tracing::info!(
                    chatroom = id,
                    user = target,
                    actor = actor.key,
                    "unban from a Matrix client adopted"
                );
            }
        }
        ClientModeration::Kick => {
            if chatrooms::remove_member(&mut tx, id, target).await? {
                moderation::drop_mutes_of_unassigned(&mut tx, id).await?;
                tracing::info!(
                    chatroom = id,
                    user = target,
                    actor = actor.key,
                    "kick from a Matrix client adopted"
                );
            }
        }
    }
    Ok(tx)
}

/// Whether a ban of the user is in force in the room.
pub async fn is_banned(state: &AppState, id: ChatroomId, user: AppUserId) -> RoomResult<bool> {
    let mut conn = state.store.reader().acquire().await?;
    Ok(moderation::ban_rank(&mut conn, id, user).await?.is_some())
}

/// The ban in force of the user in the room, if any.
pub async fn ban_of(state: &AppState, id: ChatroomId, user: AppUserId) -> RoomResult<Option<Ban>> {
    Ok(bans(state, id).await?.into_iter().find(|ban| ban.user == user))
}

pub async fn bans(state: &AppState, id: ChatroomId) -> RoomResult<Vec<Ban>> {
    let mut conn = state.store.reader().acquire().await?;
    Ok(moderation::bans(&mut conn, id).await?)
}

pub async fn mutes(state: &AppState, id: ChatroomId) -> RoomResult<Vec<Mute>> {
    let mut conn = state.store.reader().acquire().await?;
    Ok(moderation::mutes(&mut conn, id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_reasons_are_bounded() {
        assert_eq!(parse_duration(1).unwrap(), 1);
        assert_eq!(parse_duration(MAX_DURATION_SECS).unwrap(), MAX_DURATION_SECS);
        for bad in [0, -5, MAX_DURATION_SECS + 1] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_reason(Some("  spam ".into())).unwrap().as_deref(), Some("spam"));
        assert_eq!(parse_reason(Some("   ".into())).unwrap(), None);
        assert!(parse_reason(Some("x".repeat(501))).is_err());
    }
}
