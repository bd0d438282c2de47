//! A layer around the real Synapse adapter that injects faults a real homeserver will not
//! produce on demand: a panic in one room's sync, scripted refusals, slow calls. Every call it
//! does not disturb goes to the real Synapse, so what the tests then assert is real.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use chatrooms::{
    config::Secret,
    matrix::{
        Device, Homeserver, HomeserverError, HsResult, MatrixIds, MessagePage, NewRoom, RoomState, Session,
    },
};
use ruma::{OwnedMxcUri, OwnedRoomId, RoomAliasId, RoomId, UserId};

#[derive(Default)]
pub struct Faults {
    /// Rooms whose state read panics.
    panic_rooms: Mutex<HashSet<String>>,
    /// Errors the next calls of an operation answer with, in order.
    scripted: Mutex<HashMap<&'static str, VecDeque<HomeserverError>>>,
    /// How long each call of an operation waits first.
    delays: Mutex<HashMap<&'static str, Duration>>,
    /// How long purging a given room waits first.
    purge_delays: Mutex<HashMap<String, Duration>>,
    /// Media uploaded through this layer.
    pub uploaded: Mutex<Vec<OwnedMxcUri>>,
    /// Calls per operation.
    calls: Mutex<HashMap<&'static str, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Faults {
    pub fn panic_in(&self, room: &str) {
        lock(&self.panic_rooms).insert(room.to_owned());
    }
    pub fn stop_panicking(&self) {
        lock(&self.panic_rooms).clear();
    }
    pub fn script(&self, operation: &'static str, errors: impl IntoIterator<Item = HomeserverError>) {
        lock(&self.scripted).entry(operation).or_default().extend(errors);
    }
    pub fn delay(&self, operation: &'static str, by: Duration) {
        lock(&self.delays).insert(operation, by);
    }
    pub fn delay_purge_of(&self, room: &str, by: Duration) {
        lock(&self.purge_delays).insert(room.to_owned(), by);
    }
    pub fn calls(&self, operation: &'static str) -> usize {
        lock(&self.calls).get(operation).copied().unwrap_or(0)
    }

