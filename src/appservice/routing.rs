//! Acting on what the homeserver pushed: in a managed room, a change to what the backend owns
//! queues the room's drift check at once; moderation by the room's staff in a Matrix client is
//! adopted, anyone else's reverted. Events of rooms we do not manage, and the bot's own, are
//! ignored.

use std::collections::HashMap;

use serde_json::Value;

use super::events::{self, Event, Pushed};
use crate::{
    domain::ChatroomId,
    rooms::{
        self,
        moderation::{self, Adoption, ClientModeration},
        RoomError,
    },
    state::AppState,
    store::chatrooms,
};

/// Acts on each event in order. Every effect is safe to repeat: a transaction processed again
/// after a crash changes nothing more.
pub async fn route(state: &AppState, events: &[Value]) -> Result<(), RoomError> {
    let mut managed: HashMap<String, Option<ChatroomId>> = HashMap::new();
    for event in events {
        let Some(event) = events::parse(event) else { continue };
        if event.sender == state.homeserver.ids().bot() {
            continue;
        }
        let room = match managed.get(event.room) {
            Some(room) => *room,
            None => {
                let mut conn = state.store.pool().acquire().await?;
                let room = chatrooms::id_of_matrix_room(&mut conn, event.room).await?;
                managed.insert(event.room.to_owned(), room);
                room
            }
        };
        let Some(room) = room else { continue };
        match route_one(state, room, event).await {
            // Deleted meanwhile: nothing left to keep in step.
            Ok(()) | Err(RoomError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn route_one(state: &AppState, room: ChatroomId, event: Event<'_>) -> Result<(), RoomError> {
    let ids = state.homeserver.ids();
    match event.what {
        Pushed::OwnedState { kind } => {
            tracing::info!(chatroom = room, kind, sender = %event.sender, "owned state changed on the homeserver; checking the room");
            rooms::recheck(state, room).await
        }
        Pushed::Membership { target, membership, reason, .. } => {
            // Strangers' memberships are not ours to keep.
            let Some(user) = ids.app_user(&target) else { return Ok(()) };
            let action = match membership {
                "ban" => ClientModeration::Ban { reason: reason.map(str::to_owned) },
                "leave" => ClientModeration::Leave,
                // A user's own join (the syncs join as the user) is as it should be.
                _ if event.sender == target => return Ok(()),
                _ => return rooms::recheck(state, room).await,
            };
            // A user who leaves or bans themselves is joined again: the lists say where they are.
            let actor = ids.app_user(&event.sender).filter(|_| event.sender != target);
            let Some(actor) = actor else { return rooms::recheck(state, room).await };
            let adoption = moderation::adopt(state, room, actor, user, action).await?;
            if adoption == Adoption::Reverted {
                tracing::info!(chatroom = room, user, actor, membership, "client moderation reverted");
            }
            Ok(())
        }
        Pushed::Redaction { .. } | Pushed::Message { .. } => Ok(()),
    }
}
