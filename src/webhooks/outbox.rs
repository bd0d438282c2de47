//! Emitting an event: one delivery per subscription that wants it, written with the change it
//! reports where there is one, so an event is never lost nor made up.

use chrono::SecondsFormat;
use serde_json::{json, Map, Value};
use sqlx::AnyConnection;

use super::EventType;
use crate::{
    domain::{ChatroomId, OrganizationId},
    store::webhooks::{self, NewDelivery},
};

/// The room an event is about, as every event's `data` names it.
#[derive(Clone, Debug)]
pub struct RoomRef {
    pub id: ChatroomId,
    pub organization_id: OrganizationId,
    pub matrix_room_id: Option<String>,
}

impl RoomRef {
    pub fn of(room: &crate::store::chatrooms::Chatroom) -> Self {
        Self {
            id: room.id,
            organization_id: room.organization_id,
            matrix_room_id: room.matrix_room_id.as_ref().map(ToString::to_string),
        }
    }
}

/// One event to report.
pub struct Outgoing<'a> {
    pub kind: EventType,
    pub room: &'a RoomRef,
    /// What it came from (a homeserver event id, or a change of ours): the same source emitted
    /// twice is delivered once.
    pub source: &'a str,
    /// The event's own fields, beside the room's.
    pub data: Map<String, Value>,
    pub at: i64,
}

/// Queues the event for every subscription that wants it; how many deliveries were queued.
pub async fn emit(conn: &mut AnyConnection, event: Outgoing<'_>) -> sqlx::Result<usize> {
    let subscriptions = webhooks::subscriptions(conn).await?;
    let wanted: Vec<_> = subscriptions
        .iter()
        .filter(|sub| sub.organization_id.is_none_or(|org| org == event.room.organization_id))
        .filter(|sub| sub.event_types.iter().any(|kind| kind == event.kind.as_str()))
        .collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let mut data = Map::new();
    data.insert("roomID".into(), json!(event.room.id));
    data.insert("organizationID".into(), json!(event.room.organization_id));
    data.insert("matrixRoomID".into(), json!(event.room.matrix_room_id));
    data.extend(event.data);
    let timestamp = chrono::DateTime::from_timestamp_millis(event.at)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let payload = json!({"type": event.kind.as_str(), "timestamp": timestamp, "data": data}).to_string();
    let mut queued = 0;
    for sub in wanted {
        let id = format!("msg_{}", hex::encode(rand::random::<[u8; 16]>()));
        let delivery = NewDelivery {
            id: &id,
            subscription_id: &sub.id,
            chatroom_id: event.room.id,
            event_type: event.kind.as_str(),
            source: event.source,
            payload: &payload,
            created_at: event.at,
        };
        if webhooks::insert_delivery(conn, &delivery).await? {
            queued += 1;
        }
    }
    if queued > 0 {
        tracing::debug!(
            event = event.kind.as_str(),
            chatroom = event.room.id,
            queued,
            "webhook event queued"
        );
    }
    Ok(queued)
}
