//! Creating a room (custom, default or event), idempotent with a caller's `Idempotency-Key`.

use ruma::OwnedMxcUri;
use sha2::{Digest, Sha256};

use super::{
    avatar::{discard_upload, upload_avatar},
    checks::{check_capacity, check_room_limits, check_users_active, require_future_deletion},
    converge, RoomError, RoomResult, Written,
};
use crate::{
    domain::{
        Avatar, ChatroomId, EventId, OrganizationId, RoleLists, RoomKind, RoomMembers, RoomName,
        RoomSettings, SettingsChange,
    },
    state::AppState,
    store::{
        self,
        chatrooms::{self, NewChatroom, RosterOf},
        idempotency, jobs, organizations,
    },
};

/// A validated room about to be created.
pub struct RoomDraft {
    pub kind: RoomKind,
    pub organization_id: OrganizationId,
    pub event_id: Option<EventId>,
    pub name: RoomName,
    /// `None`: the template's avatar (none without one); `Some(None)`: no avatar.
    pub avatar: Option<Option<Avatar>>,
    /// `None`: the template's (off without one).
    pub automation_enabled: Option<bool>,
    pub scheduled_deletion: Option<i64>,
    /// On top of the template's settings (or the defaults).
    pub settings: SettingsChange,
    /// `copyFrom`: a room of the same organization whose avatar, settings and automation the
    /// new room starts with.
    pub copy_from: Option<ChatroomId>,
    pub roles: RoleLists,
    /// End-to-end encrypted (custom and event rooms only): chosen here, never undone.
    pub encrypted: bool,
}

/// What a new room starts with before its request's own fields apply.
#[derive(Default)]
struct Template {
    avatar_url: Option<OwnedMxcUri>,
    automation_enabled: bool,
    settings: RoomSettings,
}

impl RoomDraft {
    /// What the request asked for, so a key reused for another request is told apart.
    fn fingerprint(&self) -> String {
        let avatar =
            self.avatar.as_ref().and_then(Option::as_ref).map(|a| hex::encode(Sha256::digest(a.bytes())));
        let roles: Vec<_> =
            self.roles.iter().map(|(user, role)| format!("{user}:{}", role.as_str())).collect();
        // The fields rooms had before settings and copyFrom, as keys recorded then describe them.
        let mut described = format!(
            "{}|{}|{:?}|{}|{}|{:?}|{:?}|{:?}",
            self.kind.as_str(),
            self.organization_id,
            self.event_id,
            self.name.as_str(),
            self.automation_enabled.unwrap_or(false),
            self.scheduled_deletion,
            roles,
            avatar
        );
        if self.settings != SettingsChange::default() || self.copy_from.is_some() {
            let given = (self.avatar.is_some(), self.automation_enabled.is_some());
            described.push_str(&format!("|{:?}|{:?}|{given:?}", self.settings, self.copy_from));
        }
        // Only when asked for: keys recorded before encryption existed stay valid.
        if self.encrypted {
            described.push_str("|encrypted");
        }
        hex::encode(Sha256::digest(described.as_bytes()))
    }
}

/// A creating request's `Idempotency-Key`, scoped to its caller.
pub struct Idempotency {
    pub caller: String,
    pub key: String,
}

impl Idempotency {
    /// The request's key, if it sent one, scoped to `caller` (two callers may use one key).
    pub fn for_caller(caller: String, key: Option<String>) -> Option<Self> {
        key.map(|key| Self { caller, key })
    }
}

/// Creates the room and lets the homeserver catch up; with an idempotency key already used for
/// the same request, answers with the room that request created.
pub async fn create(
    state: &AppState,
    draft: RoomDraft,
    idempotency: Option<&Idempotency>,
) -> RoomResult<Written> {
    let id = insert(state, draft, idempotency).await?;
    converge(state, id).await
}

/// Stores the room, its roles, its sync job and its idempotency key in one transaction.
async fn insert(
    state: &AppState,
    draft: RoomDraft,
    idempotency: Option<&Idempotency>,
) -> RoomResult<ChatroomId> {
    if let Some(idempotency) = idempotency {
        if let Some(id) = replay(state, idempotency, &draft).await? {
            return Ok(id);
        }
    }
    require_future_deletion(state, draft.scheduled_deletion)?;
    let template = template(state, &draft).await?;
    let start = Template {
        settings: template.settings.changed_by(&draft.settings),
        automation_enabled: draft.automation_enabled.unwrap_or(template.automation_enabled),
        avatar_url: template.avatar_url,
    };
    // An automated room starts with its roster too.
    let roster =
        RosterOf::for_room(draft.kind, draft.organization_id, draft.event_id, start.automation_enabled);
    let roster = chatrooms::roster_roles(&mut *state.store.pool().acquire().await?, roster).await?;
    let members = RoomMembers::new(draft.roles.clone(), roster);
    check_room_limits(state, &members, &[])?;
    check_capacity(start.settings.max_users, 0, members.len())?;
    check_users_active(state, &draft.roles).await?;
    let (avatar_url, uploaded) = match &draft.avatar {
        Some(Some(avatar)) => (Some(upload_avatar(state, avatar).await?), true),
        Some(None) => (None, false),
        None => (start.avatar_url.clone(), false),
    };
    let start = Template { avatar_url, ..start };
    let stored = store_room(state, &draft, &start, idempotency).await;
    if uploaded && !matches!(stored, Ok(Stored::New(_))) {
        discard_upload(state, start.avatar_url.as_ref()).await;
    }
    let id = match stored? {
        Stored::New(id) => id,
        Stored::Replayed(id) => return Ok(id),
    };
    tracing::info!(
        chatroom = id,
        kind = draft.kind.as_str(),
        organization = draft.organization_id,
        "chatroom created"
    );
    Ok(id)
}

