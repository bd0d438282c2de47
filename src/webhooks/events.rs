//! The events the backend may subscribe to, named `noun.verb`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    #[serde(rename = "room.created")]
    RoomCreated,
    #[serde(rename = "room.deleted")]
    RoomDeleted,
    #[serde(rename = "room.archived")]
    RoomArchived,
    #[serde(rename = "room.unarchived")]
    RoomUnarchived,
    #[serde(rename = "room.sync_failed")]
    RoomSyncFailed,
    #[serde(rename = "member.joined")]
    MemberJoined,
    #[serde(rename = "member.left")]
    MemberLeft,
    #[serde(rename = "member.banned")]
    MemberBanned,
    #[serde(rename = "member.unbanned")]
    MemberUnbanned,
    #[serde(rename = "member.muted")]
    MemberMuted,
    #[serde(rename = "member.unmuted")]
    MemberUnmuted,
    /// Every message: sent only to subscriptions that name it.
    #[serde(rename = "message.created")]
    MessageCreated,
    /// An edit by the message's sender.
    #[serde(rename = "message.edited")]
    MessageEdited,
    #[serde(rename = "message.redacted")]
    MessageRedacted,
    /// A report of a message, through the API or from a Matrix client.
    #[serde(rename = "message.reported")]
    MessageReported,
    #[serde(rename = "message.blocked")]
    MessageBlocked,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        Self::RoomCreated,
        Self::RoomDeleted,
        Self::RoomArchived,
        Self::RoomUnarchived,
        Self::RoomSyncFailed,
        Self::MemberJoined,
        Self::MemberLeft,
        Self::MemberBanned,
        Self::MemberUnbanned,
        Self::MemberMuted,
        Self::MemberUnmuted,
        Self::MessageCreated,
        Self::MessageEdited,
        Self::MessageRedacted,
        Self::MessageReported,
        Self::MessageBlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoomCreated => "room.created",
            Self::RoomDeleted => "room.deleted",
            Self::RoomArchived => "room.archived",
            Self::RoomUnarchived => "room.unarchived",
            Self::RoomSyncFailed => "room.sync_failed",
            Self::MemberJoined => "member.joined",
            Self::MemberLeft => "member.left",
            Self::MemberBanned => "member.banned",
            Self::MemberUnbanned => "member.unbanned",
            Self::MemberMuted => "member.muted",
            Self::MemberUnmuted => "member.unmuted",
            Self::MessageCreated => "message.created",
            Self::MessageEdited => "message.edited",
            Self::MessageRedacted => "message.redacted",
            Self::MessageReported => "message.reported",
            Self::MessageBlocked => "message.blocked",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// What a subscription that names no types gets: everything but the flood of messages.
    pub fn defaults() -> Vec<Self> {
        Self::ALL.into_iter().filter(|kind| *kind != Self::MessageCreated).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_messages_are_opt_in() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(EventType::parse("room.renamed"), None);
        assert!(!EventType::defaults().contains(&EventType::MessageCreated));
        assert_eq!(EventType::defaults().len(), EventType::ALL.len() - 1);
    }
}
