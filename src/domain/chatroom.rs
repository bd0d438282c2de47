use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub type AppUserId = i64;
pub type OrganizationId = i64;
pub type EventId = i64;
pub type ChatroomId = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    Default,
    Event,
    Custom,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Event => "event",
            Self::Custom => "custom",
        }
    }
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "default" => Some(Self::Default),
            "event" => Some(Self::Event),
            "custom" => Some(Self::Custom),
            _ => None,
        }
    }
}

/// A user's one role in a room; it decides their Matrix power level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Admin,
    Moderator,
    Assigned,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Moderator => "moderator",
            Self::Assigned => "assigned",
        }
    }
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "admin" => Some(Self::Admin),
            "moderator" => Some(Self::Moderator),
            "assigned" => Some(Self::Assigned),
            _ => None,
        }
    }
    /// Rank in moderation: who may ban or mute whom. A room admin 2, a moderator 1, an
    /// assigned user or a user without a role 0; the backend and organization admins have
    /// [`Role::MANAGER_RANK`]. An actor acts only on lower ranks.
    pub fn rank(role: Option<Role>) -> i64 {
        match role {
            Some(Self::Admin) => 2,
            Some(Self::Moderator) => 1,
            Some(Self::Assigned) | None => 0,
        }
    }
    pub const MANAGER_RANK: i64 = 3;
    /// Power level in `m.room.power_levels`; assigned users get no entry (0).
    pub fn power_level(self) -> Option<i64> {
        match self {
            Self::Admin => Some(100),
            Self::Moderator => Some(50),
            Self::Assigned => None,
        }
    }
}

/// A room name: trimmed, 1 to 255 characters, at least one of them visible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomName(String);

/// Characters that show nothing by themselves: whitespace of any kind, Unicode's
/// default-ignorable code points (zero-width spaces and joiners, direction marks and
/// overrides, the byte order mark, the soft hyphen, variation selectors, Hangul fillers, tags)
/// and the blank Braille pattern. A name made only of them looks empty.
fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

impl RoomName {
    pub const MAX_CHARS: usize = 255;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err("name must not be empty".into());
        }
        if chars > Self::MAX_CHARS {
            return Err(format!("name is {chars} characters long; at most {} are allowed", Self::MAX_CHARS));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("name must not contain control characters".into());
        }
        if trimmed.chars().all(is_invisible) {
            return Err("name must contain at least one visible character".into());
        }
        Ok(Self(trimmed.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The three role lists of a request, checked: every user appears in at most one list, every
/// id is positive, and there are at most [`RoleLists::MAX_PER_REQUEST`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleLists {
    roles: BTreeMap<AppUserId, Role>,
}

impl RoleLists {
    /// Entries the three lists of one request may hold together (repeats count).
    pub const MAX_PER_REQUEST: usize = 1_000;
    /// Users a room may hold in its three lists together.
    pub const MAX_PER_ROOM: usize = 10_000;

    pub fn parse(admins: &[i64], moderators: &[i64], assigned: &[i64]) -> Result<Self, String> {
        let entries = admins.len() + moderators.len() + assigned.len();
        if entries > Self::MAX_PER_REQUEST {
            return Err(format!(
                "the role lists name {entries} users; at most {} are allowed in one request",
                Self::MAX_PER_REQUEST
            ));
        }
        let mut roles = BTreeMap::new();
        for (list, role) in [(admins, Role::Admin), (moderators, Role::Moderator), (assigned, Role::Assigned)]
        {
            // A user repeated inside one list is harmless; across lists it is a contradiction.
            for &user in list.iter().collect::<BTreeSet<_>>() {
                if user < 1 {
                    return Err(format!("user id {user} is not valid: ids are positive integers"));
                }
                if let Some(previous) = roles.insert(user, role) {
                    return Err(format!(
                        "user {user} is listed both as {} and as {}; a user holds one role per room",
                        list_name(previous),
                        list_name(role)
                    ));
                }
            }
        }
        Ok(Self { roles })
    }
    pub fn from_roles(roles: BTreeMap<AppUserId, Role>) -> Self {
        Self { roles }
    }
    pub fn iter(&self) -> impl Iterator<Item = (AppUserId, Role)> + '_ {
        self.roles.iter().map(|(u, r)| (*u, *r))
    }
    pub fn users_with(&self, role: Role) -> Vec<AppUserId> {
        self.iter().filter(|(_, r)| *r == role).map(|(u, _)| u).collect()
    }
    /// How many users hold a role.
    pub fn len(&self) -> usize {
        self.roles.len()
    }
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
    pub fn role_of(&self, user: AppUserId) -> Option<Role> {
        self.roles.get(&user).copied()
    }
    /// These lists with `other`'s entries added; a user in both takes `other`'s role.
    pub fn merged_with(&self, other: &RoleLists) -> RoleLists {
        let mut roles = self.roles.clone();
        roles.extend(other.roles.iter().map(|(u, r)| (*u, *r)));
        RoleLists { roles }
    }
}

