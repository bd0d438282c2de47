//! Rosters the backend pushes (an organization's members, an event's participants), and a room's
//! members as the sync sees them: its explicit lists plus, when automated, a roster.

use std::collections::{BTreeMap, BTreeSet};

use super::{AppUserId, Role, RoleLists};

/// Users one roster (an organization's members, or an event's participants) may hold.
pub const MAX_ROSTER: usize = 10_000;

/// A user's role in an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OrganizationRole {
    Admin,
    Member,
}

impl OrganizationRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
    /// Their role in the organization's automated default room.
    pub fn room_role(self) -> Role {
        match self {
            Self::Admin => Role::Admin,
            Self::Member => Role::Assigned,
        }
    }
}

fn check_user(user: i64) -> Result<AppUserId, String> {
    if user < 1 {
        return Err(format!("userID {user} is not valid: ids are positive integers"));
    }
    Ok(user)
}

fn check_size(entries: usize) -> Result<(), String> {
    if entries > MAX_ROSTER {
        return Err(format!("the roster names {entries} users; at most {MAX_ROSTER} are allowed"));
    }
    Ok(())
}

/// An organization's members with their roles: positive ids, known roles, each user once, at
/// most [`MAX_ROSTER`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationRoster(BTreeMap<AppUserId, OrganizationRole>);

impl OrganizationRoster {
    pub fn parse(entries: &[(i64, String)]) -> Result<Self, String> {
        check_size(entries.len())?;
        let mut members = BTreeMap::new();
        for (user, role) in entries {
            let user = check_user(*user)?;
            let role = OrganizationRole::parse(role)
                .ok_or_else(|| format!("role {role:?} of user {user} is not one of \"admin\", \"member\""))?;
            if members.insert(user, role).is_some() {
                return Err(format!("user {user} is listed more than once"));
            }
        }
        Ok(Self(members))
    }
    pub fn from_map(members: BTreeMap<AppUserId, OrganizationRole>) -> Self {
        Self(members)
    }
    pub fn iter(&self) -> impl Iterator<Item = (AppUserId, OrganizationRole)> + '_ {
        self.0.iter().map(|(u, r)| (*u, *r))
    }
    pub fn users(&self) -> Vec<AppUserId> {
        self.0.keys().copied().collect()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// This roster with `other`'s entries added; a user in both takes `other`'s role.
    pub fn merged_with(&self, other: &Self) -> Self {
        let mut members = self.0.clone();
        members.extend(other.iter());
        Self(members)
    }
    pub fn contains(&self, user: AppUserId) -> bool {
        self.0.contains_key(&user)
    }
    pub fn without(&self, user: AppUserId) -> Self {
        let mut members = self.0.clone();
        members.remove(&user);
        Self(members)
    }
    /// The organization's admins, as the admins of its space (power 100).
    pub fn admins(&self) -> RoleLists {
        RoleLists::from_roles(
            self.iter()
                .filter(|(_, role)| *role == OrganizationRole::Admin)
                .map(|(u, _)| (u, Role::Admin))
                .collect(),
        )
    }
    /// What the roster makes of the organization's automated default room.
    pub fn room_roles(&self) -> RoleLists {
        RoleLists::from_roles(self.iter().map(|(user, role)| (user, role.room_role())).collect())
    }
}

/// An event's participants: positive ids, each once, at most [`MAX_ROSTER`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Participants(BTreeSet<AppUserId>);

impl Participants {
    pub fn parse(users: &[i64]) -> Result<Self, String> {
        check_size(users.len())?;
        let mut set = BTreeSet::new();
        for &user in users {
            if !set.insert(check_user(user)?) {
                return Err(format!("user {user} is listed more than once"));
            }
        }
        Ok(Self(set))
    }
    pub fn from_set(users: BTreeSet<AppUserId>) -> Self {
        Self(users)
    }
    pub fn users(&self) -> Vec<AppUserId> {
        self.0.iter().copied().collect()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn merged_with(&self, other: &Self) -> Self {
        Self(self.0.union(&other.0).copied().collect())
    }
    pub fn contains(&self, user: AppUserId) -> bool {
        self.0.contains(&user)
    }
    pub fn without(&self, user: AppUserId) -> Self {
        let mut users = self.0.clone();
        users.remove(&user);
        Self(users)
    }
    /// What the participants make of the event's automated room: assigned users.
    pub fn room_roles(&self) -> RoleLists {
        RoleLists::from_roles(self.0.iter().map(|user| (*user, Role::Assigned)).collect())
    }
}

/// A room's members: its explicit role lists and, for an automated room, what its roster makes
/// of it. An explicit role wins over the roster's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomMembers {
    pub explicit: RoleLists,
    /// The whole roster's roles, explicit users included.
    roster: RoleLists,
}

