//! Identifiers and validated values: once built, they are known to be valid.

mod avatar;
pub mod blocklist;
mod chatroom;
mod id;
mod roster;
pub mod schema;
mod settings;

pub use avatar::{Avatar, AvatarInput};
pub use chatroom::{
    parse_scheduled_deletion, require_future, AppUserId, ChatroomId, EventId, OrganizationId, Role,
    RoleLists, RoomKind, RoomName,
};
pub use id::{check_id, parse_id, Id};
pub use roster::{OrganizationRole, OrganizationRoster, Participants, RoomMembers, MAX_ROSTER};
pub use settings::{check_max_users, RoomSettings, RoomTopic, SettingsChange};
