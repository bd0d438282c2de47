//! Exports: the service's records of an organization, or of all of them, as NDJSON lines read
//! from the database a page at a time, so that memory stays flat whatever the size.

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::{RoomError, RoomResult};
use crate::{
    clock::to_datetime,
    domain::{AppUserId, ChatroomId, EventId, OrganizationId},
    rooms::ChatroomResponse,
    state::AppState,
    store::{chatrooms, export, moderation},
};

/// The format's version, in the first line: a change that breaks readers bumps it.
pub const FORMAT_VERSION: u32 = 1;
/// Records per database read.
const PAGE: i64 = 500;

/// One line of an export; `type` says which.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ExportLine {
    /// The first line: the format's version and when the export was taken.
    Export {
        version: u32,
        #[serde(rename = "takenAt")]
        taken_at: DateTime<Utc>,
        /// The organization exported, or null for all of them.
        #[serde(rename = "organizationID")]
        organization_id: Option<OrganizationId>,
    },
    /// A room, with its bans and mutes.
    Room(Box<ExportedRoom>),
    OrganizationMember {
        #[serde(rename = "organizationID")]
        organization_id: OrganizationId,
        #[serde(rename = "userID")]
        user_id: AppUserId,
        /// `admin` or `member`.
        role: String,
    },
    EventParticipant {
        #[serde(rename = "organizationID")]
        organization_id: OrganizationId,
        #[serde(rename = "eventID")]
        event_id: EventId,
        #[serde(rename = "userID")]
        user_id: AppUserId,
    },
    /// An app user's Matrix account.
    Account {
        #[serde(rename = "userID")]
        user_id: AppUserId,
        #[serde(rename = "matrixUserID")]
        matrix_user_id: String,
        deactivated: bool,
    },
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedRoom {
    /// As `GET /chatrooms/{roomID}` answers (nested: its own `type` is the room's kind).
    pub room: ChatroomResponse,
    pub bans: Vec<ExportedBan>,
    pub mutes: Vec<ExportedMute>,
}

/// A ban in force.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedBan {
    #[serde(rename = "userID")]
    pub user_id: AppUserId,
    pub reason: Option<String>,
    /// `backend` or `user:<id>`.
    pub actor: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedMute {
    #[serde(rename = "userID")]
    pub user_id: AppUserId,
    pub actor: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Where an export is: the next records to read start after these keys.
enum Cursor {
    Header,
    Rooms(ChatroomId),
    Members(OrganizationId, AppUserId),
    Participants(OrganizationId, EventId, AppUserId),
    Accounts(AppUserId),
    Done,
}

/// The export of one organization (or all, `None`) as chunks of NDJSON lines, each chunk one
/// page of records. Read lazily: a client that goes away stops the reads.
pub fn export(
    state: AppState,
    organization: Option<OrganizationId>,
) -> impl Stream<Item = RoomResult<Bytes>> + Send + 'static {
    let taken_at = state.clock.now_ms();
    futures::stream::unfold(Cursor::Header, move |cursor| {
        let state = state.clone();
        async move {
            if matches!(cursor, Cursor::Done) {
                return None;
            }
            Some(match next_chunk(&state, organization, taken_at, cursor).await {
                Ok((chunk, next)) => (Ok(chunk), next),
                Err(e) => (Err(e), Cursor::Done),
            })
        }
    })
    // Ends for good: a reader that polls past the end (the gzip layer does) gets nothing more.
    .fuse()
}