fn list_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admins",
        Role::Moderator => "moderators",
        Role::Assigned => "assignedUsers",
    }
}

/// `scheduledDeletion`: an RFC 3339 time, or null. Whether it lies in the future is checked
/// apart ([`require_future`]), after an idempotent replay had its chance: a retry of a request
/// whose time has passed since still gets the first answer.
pub fn parse_scheduled_deletion(value: &serde_json::Value) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(text) => DateTime::parse_from_rfc3339(text)
            .map(|at| Some(at.with_timezone(&Utc)))
            .map_err(|e| format!("scheduledDeletion {text:?} is not an RFC 3339 time: {e}")),
        other => Err(format!("scheduledDeletion must be an RFC 3339 string or null, not {other}")),
    }
}

/// A new `scheduledDeletion` must lie in the future.
pub fn require_future(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if at <= now {
        return Err(format!("scheduledDeletion {} is not in the future", at.to_rfc3339()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_trimmed_and_bounded() {
        assert_eq!(RoomName::parse("  Team  ").unwrap().as_str(), "Team");
        assert!(RoomName::parse("   ").is_err());
        assert!(RoomName::parse(&"é".repeat(255)).is_ok());
        assert!(RoomName::parse(&"é".repeat(256)).is_err());
        assert!(RoomName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn room_names_need_a_visible_character() {
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{200E}\u{200F}",
            "\u{202E}",
            "\u{2066}\u{2069}",
            "\u{FEFF}",
            "\u{00AD}",
            "\u{3000}\u{00A0}\u{2003}",
            " \u{FEFF} \u{200B} ",
            "\u{2800}",
            "\u{3164}",
            "\u{FE0F}",
            "\u{E0041}",
        ] {
            assert!(RoomName::parse(invisible).is_err(), "{invisible:?} was accepted");
        }
        let err = RoomName::parse("\u{200B}").unwrap_err();
        assert!(err.contains("visible"), "{err}");
        // Invisible characters beside visible ones are fine (emoji sequences use joiners).
        assert!(RoomName::parse("\u{200B}a").is_ok());
        assert!(RoomName::parse("\u{1F469}\u{200D}\u{1F4BB} Devs").is_ok());
        assert!(RoomName::parse("日本").is_ok());
    }

    #[test]
    fn role_lists_are_capped_per_request_and_ids_are_positive() {
        let many: Vec<i64> = (1..=RoleLists::MAX_PER_REQUEST as i64).collect();
        assert_eq!(RoleLists::parse(&[], &[], &many).unwrap().len(), RoleLists::MAX_PER_REQUEST);
        let err = RoleLists::parse(&[1_000_001], &[], &many).unwrap_err();
        assert!(err.contains("at most 1000"), "{err}");
        // Repeats count: a request cannot smuggle a huge list of one id.
        assert!(RoleLists::parse(&vec![5; RoleLists::MAX_PER_REQUEST + 1], &[], &[]).is_err());
        assert!(RoleLists::parse(&[0], &[], &[]).is_err());
        assert!(RoleLists::parse(&[], &[-1], &[]).is_err());
    }

    #[test]
    fn a_user_in_two_lists_is_rejected_but_repeats_in_one_list_are_not() {
        let err = RoleLists::parse(&[1], &[2, 1], &[]).unwrap_err();
        assert!(err.contains("user 1"), "{err}");
        let lists = RoleLists::parse(&[1, 1], &[2], &[3, 3]).unwrap();
        assert_eq!(lists.users_with(Role::Admin), vec![1]);
        assert_eq!(lists.users_with(Role::Assigned), vec![3]);
    }

    #[test]
    fn merging_moves_a_user_to_the_new_role() {
        let current = RoleLists::parse(&[1], &[2], &[3]).unwrap();
        let added = RoleLists::parse(&[3], &[], &[1]).unwrap();
        let merged = current.merged_with(&added);
        assert_eq!(merged.role_of(1), Some(Role::Assigned));
        assert_eq!(merged.role_of(2), Some(Role::Moderator));
        assert_eq!(merged.role_of(3), Some(Role::Admin));
    }

    #[test]
    fn scheduled_deletion_must_be_a_future_rfc3339_time_or_null() {
        let now = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_scheduled_deletion(&serde_json::Value::Null), Ok(None));
        let later =
            parse_scheduled_deletion(&serde_json::json!("2030-01-02T00:00:00+02:00")).unwrap().unwrap();
        assert_eq!(later.to_rfc3339(), "2030-01-01T22:00:00+00:00");
        assert_eq!(require_future(later, now), Ok(()));
        let earlier = parse_scheduled_deletion(&serde_json::json!("2029-12-31T00:00:00Z")).unwrap().unwrap();
        assert!(require_future(earlier, now).is_err());
        assert!(require_future(now, now).is_err());
        assert!(parse_scheduled_deletion(&serde_json::json!("tomorrow")).is_err());
        assert!(parse_scheduled_deletion(&serde_json::json!(17)).is_err());
    }
}
