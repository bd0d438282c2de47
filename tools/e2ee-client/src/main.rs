//! Two members of an end-to-end encrypted room exchange one message as their Matrix clients
//! would (matrix-sdk with encryption, crypto state in memory): the sender encrypts it for the
//! reader's device, the reader decrypts it.
//!
//!     e2ee-client <homeserver-url> <room-id> <text> < sessions.json
//!
//! `sessions.json`: `{"sender": S, "reader": S}`, each `S` a session as the service's
//! `POST /user/login` answers it (`userID`, `deviceID`, `accessToken`). Prints
//! `{"eventID": "...", "decrypted": "..."}`; fails when the reader cannot decrypt within 30 s.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use matrix_sdk::{
    authentication::{matrix::MatrixSession, SessionTokens},
    config::SyncSettings,
    room::MessagesOptions,
    ruma::{
        events::{room::message::RoomMessageEventContent, AnySyncMessageLikeEvent, AnySyncTimelineEvent},
        OwnedEventId, RoomId, UserId,
    },
    Client, SessionMeta,
};
use serde_json::{json, Value};

async fn client(homeserver: &str, session: &Value) -> anyhow::Result<Client> {
    let field = |name: &str| session[name].as_str().with_context(|| format!("session without {name}"));
    let client = Client::builder().homeserver_url(homeserver).build().await?;
    client
        .restore_session(MatrixSession {
            meta: SessionMeta { user_id: UserId::parse(field("userID")?)?, device_id: field("deviceID")?.into() },
            tokens: SessionTokens { access_token: field("accessToken")?.to_owned(), refresh_token: None },
        })
        .await?;
    // The first sync uploads the device's keys.
    client.sync_once(SyncSettings::default()).await?;
    Ok(client)
}

/// The message as the reader's client decrypted it, once its room key arrived.
async fn decrypted(reader: &Client, room: &RoomId, event: &OwnedEventId) -> anyhow::Result<Option<String>> {
    reader.sync_once(SyncSettings::default().timeout(Duration::from_millis(500))).await?;
    let Some(joined) = reader.get_room(room) else { return Ok(None) };
    let page = joined.messages(MessagesOptions::backward()).await?;
    Ok(page.chunk.iter().find_map(|found| match found.raw().deserialize() {
        Ok(AnySyncTimelineEvent::MessageLike(AnySyncMessageLikeEvent::RoomMessage(message)))
            if message.event_id() == event =>
        {
            message.as_original().map(|original| original.content.body().to_owned())
        }
        _ => None,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, homeserver, room, text] = &args[..] else {
        bail!("usage: e2ee-client <homeserver-url> <room-id> <text> < sessions.json")
    };
    let sessions: Value = serde_json::from_reader(std::io::stdin()).context("sessions on stdin")?;
    let room = RoomId::parse(room.as_str())?;
    let reader = client(homeserver, &sessions["reader"]).await?;
    let sender = client(homeserver, &sessions["sender"]).await?;
    let joined = sender.get_room(&room).context("the sender is not in the room")?;
    let event = joined.send(RoomMessageEventContent::text_plain(text.as_str())).await?.response.event_id;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(body) = decrypted(&reader, &room, &event).await? {
            println!("{}", json!({"eventID": event, "decrypted": body}));
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the reader could not decrypt {event} within 30 s");
        }
    }
}
