//! A room's settings beyond its name, avatar and lists: topic, read-only, a cap on its users.

use super::RoleLists;

/// `m.room.topic`: at most [`RoomTopic::MAX_CHARS`] characters after trimming; line breaks and
/// tabs are allowed, other control characters are not. An empty topic is no topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomTopic(String);

impl RoomTopic {
    pub const MAX_CHARS: usize = 1_000;

    /// `None` for a topic that is empty after trimming (as Matrix reads an empty topic).
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let trimmed = raw.trim();
        let chars = trimmed.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(format!("topic is {chars} characters long; at most {} are allowed", Self::MAX_CHARS));
        }
        if trimmed.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
            return Err("topic must not contain control characters other than line breaks and tabs".into());
        }
        Ok((!trimmed.is_empty()).then(|| Self(trimmed.to_owned())))
    }
    /// A topic as stored (it was parsed before it was stored).
    pub fn stored(topic: String) -> Self {
        Self(topic)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `maxUsers`: how many users the three role lists may hold together (the bot is not counted).
pub fn check_max_users(value: i64) -> Result<i64, String> {
    let most = RoleLists::MAX_PER_ROOM as i64;
    if !(1..=most).contains(&value) {
        return Err(format!("maxUsers is {value}; it must be between 1 and {most} (or null for no limit)"));
    }
    Ok(value)
}

/// The settings a room has.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomSettings {
    pub topic: Option<RoomTopic>,
    /// Only the room's admins and moderators may post.
    pub read_only: bool,
    pub max_users: Option<i64>,
}

/// A change to settings; `None` leaves a setting as it is, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsChange {
    pub topic: Option<Option<RoomTopic>>,
    pub read_only: Option<bool>,
    pub max_users: Option<Option<i64>>,
}

impl RoomSettings {
    pub fn changed_by(&self, change: &SettingsChange) -> Self {
        Self {
            topic: change.topic.clone().unwrap_or_else(|| self.topic.clone()),
            read_only: change.read_only.unwrap_or(self.read_only),
            max_users: change.max_users.unwrap_or(self.max_users),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_trimmed_bounded_and_empty_means_none() {
        assert_eq!(RoomTopic::parse("  Hello\nworld\t ").unwrap().unwrap().as_str(), "Hello\nworld");
        assert_eq!(RoomTopic::parse("   ").unwrap(), None);
        assert!(RoomTopic::parse(&"x".repeat(1_000)).unwrap().is_some());
        assert!(RoomTopic::parse(&"x".repeat(1_001)).unwrap_err().contains("at most 1000"));
        assert!(RoomTopic::parse("bell\u{7}").is_err());
    }

    #[test]
    fn max_users_lies_between_one_and_a_rooms_capacity() {
        assert_eq!(check_max_users(1), Ok(1));
        assert_eq!(check_max_users(10_000), Ok(10_000));
        assert!(check_max_users(0).is_err());
        assert!(check_max_users(-3).is_err());
        assert!(check_max_users(10_001).is_err());
    }

    #[test]
    fn a_change_overrides_only_what_it_names() {
        let base =
            RoomSettings { topic: RoomTopic::parse("old").unwrap(), read_only: true, max_users: Some(5) };
        let cleared = base.changed_by(&SettingsChange { topic: Some(None), ..Default::default() });
        assert_eq!(cleared, RoomSettings { topic: None, ..base.clone() });
        let unlimited = base.changed_by(&SettingsChange {
            read_only: Some(false),
            max_users: Some(None),
            ..Default::default()
        });
        assert_eq!(unlimited, RoomSettings { read_only: false, max_users: None, ..base.clone() });
        assert_eq!(base.changed_by(&SettingsChange::default()), base);
    }
}
