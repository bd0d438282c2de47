//! Rosters the backend pushes: an organization's members, an event's participants. A change is
//! checked against every automated room that follows the roster, stored with one sync job per
//! such room in one transaction (a roster of thousands is still one job per room), then those
//! rooms converge within the request's wait.

use super::{
    checks::{check_capacity, check_room_limits, check_users_active},
    RoomError, RoomResult,
};
use crate::{
    domain::{AppUserId, ChatroomId, OrganizationRoster, Participants, RoleLists, RoomMembers, MAX_ROSTER},
    state::AppState,
    store::{chatrooms, jobs, moderation, organizations, rosters, Tx},
    sync::SyncOutcome,
};

pub use crate::store::chatrooms::RosterOf;

/// One roster's users, as stored or as a change names them.
#[derive(Clone, Debug)]
pub enum Roster {
    Members(OrganizationRoster),
    Participants(Participants),
}

impl Roster {
    fn room_roles(&self) -> RoleLists {
        match self {
            Self::Members(roster) => roster.room_roles(),
            Self::Participants(users) => users.room_roles(),
        }
    }
    fn contains(&self, user: AppUserId) -> bool {
        match self {
            Self::Members(roster) => roster.contains(user),
            Self::Participants(users) => users.contains(user),
        }
    }
    fn without(&self, user: AppUserId) -> Self {
        match self {
            Self::Members(roster) => Self::Members(roster.without(user)),
            Self::Participants(users) => Self::Participants(users.without(user)),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Self::Members(roster) => roster.len(),
            Self::Participants(users) => users.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a request does to a roster.
#[derive(Clone, Debug)]
pub enum RosterChange {
    /// The whole roster (`PUT`).
    Replace(Roster),
    /// Adds users, or gives members a new role (`POST`).
    Add(Roster),
    /// Removes one user (`DELETE`).
    Remove(AppUserId),
}

/// A roster after a change: its size, the automated rooms that follow it, and whether they
/// caught up within the request.
#[derive(Debug)]
pub struct RosterWritten {
    pub total: usize,
    pub rooms: Vec<ChatroomId>,
    pub synced: bool,
}

async fn read(tx: &mut Tx, of: RosterOf) -> sqlx::Result<Roster> {
    Ok(match of {
        RosterOf::Organization(org) => Roster::Members(rosters::members(tx, org).await?),
        RosterOf::Event(org, event) => Roster::Participants(rosters::participants(tx, org, event).await?),
    })
}

/// The roster after the change, or why it cannot be made.
fn after(of: RosterOf, current: Roster, change: &RosterChange) -> RoomResult<Roster> {
    let after = match (current, change) {
        (_, RosterChange::Replace(roster)) => roster.clone(),
        (Roster::Members(current), RosterChange::Add(Roster::Members(added))) => {
            Roster::Members(current.merged_with(added))
        }
        (Roster::Participants(current), RosterChange::Add(Roster::Participants(added))) => {
            Roster::Participants(current.merged_with(added))
        }
        (current, RosterChange::Remove(user)) => {
            if !current.contains(*user) {
                return Err(RoomError::NotInRoster(match of {
                    RosterOf::Organization(org) => {
                        format!("user {user} is not a member of organization {org}")
                    }
                    RosterOf::Event(org, event) => {
                        format!("user {user} does not take part in event {event} of organization {org}")
                    }
                }));
            }
            return Ok(current.without(*user));
        }
        (_, RosterChange::Add(_)) => return Err(RoomError::Invalid("a roster of another kind".into())),
    };
    if after.len() > MAX_ROSTER {
        return Err(RoomError::TooManyUsers(format!(
            "the roster would name {} users; at most {MAX_ROSTER} are allowed",
            after.len()
        )));
    }
    Ok(after)
}

async fn write(tx: &mut Tx, of: RosterOf, change: &RosterChange) -> sqlx::Result<()> {
    match (of, change) {
        (RosterOf::Organization(org), RosterChange::Replace(Roster::Members(roster))) => {
            rosters::replace_members(tx, org, roster).await
        }
        (RosterOf::Organization(org), RosterChange::Add(Roster::Members(roster))) => {
            rosters::put_members(tx, org, roster).await
        }
        (RosterOf::Organization(org), RosterChange::Remove(user)) => {
            rosters::remove_member(tx, org, *user).await.map(|_| ())
        }
        (RosterOf::Event(org, event), RosterChange::Replace(Roster::Participants(users))) => {
            rosters::replace_participants(tx, org, event, users).await
        }
        (RosterOf::Event(org, event), RosterChange::Add(Roster::Participants(users))) => {
            rosters::put_participants(tx, org, event, users).await
        }
        (RosterOf::Event(org, event), RosterChange::Remove(user)) => {
            rosters::remove_participant(tx, org, event, *user).await.map(|_| ())
        }
        // `after` refused a change of the wrong kind already.
        _ => Ok(()),
    }
}

/// Changes the roster: refused whole when a room following it would break its limits (maxUsers,
/// power levels) or a named user is deactivated; otherwise stored with one job per automated
/// room, which then converge. A roster without rooms is stored, and applied when rooms appear.
pub async fn change_roster(
    state: &AppState,
    of: RosterOf,
    change: RosterChange,
) -> RoomResult<RosterWritten> {
    if let RosterChange::Replace(roster) | RosterChange::Add(roster) = &change {
        check_users_active(state, &roster.room_roles()).await?;
    }
    let now = state.clock.now_ms();
    let mut tx = state.store.begin().await?;
    // The organization's row lock first: roster writes, room creations and automation switches
    // of one organization take it, so none reads a roster or a room list another is changing.
    // Then the rooms' row locks, as their own writes take them: a concurrent change to their
    // lists cannot slip past the limits checked here.
    let org = match of {
        RosterOf::Organization(org) | RosterOf::Event(org, _) => org,
    };
    organizations::lock(&mut tx, org, now).await?;
    let mut rooms = Vec::new();
    for room in chatrooms::following(&mut tx, of).await? {
        if chatrooms::touch_live(&mut tx, room, now).await? {
            rooms.push(room);
        }
    }
    let current = read(&mut tx, of).await?;
    let after = after(of, current, &change)?;
    if let Roster::Members(members) = &after {
        // The organization's admins are its space's admins: their power levels must fit too.
        check_room_limits(state, &RoomMembers::explicit(members.admins()), &[])?;
    }
    let roles = after.room_roles();
    for &id in &rooms {
        let room = chatrooms::find(&mut tx, id).await?.ok_or(RoomError::NotFound(id))?;
        let members = room.roles.with_roster(roles.clone());
        let muted: Vec<AppUserId> = moderation::mutes(&mut tx, id).await?.iter().map(|m| m.user).collect();
        check_room_limits(state, &members, &muted)?;
        check_capacity(room.settings.max_users, room.roles.len(), members.len())?;
    }
    write(&mut tx, of, &change).await?;
    for &room in &rooms {
        moderation::drop_mutes_of_unassigned(&mut tx, room).await?;
        jobs::enqueue(&mut tx, room, now).await?;
    }
    // The organization's admins are in its space whether or not a room follows the roster.
    if let RosterOf::Organization(org) = of {
        jobs::enqueue_space(&mut tx, org, now).await?;
    }
    tx.commit().await?;
    tracing::info!(roster = ?of, users = after.len(), rooms = rooms.len(), "roster changed");
    let outcomes = state.reconciler.converge_within_request(rooms.clone()).await;
    let synced = outcomes.iter().all(|o| matches!(o, Some(SyncOutcome::Synced)));
    Ok(RosterWritten { total: after.len(), rooms, synced })
}

/// A page of the organization's members, and how many there are.
pub async fn members_page(
    state: &AppState,
    org: i64,
    limit: i64,
    offset: i64,
) -> RoomResult<(Vec<(AppUserId, crate::domain::OrganizationRole)>, i64)> {
    let mut conn = state.store.reader().acquire().await?;
    Ok(rosters::members_page(&mut conn, org, limit, offset).await?)
}

/// A page of the event's participants, and how many there are.
pub async fn participants_page(
    state: &AppState,
    org: i64,
    event: i64,
    limit: i64,
    offset: i64,
) -> RoomResult<(Vec<AppUserId>, i64)> {
    let mut conn = state.store.reader().acquire().await?;
    Ok(rosters::participants_page(&mut conn, org, event, limit, offset).await?)
}