impl RoomMembers {
    pub fn new(explicit: RoleLists, roster: RoleLists) -> Self {
        Self { explicit, roster }
    }
    pub fn explicit(explicit: RoleLists) -> Self {
        Self { explicit, roster: RoleLists::default() }
    }
    /// The user's role, explicit or by roster.
    pub fn role_of(&self, user: AppUserId) -> Option<Role> {
        self.explicit.role_of(user).or_else(|| self.roster.role_of(user))
    }
    /// The users there only by roster, with the role it gives them.
    pub fn by_roster(&self) -> impl Iterator<Item = (AppUserId, Role)> + '_ {
        self.roster.iter().filter(|(user, _)| self.explicit.role_of(*user).is_none())
    }
    /// Everyone with their role, explicit lists first.
    pub fn iter(&self) -> impl Iterator<Item = (AppUserId, Role)> + '_ {
        self.explicit.iter().chain(self.by_roster())
    }
    pub fn len(&self) -> usize {
        self.explicit.len() + self.by_roster().count()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The same roster with other explicit lists.
    pub fn with_explicit(&self, explicit: RoleLists) -> Self {
        Self { explicit, roster: self.roster.clone() }
    }
    /// The same explicit lists with another roster.
    pub fn with_roster(&self, roster: RoleLists) -> Self {
        Self { explicit: self.explicit.clone(), roster }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(i64, &str)]) -> Vec<(i64, String)> {
        list.iter().map(|(u, r)| (*u, r.to_string())).collect()
    }

    #[test]
    fn an_organization_roster_refuses_unknown_roles_duplicates_bad_ids_and_too_many_users() {
        let roster = OrganizationRoster::parse(&entries(&[(1, "admin"), (2, "member")])).unwrap();
        assert_eq!(roster.room_roles().role_of(1), Some(Role::Admin));
        assert_eq!(roster.room_roles().role_of(2), Some(Role::Assigned));
        let err = OrganizationRoster::parse(&entries(&[(1, "owner")])).unwrap_err();
        assert!(err.contains("\"owner\""), "{err}");
        let err = OrganizationRoster::parse(&entries(&[(1, "admin"), (1, "admin")])).unwrap_err();
        assert!(err.contains("more than once"), "{err}");
        assert!(OrganizationRoster::parse(&entries(&[(0, "member")])).is_err());
        assert!(OrganizationRoster::parse(&entries(&[(-3, "member")])).is_err());
        let many: Vec<_> = (1..=MAX_ROSTER as i64).map(|u| (u, "member".to_string())).collect();
        assert_eq!(OrganizationRoster::parse(&many).unwrap().len(), MAX_ROSTER);
        let too_many: Vec<_> = (1..=MAX_ROSTER as i64 + 1).map(|u| (u, "member".to_string())).collect();
        assert!(OrganizationRoster::parse(&too_many).unwrap_err().contains("at most 10000"));
    }

    #[test]
    fn participants_refuse_duplicates_and_bad_ids() {
        assert_eq!(Participants::parse(&[3, 1, 2]).unwrap().users(), [1, 2, 3]);
        assert!(Participants::parse(&[1, 1]).unwrap_err().contains("more than once"));
        assert!(Participants::parse(&[0]).is_err());
        assert_eq!(Participants::parse(&[1]).unwrap().room_roles().role_of(1), Some(Role::Assigned));
    }

    #[test]
    fn an_explicit_role_wins_over_the_rosters() {
        let explicit = RoleLists::parse(&[], &[2], &[]).unwrap();
        let roster = OrganizationRoster::parse(&entries(&[(1, "admin"), (2, "admin"), (3, "member")]))
            .unwrap()
            .room_roles();
        let members = RoomMembers::new(explicit, roster);
        assert_eq!(members.role_of(2), Some(Role::Moderator), "explicit");
        assert_eq!(members.role_of(1), Some(Role::Admin), "by roster");
        let by_roster: Vec<_> = members.by_roster().collect();
        assert_eq!(by_roster, [(1, Role::Admin), (3, Role::Assigned)], "user 2 is not counted twice");
        assert_eq!(members.len(), 3);
        // New explicit lists: user 2 falls back to the roster's role, user 3 is now explicit.
        let changed = members.with_explicit(RoleLists::parse(&[], &[], &[3]).unwrap());
        assert_eq!(changed.role_of(2), Some(Role::Admin));
        assert_eq!(changed.role_of(3), Some(Role::Assigned));
        assert_eq!(changed.by_roster().map(|(u, _)| u).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(changed.len(), 3);
        assert_eq!(changed.with_roster(RoleLists::default()).len(), 1, "automation off");
    }
}
