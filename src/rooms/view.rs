//! The room as every room endpoint answers with it, and the HTTP status of a room write.
//! Shared by the handlers through this layer, so that no handler module imports another.

use axum::{http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    clock::to_datetime,
    domain::{Role, RoomKind},
    rooms::Written,
    store::chatrooms::Chatroom,
};

/// A chatroom. Field names follow the messenger API; `id`, `syncStatus` and `syncError` are ours.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatroomResponse {
    /// Our id of the chatroom, used in paths as `roomID`.
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: RoomKind,
    #[serde(rename = "organizationID")]
    pub organization_id: i64,
    /// Set for event chatrooms only.
    #[serde(rename = "eventID")]
    pub event_id: Option<i64>,
    pub name: String,
    /// The avatar's `mxc://` URI on the homeserver.
    #[serde(rename = "avatarURL")]
    pub avatar_url: Option<String>,
    pub automation_enabled: bool,
    /// The room's topic, or null.
    pub topic: Option<String>,
    /// Only the room's admins and moderators may post.
    pub read_only: bool,
    /// How many users the three lists may hold together, or null for no limit.
    pub max_users: Option<i64>,
    /// Pinned messages (Matrix event ids), as last seen on the homeserver.
    #[serde(rename = "pinnedEventIDs")]
    pub pinned_event_ids: Vec<String>,
    /// When the room will be deleted (RFC 3339), or null.
    pub scheduled_deletion: Option<DateTime<Utc>>,
    /// Closed: members read the history, nobody but the service's bot posts or changes state.
    pub archived: bool,
    /// When it was archived (RFC 3339), or null.
    pub archived_at: Option<DateTime<Utc>>,
    /// End-to-end encrypted: members' clients read its messages, the service cannot.
    pub encrypted: bool,
    /// The Matrix room id; null until the homeserver has created the room.
    #[serde(rename = "matrixRoomID")]
    pub matrix_room_id: Option<String>,
    /// The explicit lists, as the backend set them.
    pub admins: Vec<i64>,
    pub moderators: Vec<i64>,
    pub assigned_users: Vec<i64>,
    /// Users there only by the roster an automated room follows (nobody explicit): empty when
    /// automation is off or the room has no roster.
    pub roster: RosterMembers,
    pub sync_status: SyncStatus,
    /// The last homeserver error while the room is not in sync.
    pub sync_error: Option<String>,
    /// While `pending`, once the sync has joins to make: how many of the listed users are
    /// joined on the homeserver so far. Null otherwise.
    pub sync_progress: Option<SyncProgress>,
}

/// Of the users the room's lists (and roster) want joined, how many are.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncProgress {
    pub joined: i64,
    pub listed: i64,
}

/// An automated room's users by roster: an organization's admins are its admins; its members,
/// and an event's participants, its assigned users.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RosterMembers {
    pub admins: Vec<i64>,
    pub assigned_users: Vec<i64>,
}

/// Whether the homeserver matches this record: `pending` changes are being retried; `failed`
/// ones stopped retrying after a permanent error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    Synced,
    Pending,
    Failed,
}

impl From<Chatroom> for ChatroomResponse {
    fn from(room: Chatroom) -> Self {
        let sync_status = match (&room.sync.pending, &room.sync.failed) {
            (false, _) => SyncStatus::Synced,
            (true, true) => SyncStatus::Failed,
            (true, false) => SyncStatus::Pending,
        };
        let by_roster =
            |role: Role| room.roles.by_roster().filter(|(_, r)| *r == role).map(|(u, _)| u).collect();
        Self {
            id: room.id,
            kind: room.kind,
            organization_id: room.organization_id,
            event_id: room.event_id,
            name: room.name,
            avatar_url: room.avatar_url.map(|u| u.to_string()),
            automation_enabled: room.automation_enabled,
            topic: room.settings.topic.map(|topic| topic.as_str().to_owned()),
            read_only: room.settings.read_only,
            max_users: room.settings.max_users,
            pinned_event_ids: room.pinned,
            scheduled_deletion: room.scheduled_deletion.and_then(to_datetime),
            archived: room.archived_at.is_some(),
            archived_at: room.archived_at.and_then(to_datetime),
            encrypted: room.encrypted,
            matrix_room_id: room.matrix_room_id.map(|id| id.to_string()),
            admins: room.roles.explicit.users_with(Role::Admin),
            moderators: room.roles.explicit.users_with(Role::Moderator),
            assigned_users: room.roles.explicit.users_with(Role::Assigned),
            roster: RosterMembers {
                admins: by_roster(Role::Admin),
                assigned_users: by_roster(Role::Assigned),
            },
            sync_status,
            sync_error: room.sync.last_error,
            sync_progress: room
                .sync
                .progress
                .map(|progress| SyncProgress { joined: progress.joined, listed: progress.listed }),
        }
    }
}

/// `success` when the homeserver caught up within the request, else `202 Accepted`.
pub fn written(written: Written, success: StatusCode) -> (StatusCode, Json<ChatroomResponse>) {
    let status = if written.synced { success } else { StatusCode::ACCEPTED };
    (status, Json(written.room.into()))
}

/// A deletion: `204` once the homeserver purged the room, `202` while the purge is pending.
pub fn deleted(purged: bool) -> StatusCode {
    if purged {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    }
}