/// The next non-empty chunk and where to go on; an exhausted kind of record passes to the next.
async fn next_chunk(
    state: &AppState,
    org: Option<OrganizationId>,
    taken_at: i64,
    mut cursor: Cursor,
) -> RoomResult<(Bytes, Cursor)> {
    let mut conn = state.store.reader().acquire().await?;
    loop {
        let (lines, next) = match cursor {
            Cursor::Header => {
                let taken_at = to_datetime(taken_at).unwrap_or_default();
                let header = ExportLine::Export { version: FORMAT_VERSION, taken_at, organization_id: org };
                (vec![header], Cursor::Rooms(0))
            }
            Cursor::Rooms(after) => {
                let rooms = chatrooms::page_after(&mut conn, org, after, PAGE).await?;
                let Some(last) = rooms.last().map(|room| room.id) else {
                    cursor = Cursor::Members(0, 0);
                    continue;
                };
                let ids: Vec<ChatroomId> = rooms.iter().map(|room| room.id).collect();
                let mut bans = moderation::bans_in(&mut conn, &ids).await?;
                let mut mutes = moderation::mutes_in(&mut conn, &ids).await?;
                let lines = rooms
                    .into_iter()
                    .map(|room| {
                        let id = room.id;
                        ExportLine::Room(Box::new(ExportedRoom {
                            room: room.into(),
                            bans: bans
                                .remove(&id)
                                .unwrap_or_default()
                                .into_iter()
                                .map(ExportedBan::from)
                                .collect(),
                            mutes: mutes
                                .remove(&id)
                                .unwrap_or_default()
                                .into_iter()
                                .map(ExportedMute::from)
                                .collect(),
                        }))
                    })
                    .collect();
                (lines, Cursor::Rooms(last))
            }
            Cursor::Members(after_org, after_user) => {
                let page = export::members(&mut conn, org, (after_org, after_user), PAGE).await?;
                let Some(&(last_org, last_user, _)) = page.last() else {
                    cursor = Cursor::Participants(0, 0, 0);
                    continue;
                };
                let lines = page
                    .into_iter()
                    .map(|(organization_id, user_id, role)| ExportLine::OrganizationMember {
                        organization_id,
                        user_id,
                        role,
                    })
                    .collect();
                (lines, Cursor::Members(last_org, last_user))
            }
            Cursor::Participants(after_org, after_event, after_user) => {
                let page =
                    export::participants(&mut conn, org, (after_org, after_event, after_user), PAGE).await?;
                let Some(&(last_org, last_event, last_user)) = page.last() else {
                    cursor = Cursor::Accounts(0);
                    continue;
                };
                let lines = page
                    .into_iter()
                    .map(|(organization_id, event_id, user_id)| ExportLine::EventParticipant {
                        organization_id,
                        event_id,
                        user_id,
                    })
                    .collect();
                (lines, Cursor::Participants(last_org, last_event, last_user))
            }
            Cursor::Accounts(after) => {
                let page = export::accounts(&mut conn, org, after, PAGE).await?;
                let Some(&(last, _)) = page.last() else {
                    return Ok((Bytes::new(), Cursor::Done));
                };
                let ids = state.homeserver.ids();
                let lines = page
                    .into_iter()
                    .map(|(user_id, deactivated)| {
                        let matrix_user_id = ids.user_id(user_id).map_err(RoomError::Invalid)?.to_string();
                        Ok(ExportLine::Account { user_id, matrix_user_id, deactivated })
                    })
                    .collect::<RoomResult<Vec<_>>>()?;
                (lines, Cursor::Accounts(last))
            }
            Cursor::Done => return Ok((Bytes::new(), Cursor::Done)),
        };
        return Ok((ndjson(&lines)?, next));
    }
}

fn ndjson(lines: &[ExportLine]) -> RoomResult<Bytes> {
    let mut out = Vec::with_capacity(lines.len() * 512);
    for line in lines {
        serde_json::to_writer(&mut out, line).map_err(|e| RoomError::Invalid(format!("serializing: {e}")))?;
        out.push(b'\n');
    }
    Ok(Bytes::from(out))
}

impl From<moderation::Ban> for ExportedBan {
    fn from(ban: moderation::Ban) -> Self {
        Self {
            user_id: ban.user,
            reason: ban.reason,
            actor: ban.actor,
            expires_at: ban.expires_at.and_then(to_datetime),
        }
    }
}

impl From<moderation::Mute> for ExportedMute {
    fn from(mute: moderation::Mute) -> Self {
        Self { user_id: mute.user, actor: mute.actor, expires_at: mute.expires_at.and_then(to_datetime) }
    }
}