/// The `copyFrom` room's avatar, settings and automation; the defaults without one.
async fn template(state: &AppState, draft: &RoomDraft) -> RoomResult<Template> {
    let Some(source) = draft.copy_from else { return Ok(Template::default()) };
    let mut conn = state.store.pool().acquire().await?;
    let room = chatrooms::find(&mut conn, source)
        .await?
        .ok_or_else(|| RoomError::Invalid(format!("copyFrom: chatroom {source} does not exist")))?;
    if room.organization_id != draft.organization_id {
        return Err(RoomError::Invalid(format!(
            "copyFrom: chatroom {source} belongs to another organization"
        )));
    }
    Ok(Template {
        avatar_url: room.avatar_url,
        automation_enabled: room.automation_enabled,
        settings: room.settings,
    })
}

/// The room an earlier request with the same key created, if any.
async fn replay(
    state: &AppState,
    idempotency: &Idempotency,
    draft: &RoomDraft,
) -> RoomResult<Option<ChatroomId>> {
    let mut conn = state.store.pool().acquire().await?;
    let Some(recorded) = idempotency::find(&mut conn, &idempotency.caller, &idempotency.key).await? else {
        return Ok(None);
    };
    if recorded.operation != draft.kind.as_str() || recorded.fingerprint != draft.fingerprint() {
        return Err(RoomError::IdempotencyKeyReused);
    }
    Ok(Some(recorded.chatroom_id))
}

enum Stored {
    New(ChatroomId),
    /// A concurrent request with the same Idempotency-Key committed this room first.
    Replayed(ChatroomId),
}

async fn store_room(
    state: &AppState,
    draft: &RoomDraft,
    start: &Template,
    idempotency: Option<&Idempotency>,
) -> RoomResult<Stored> {
    let now = state.clock.now_ms();
    let alias = format!("chatrooms_{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    let new_room = NewChatroom {
        kind: draft.kind,
        organization_id: draft.organization_id,
        event_id: draft.event_id,
        name: draft.name.as_str(),
        avatar_url: start.avatar_url.as_ref(),
        automation_enabled: start.automation_enabled,
        scheduled_deletion: draft.scheduled_deletion,
        matrix_alias: &alias,
        settings: &start.settings,
        encrypted: draft.encrypted,
    };
    let mut tx = state.store.begin().await?;
    let id = match store_new_room(&mut tx, &new_room, draft, idempotency, now).await {
        Ok(id) => id,
        Err(e) => {
            drop(tx);
            if !store::is_unique_violation(&e) {
                return Err(e.into());
            }
            // A concurrent request with the same key committed first: answer with its room
            // (and keep only its avatar).
            if let Some(idempotency) = idempotency {
                if let Some(id) = replay(state, idempotency, draft).await? {
                    return Ok(Stored::Replayed(id));
                }
            }
            return Err(RoomError::Exists);
        }
    };
    tx.commit().await?;
    Ok(Stored::New(id))
}

/// The inserts of a new room: record, roles, sync job and idempotency key.
async fn store_new_room(
    tx: &mut store::Tx,
    new_room: &NewChatroom<'_>,
    draft: &RoomDraft,
    idempotency: Option<&Idempotency>,
    now: i64,
) -> sqlx::Result<ChatroomId> {
    // After a concurrent roster change of the organization, not beside it (it would miss the room).
    organizations::lock(tx, draft.organization_id, now).await?;
    let id = chatrooms::insert(tx, new_room, now).await?;
    chatrooms::put_roles(tx, id, &draft.roles).await?;
    jobs::enqueue(tx, id, now).await?;
    if let Some(idempotency) = idempotency {
        let recorded = idempotency::Recorded {
            operation: draft.kind.as_str().to_owned(),
            fingerprint: draft.fingerprint(),
            chatroom_id: id,
            event_id: None,
        };
        idempotency::insert(tx, &idempotency.caller, &idempotency.key, &recorded, now).await?;
    }
    Ok(id)
}
