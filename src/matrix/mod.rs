//! The homeserver behind a trait: the Synapse adapter talks HTTP; the reconciler only sees this.

mod error;
mod ids;
pub mod power_levels;
mod synapse;

use std::collections::BTreeMap;

use async_trait::async_trait;
use ruma::{
    EventId, OwnedDeviceId, OwnedEventId, OwnedMxcUri, OwnedRoomAliasId, OwnedRoomId, OwnedUserId,
    RoomAliasId, RoomId, UserId,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::Secret;

pub use error::{FailureKind, HomeserverError};
pub use ids::MatrixIds;
pub use synapse::Synapse;

pub type HsResult<T> = Result<T, HomeserverError>;

/// In the bot's redaction of an edit: the message the edit was of. Readers leave such a
/// redacted edit out (the message itself still reads as it did before the edit).
pub const REDACTED_EDIT_OF: &str = "org.chatrooms.edit_of";

/// What a new room starts with; the reconciler fills in the rest afterwards.
#[derive(Clone, Debug)]
pub struct NewRoom {
    pub alias_localpart: String,
    pub name: String,
    pub avatar: Option<OwnedMxcUri>,
    pub topic: Option<String>,
    /// `events_default` of the initial power levels.
    pub events_default: i64,
    pub room_version: Option<String>,
    /// `users` of the initial power levels (already including the bot where the room version needs it).
    pub power_users: BTreeMap<OwnedUserId, i64>,
    pub invite: Vec<OwnedUserId>,
    /// A space (`creation_content.type = m.space`) rather than a chat room.
    pub space: bool,
    /// End-to-end encrypted from its first event (`m.room.encryption`, megolm).
    pub encrypted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    Invite,
    Join,
    Leave,
    Ban,
    Knock,
}

impl Membership {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "invite" => Some(Self::Invite),
            "join" => Some(Self::Join),
            "leave" => Some(Self::Leave),
            "ban" => Some(Self::Ban),
            "knock" => Some(Self::Knock),
            _ => None,
        }
    }
}

/// The parts of a room's current state the service manages.
#[derive(Clone, Debug, Default)]
pub struct RoomState {
    pub room_version: String,
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub topic: Option<String>,
    /// `m.room.pinned_events`: not the backend's to enforce, only to know.
    pub pinned: Vec<String>,
    pub power_levels: serde_json::Value,
    pub members: BTreeMap<OwnedUserId, Membership>,
    /// A space's children (`m.space.child` state keys whose content has a `via`).
    pub children: std::collections::BTreeSet<String>,
    /// The spaces a room names as parents (`m.space.parent` with a `via`), and whether canonical.
    pub parents: BTreeMap<String, bool>,
}

impl RoomState {
    /// Parses the array `GET /rooms/{id}/state` returns; events it does not manage are ignored.
    pub fn from_events(events: &[serde_json::Value]) -> Self {
        let mut state = RoomState { room_version: "1".into(), ..Default::default() };
        for event in events {
            let content = &event["content"];
            match event["type"].as_str() {
                Some("m.room.create") => {
                    if let Some(v) = content["room_version"].as_str() {
                        state.room_version = v.to_owned();
                    }
                }
                Some("m.room.name") => state.name = content["name"].as_str().map(str::to_owned),
                Some("m.room.avatar") => {
                    state.avatar = content["url"].as_str().filter(|u| !u.is_empty()).map(str::to_owned)
                }
                Some("m.room.topic") => {
                    state.topic = content["topic"].as_str().filter(|t| !t.is_empty()).map(str::to_owned)
                }
                Some("m.room.pinned_events") => {
                    state.pinned = content["pinned"]
                        .as_array()
                        .map(|ids| ids.iter().filter_map(|id| id.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default()
                }
                Some("m.room.power_levels") => state.power_levels = content.clone(),
                // An empty content (no `via`) is how a child or parent link is removed.
                Some("m.space.child") if has_via(content) => {
                    if let Some(child) = event["state_key"].as_str() {
                        state.children.insert(child.to_owned());
                    }
                }
                Some("m.space.parent") if has_via(content) => {
                    if let Some(parent) = event["state_key"].as_str() {
                        state.parents.insert(parent.to_owned(), content["canonical"] == true);
                    }
                }
                Some("m.room.member") => {
                    let user = event["state_key"].as_str().and_then(|s| UserId::parse(s).ok());
                    let membership = content["membership"].as_str().and_then(Membership::parse);
                    if let (Some(user), Some(membership)) = (user, membership) {
                        state.members.insert(user, membership);
                    }
                }
                _ => {}
            }
        }
        state
    }
}

fn has_via(content: &serde_json::Value) -> bool {
    content["via"].as_array().is_some_and(|via| !via.is_empty())
}

/// A page of a room's messages (`m.room.message` events, raw, with their bundled edits),
/// newest first.
#[derive(Clone, Debug, Default)]
pub struct MessagePage {
    pub events: Vec<serde_json::Value>,
    /// The token of the next (older) page; `None` at the room's beginning.
    pub next: Option<String>,
}

/// A report a homeserver user made of an event (Synapse's admin API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventReport {
    /// The homeserver's id: increasing, newer reports have higher ones.
    pub id: i64,
    pub room_id: String,
    pub event_id: String,
    /// Who reported it.
    pub reporter: String,
    /// Who sent the event.
    pub sender: Option<String>,
    pub reason: Option<String>,
    pub received_ts: i64,
}

/// A page of event reports, newest first, and the offset of the next (older) page.
#[derive(Clone, Debug, Default)]
pub struct EventReportPage {
    pub reports: Vec<EventReport>,
    pub next: Option<u64>,
}

/// How a history purge is going (Synapse's admin API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeStatus {
    Active,
    Complete,
    Failed,
}