    async fn before(&self, operation: &'static str, room: Option<&RoomId>) -> HsResult<()> {
        *lock(&self.calls).entry(operation).or_default() += 1;
        let delay = lock(&self.delays).get(operation).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if operation == "purge_room" {
            let delay = room.and_then(|r| lock(&self.purge_delays).get(r.as_str()).copied());
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
        }
        if operation == "room_state" && room.is_some_and(|r| lock(&self.panic_rooms).contains(r.as_str())) {
            panic!("injected panic while reading {}", room.unwrap());
        }
        match lock(&self.scripted).get_mut(operation).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// A Matrix refusal as Synapse words it.
pub fn refusal(operation: &'static str, status: u16, errcode: &str) -> HomeserverError {
    HomeserverError::Matrix {
        operation,
        status,
        errcode: errcode.to_owned(),
        message: "injected".to_owned(),
        retry_after: None,
    }
}

pub struct FaultyHomeserver {
    inner: Arc<dyn Homeserver>,
    faults: Arc<Faults>,
}

impl FaultyHomeserver {
    pub fn wrap(faults: Arc<Faults>) -> impl FnOnce(Arc<dyn Homeserver>) -> Arc<dyn Homeserver> {
        move |inner| Arc::new(FaultyHomeserver { inner, faults })
    }
}

#[async_trait]
impl Homeserver for FaultyHomeserver {
    fn ids(&self) -> &MatrixIds {
        self.inner.ids()
    }
    async fn ping(&self) -> HsResult<()> {
        self.inner.ping().await
    }
    async fn ping_appservice(&self, appservice_id: &str) -> HsResult<u64> {
        self.inner.ping_appservice(appservice_id).await
    }
    async fn default_room_version(&self) -> HsResult<String> {
        self.inner.default_room_version().await
    }
    async fn ensure_user(&self, user: &UserId) -> HsResult<()> {
        self.inner.ensure_user(user).await
    }
    async fn upload_media(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
        file_name: &str,
    ) -> HsResult<OwnedMxcUri> {
        self.faults.before("upload_media", None).await?;
        let mxc = self.inner.upload_media(bytes, content_type, file_name).await?;
        lock(&self.faults.uploaded).push(mxc.clone());
        Ok(mxc)
    }
    async fn resolve_alias(&self, alias: &RoomAliasId) -> HsResult<Option<OwnedRoomId>> {
        self.inner.resolve_alias(alias).await
    }
    async fn create_room(&self, room: &NewRoom) -> HsResult<Option<OwnedRoomId>> {
        self.faults.before("create_room", None).await?;
        self.inner.create_room(room).await
    }
    async fn room_state(&self, room: &RoomId) -> HsResult<RoomState> {
        self.faults.before("room_state", Some(room)).await?;
        self.inner.room_state(room).await
    }
    async fn room_state_as_admin(&self, room: &RoomId) -> HsResult<Option<RoomState>> {
        self.inner.room_state_as_admin(room).await
    }
    async fn delete_alias(&self, alias: &RoomAliasId) -> HsResult<()> {
        self.inner.delete_alias(alias).await
    }
    async fn set_state_keyed(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
        content: serde_json::Value,
    ) -> HsResult<()> {
        // "set_state" is a room's own state (name, topic, power levels); links between a space
        // and its rooms (keyed state) are scripted and counted apart.
        let operation = if state_key.is_empty() { "set_state" } else { "set_state_keyed" };
        self.faults.before(operation, Some(room)).await?;
        self.inner.set_state_keyed(room, event_type, state_key, content).await
    }
    async fn invite(&self, room: &RoomId, user: &UserId) -> HsResult<()> {
        self.inner.invite(room, user).await
    }
    async fn join_as(&self, room: &RoomId, user: &UserId) -> HsResult<()> {
        self.inner.join_as(room, user).await
    }
    async fn kick(&self, room: &RoomId, user: &UserId, reason: &str) -> HsResult<()> {
        self.inner.kick(room, user, reason).await
    }
    async fn unban(&self, room: &RoomId, user: &UserId) -> HsResult<()> {
        self.inner.unban(room, user).await
    }
    async fn ban(&self, room: &RoomId, user: &UserId, reason: &str) -> HsResult<()> {
        self.inner.ban(room, user, reason).await
    }
    async fn send_message(
        &self,
        room: &RoomId,
        sender: Option<&UserId>,
        txn_id: &str,
        content: serde_json::Value,
    ) -> HsResult<ruma::OwnedEventId> {
        self.faults.before("send_message", Some(room)).await?;
        self.inner.send_message(room, sender, txn_id, content).await
    }
    async fn mark_history(&self, room: &RoomId, at_ms: i64) -> HsResult<ruma::OwnedEventId> {
        self.inner.mark_history(room, at_ms).await
    }
    async fn purge_history(&self, room: &RoomId, up_to: &ruma::EventId) -> HsResult<String> {
        self.inner.purge_history(room, up_to).await
    }
    async fn purge_history_status(&self, purge_id: &str) -> HsResult<Option<chatrooms::matrix::PurgeStatus>> {
        self.inner.purge_history_status(purge_id).await
    }
    async fn messages(&self, room: &RoomId, from: Option<&str>, limit: u32) -> HsResult<MessagePage> {
        self.inner.messages(room, from, limit).await
    }
    async fn search(
        &self,
        rooms: &[ruma::OwnedRoomId],
        term: &str,
        next: Option<&str>,
        limit: u32,
    ) -> HsResult<MessagePage> {
        self.inner.search(rooms, term, next, limit).await
    }
    async fn event_reports(&self, from: u64, limit: u32) -> HsResult<chatrooms::matrix::EventReportPage> {
        self.inner.event_reports(from, limit).await
    }
    async fn delete_event_report(&self, id: i64) -> HsResult<()> {
        self.inner.delete_event_report(id).await
    }
    async fn event(&self, room: &RoomId, event: &ruma::EventId) -> HsResult<Option<serde_json::Value>> {
        self.inner.event(room, event).await
    }
    async fn redact(
        &self,
        room: &RoomId,
        event: &ruma::EventId,
        txn_id: &str,
        reason: Option<&str>,
        edit_of: Option<&str>,
    ) -> HsResult<()> {
        self.inner.redact(room, event, txn_id, reason, edit_of).await
    }
    async fn leave(&self, room: &RoomId) -> HsResult<()> {
        self.inner.leave(room).await
    }
    async fn room_media(&self, room: &RoomId) -> HsResult<Vec<OwnedMxcUri>> {
        self.inner.room_media(room).await
    }
    async fn delete_media(&self, mxc: &OwnedMxcUri) -> HsResult<()> {
        self.inner.delete_media(mxc).await
    }
    async fn purge_room(&self, room: &RoomId) -> HsResult<()> {
        self.faults.before("purge_room", Some(room)).await?;
        self.inner.purge_room(room).await
    }
    async fn login(&self, user: &UserId, device_id: &str) -> HsResult<Session> {
        self.inner.login(user, device_id).await
    }
    async fn set_password(&self, user: &UserId, password: &Secret) -> HsResult<()> {
        self.inner.set_password(user, password).await
    }
    async fn set_display_name(&self, user: &UserId, name: Option<&str>) -> HsResult<()> {
        self.inner.set_display_name(user, name).await
    }
    async fn set_avatar_url(&self, user: &UserId, avatar: Option<&OwnedMxcUri>) -> HsResult<()> {
        self.inner.set_avatar_url(user, avatar).await
    }
    async fn devices(&self, user: &UserId) -> HsResult<Vec<Device>> {
        self.inner.devices(user).await
    }
    async fn delete_devices(&self, user: &UserId, devices: &[String]) -> HsResult<()> {
        self.inner.delete_devices(user, devices).await
    }
    async fn deactivate(&self, user: &UserId) -> HsResult<()> {
        self.inner.deactivate(user).await
    }
}
