//! The use cases on rooms. Each validates, writes the desired state with its sync job in one
//! transaction, lets the homeserver catch up within the request's wait, and returns the room or
//! a typed error; the HTTP layer only maps that error to a status.

mod accounts;
mod archive;
mod avatar;
pub mod blocklists;
mod checks;
mod create;
mod deactivate;
mod delete;
mod event_room;
mod export;
pub mod input;
mod members;
pub mod messages;
pub mod moderation;
pub mod organizations;
pub mod reports;
pub mod rosters;
mod update;
mod user_rooms;
mod view;

use crate::{
    domain::{AppUserId, ChatroomId},
    matrix::HomeserverError,
    state::AppState,
    store::{
        chatrooms::{self, Chatroom},
        jobs, Tx,
    },
    sync::SyncError,
};

pub use accounts::{provision_account, ProvisionedAccount};
pub use archive::set_archived;
pub use avatar::{discard_upload, upload_avatar};
pub use create::{create, Idempotency, RoomDraft};
pub use deactivate::deactivate_user;
pub use delete::delete;
pub use event_room::put_event_room;
pub use export::{export, ExportLine};
pub use members::{add_members, claim, recheck, remove_member, resync};
pub use update::{update, RoomUpdate};
pub use user_rooms::{rooms_of_user, RoleSource, UserRoom};
pub use view::{deleted, written, ChatroomResponse, SyncStatus};

/// Why a use case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("chatroom {0} does not exist")]
    NotFound(ChatroomId),
    #[error("user {user} holds no role in chatroom {room}")]
    NotAMember { room: ChatroomId, user: AppUserId },
    /// Claiming a room one holds no role in: not allowed, rather than not found.
    #[error("user {user} holds no role in chatroom {room}")]
    HoldsNoRole { room: ChatroomId, user: AppUserId },
    /// Removing a user the room has only by the roster it follows.
    #[error("user {user} is in chatroom {room} by its roster, not its lists: remove them from the roster")]
    OnlyByRoster { room: ChatroomId, user: AppUserId },
    #[error("{0}")]
    NotInRoster(String),
    #[error("user {user} is not banned from chatroom {room}")]
    NotBanned { room: ChatroomId, user: AppUserId },
    #[error("user {user} is not muted in chatroom {room}")]
    NotMuted { room: ChatroomId, user: AppUserId },
    /// The actor does not outrank the target, or whoever set the ban or mute in force.
    #[error("{0}")]
    Outranked(String),
    /// The room has no Matrix room yet (its creation is being retried).
    #[error("chatroom {0} is not on the homeserver yet; try again shortly")]
    NotOnHomeserver(ChatroomId),
    #[error("senderID {user} holds no role in chatroom {room}")]
    SenderHoldsNoRole { room: ChatroomId, user: AppUserId },
    /// The sender may not post: banned, muted, or an assigned user in a read-only room.
    #[error("{0}")]
    CannotPost(String),
    /// A history page token the homeserver does not know.
    #[error("{0}")]
    BadPageToken(String),
    /// Nobody posts in an archived room.
    #[error("chatroom {0} is archived: unarchive it to post")]
    Archived(ChatroomId),
    #[error("a truncation of chatroom {0} is running already")]
    TruncationRunning(ChatroomId),
    #[error("the homeserver could not purge the history (purge {0})")]
    TruncationFailed(String),
    #[error("message {0} is not pinned")]
    NotPinned(String),
    #[error("chatroom has no message {0}")]
    NoSuchMessage(String),
    /// The service cannot read or write an end-to-end encrypted room's messages.
    #[error("chatroom {0} is end-to-end encrypted: the service cannot read or send its messages")]
    Encrypted(ChatroomId),
    /// Encryption is chosen when a room is created, and never undone.
    #[error("chatroom {0}'s encryption was chosen at its creation and cannot change")]
    EncryptionFixed(ChatroomId),
    #[error("you reported message {0} already; your report is still open")]
    AlreadyReported(String),
    #[error("no report {0}")]
    NoSuchReport(i64),
    #[error("report {0} is resolved already")]
    ReportResolved(i64),
    /// Only a message's sender edits it.
    #[error("{0}")]
    NotTheSender(String),
    /// Only assigned users can be muted.
    #[error("user {user} is one of the room's {role}s: demote them to an assigned user before muting")]
    NotMutable { user: AppUserId, role: &'static str },
    #[error("app user {0} is deactivated")]
    UserDeactivated(AppUserId),
    /// The organization's default room, or the event's room, exists already.
    #[error("the room exists already")]
    Exists,
    #[error("this Idempotency-Key was used for a different request; use a new key for a new request")]
    IdempotencyKeyReused,
    /// More users than a room may hold.
    #[error("{0}")]
    TooManyUsers(String),
    /// More users than the room's `maxUsers`.
    #[error("{0}")]
    RoomFull(String),
    /// Admins and moderators whose power levels do not fit in one Matrix state event.
    #[error("{0}")]
    TooManyPowerUsers(String),
    #[error("deactivated users cannot hold a role: {0:?}")]
    DeactivatedUsers(Vec<AppUserId>),
    /// A value that is valid only at the right time (a scheduled deletion in the past).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Homeserver(#[from] HomeserverError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type RoomResult<T> = Result<T, RoomError>;

/// A room after a change, and whether the homeserver has caught up with it.
pub struct Written {
    pub room: Chatroom,
    pub synced: bool,
}

pub async fn load(state: &AppState, id: ChatroomId) -> RoomResult<Chatroom> {
    let mut conn = state.store.reader().acquire().await?;
    chatrooms::find(&mut conn, id).await?.ok_or(RoomError::NotFound(id))
}

/// The one ending of every change: queue the room's sync in the change's transaction and
/// commit; then [`converge`].
async fn commit_with_job(state: &AppState, mut tx: Tx, id: ChatroomId) -> RoomResult<()> {
    jobs::enqueue(&mut tx, id, state.clock.now_ms()).await?;
    tx.commit().await?;
    Ok(())
}

/// Lets the homeserver catch up with a committed change (for a bounded time) and reads the
/// room back.
async fn converge(state: &AppState, id: ChatroomId) -> RoomResult<Written> {
    state.reconciler.converge_within_request(vec![id]).await;
    let room = load(state, id).await?;
    Ok(Written { synced: !room.sync.pending, room })
}