/// A session the homeserver issued for one of our users.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in_ms: Option<u64>,
    /// The homeserver's `/.well-known/matrix/client` body.
    pub well_known: serde_json::Value,
}

/// One of a user's devices, as the homeserver lists it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    #[serde(rename = "deviceID")]
    pub device_id: String,
    pub display_name: Option<String>,
    /// Unix milliseconds.
    #[serde(rename = "lastSeenTS")]
    pub last_seen_ts: Option<i64>,
    #[serde(rename = "lastSeenIP")]
    pub last_seen_ip: Option<String>,
}

/// Everything the service asks of a homeserver. Each call is safe to repeat.
#[async_trait]
pub trait Homeserver: Send + Sync + 'static {
    fn ids(&self) -> &MatrixIds;
    /// The homeserver answers and accepts the service's own tokens (readiness).
    async fn ping(&self) -> HsResult<()>;
    /// Asks the homeserver to ping this application service (registration `id`) at its
    /// registered URL: whether pushes reach the service. The round trip in milliseconds.
    async fn ping_appservice(&self, appservice_id: &str) -> HsResult<u64>;
    /// The room version new rooms get when none is configured.
    async fn default_room_version(&self) -> HsResult<String>;
    /// Registers a namespaced user; an existing account counts as success.
    async fn ensure_user(&self, user: &UserId) -> HsResult<()>;
    async fn upload_media(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
        file_name: &str,
    ) -> HsResult<OwnedMxcUri>;
    async fn resolve_alias(&self, alias: &RoomAliasId) -> HsResult<Option<OwnedRoomId>>;
    /// Creates a room as the bot. `Ok(None)` means the alias is taken already (a previous attempt).
    async fn create_room(&self, room: &NewRoom) -> HsResult<Option<OwnedRoomId>>;
    async fn room_state(&self, room: &RoomId) -> HsResult<RoomState>;
    /// The room's state whether or not the bot is in it (admin API); `None` for an unknown room.
    async fn room_state_as_admin(&self, room: &RoomId) -> HsResult<Option<RoomState>>;
    /// Removes an alias; an unknown alias counts as success.
    async fn delete_alias(&self, alias: &RoomAliasId) -> HsResult<()>;
    /// Sets a state event with the empty state key.
    async fn set_state(&self, room: &RoomId, event_type: &str, content: serde_json::Value) -> HsResult<()> {
        self.set_state_keyed(room, event_type, "", content).await
    }
    async fn set_state_keyed(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
        content: serde_json::Value,
    ) -> HsResult<()>;
    async fn invite(&self, room: &RoomId, user: &UserId) -> HsResult<()>;
    async fn join_as(&self, room: &RoomId, user: &UserId) -> HsResult<()>;
    async fn kick(&self, room: &RoomId, user: &UserId, reason: &str) -> HsResult<()>;
    async fn unban(&self, room: &RoomId, user: &UserId) -> HsResult<()>;
    /// Sends an `m.room.message` as `sender` (appservice masquerading) or the bot; the same
    /// `txn_id` twice sends one message.
    async fn send_message(
        &self,
        room: &RoomId,
        sender: Option<&UserId>,
        txn_id: &str,
        content: serde_json::Value,
    ) -> HsResult<OwnedEventId>;
    /// The room's messages as the bot sees them, newest first, from `from` (a page token).
    async fn messages(&self, room: &RoomId, from: Option<&str>, limit: u32) -> HsResult<MessagePage>;
    /// The homeserver's own full-text search of `m.room.message` bodies in `rooms`, as the bot,
    /// newest first, from `next` (the token a previous page gave). Redacted messages are left
    /// out by the homeserver.
    async fn search(
        &self,
        rooms: &[OwnedRoomId],
        term: &str,
        next: Option<&str>,
        limit: u32,
    ) -> HsResult<MessagePage>;
    /// One event of the room, or `None` when the room has no such event.
    async fn event(&self, room: &RoomId, event: &EventId) -> HsResult<Option<serde_json::Value>>;
    /// Redacts the event as the bot; the same `txn_id` twice is one redaction. `edit_of`: the
    /// event is an edit of that message (kept in the redaction as [`REDACTED_EDIT_OF`], since the
    /// redaction strips the edit's own relation).
    async fn redact(
        &self,
        room: &RoomId,
        event: &EventId,
        txn_id: &str,
        reason: Option<&str>,
        edit_of: Option<&str>,
    ) -> HsResult<()>;
    /// Writes a state event marking where a history truncation cuts (as the bot); its id.
    async fn mark_history(&self, room: &RoomId, at_ms: i64) -> HsResult<OwnedEventId>;
    /// Starts purging the room's events before `up_to` (messages go, state stays); the purge id.
    async fn purge_history(&self, room: &RoomId, up_to: &EventId) -> HsResult<String>;
    /// How the purge is going; `None` for an id the homeserver does not know.
    async fn purge_history_status(&self, purge_id: &str) -> HsResult<Option<PurgeStatus>>;
    /// Bans the user as the bot (they leave and cannot rejoin); banning a banned user is fine.
    async fn ban(&self, room: &RoomId, user: &UserId, reason: &str) -> HsResult<()>;
    /// The bot leaves the room.
    async fn leave(&self, room: &RoomId) -> HsResult<()>;
    /// Local media referenced by the room's events (admin API).
    async fn room_media(&self, room: &RoomId) -> HsResult<Vec<OwnedMxcUri>>;
    /// Deletes local media; already gone counts as success.
    async fn delete_media(&self, mxc: &OwnedMxcUri) -> HsResult<()>;
    /// Reports of events made by the homeserver's users (admin API), newest first, from the
    /// offset `from`.
    async fn event_reports(&self, from: u64, limit: u32) -> HsResult<EventReportPage>;
    /// Deletes one of the homeserver's event reports; an unknown one counts as success.
    async fn delete_event_report(&self, id: i64) -> HsResult<()>;
    /// Shuts the room down and purges it, waiting until the purge finished.
    async fn purge_room(&self, room: &RoomId) -> HsResult<()>;

    /// Logs the user in on `device_id` (application-service login, with a refresh token).
    async fn login(&self, user: &UserId, device_id: &str) -> HsResult<Session>;
    /// Sets the account's password without logging its devices out (admin API).
    async fn set_password(&self, user: &UserId, password: &Secret) -> HsResult<()>;
    async fn set_display_name(&self, user: &UserId, name: Option<&str>) -> HsResult<()>;
    async fn set_avatar_url(&self, user: &UserId, avatar: Option<&OwnedMxcUri>) -> HsResult<()>;
    async fn devices(&self, user: &UserId) -> HsResult<Vec<Device>>;
    /// Deletes devices and with them their tokens; unknown devices are ignored.
    async fn delete_devices(&self, user: &UserId, devices: &[String]) -> HsResult<()>;
    /// Deactivates the account: it leaves every room and can no longer log in.
    async fn deactivate(&self, user: &UserId) -> HsResult<()>;
}

pub fn room_alias(localpart: &str, server_name: &str) -> Result<OwnedRoomAliasId, String> {
    RoomAliasId::parse(format!("#{localpart}:{server_name}")).map_err(|e| format!("room alias: {e}"))
}
