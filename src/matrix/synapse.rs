//! Synapse over HTTP: the client-server API with the application service's token, and
//! Synapse's admin API with an admin user's token for what only an admin may do.

use secrecy::ExposeSecret;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::{Method, RequestBuilder, StatusCode};
use ruma::{
    EventId, MxcUri, OwnedDeviceId, OwnedEventId, OwnedMxcUri, OwnedRoomId, RoomAliasId, RoomId, UserId,
};
use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};

use super::{
    Device, EventReport, EventReportPage, HomeserverError, HsResult, MatrixIds, MessagePage, NewRoom,
    PurgeStatus, RoomState, Session,
};
use crate::{
    config::{MatrixConfig, Secret},
    credentials::hmac_sha256_hex,
    metrics::Metrics,
};

/// Pauses before an idempotent call is sent again after a passing fault.
const REPEAT_PAUSES: [Duration; 3] =
    [Duration::from_millis(50), Duration::from_millis(200), Duration::from_millis(500)];

pub struct Synapse {
    http: reqwest::Client,
    base: String,
    as_token: Secret,
    ids: MatrixIds,
    admin: AdminToken,
    metrics: Arc<Metrics>,
    /// Calls in flight, and room creations among them: a burst queues here instead of piling
    /// onto the homeserver until its calls time out.
    slots: Semaphore,
    create_slots: Semaphore,
}

/// The admin token is fetched on first use, so the service starts while the homeserver is down.
struct AdminToken {
    configured: Option<Secret>,
    shared_secret: Option<Secret>,
    localpart: String,
    password: Secret,
    cached: Mutex<Option<Secret>>,
}

impl Synapse {
    pub fn new(config: &MatrixConfig, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let ids = MatrixIds::new(&config.server_name, &config.user_prefix, &config.bot_localpart)
            .map_err(anyhow::Error::msg)?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let admin_user = format!("@{}:{}", config.admin_localpart, config.server_name);
        Ok(Self {
            http,
            base: config.homeserver_url.clone(),
            as_token: config.as_token.clone(),
            ids,
            admin: AdminToken {
                configured: config.admin_token.clone(),
                shared_secret: config.registration_shared_secret.clone(),
                localpart: config.admin_localpart.clone(),
                // Derived from the shared secret it is registered with, so it outlives a rotation
                // of the credentials secret.
                password: Secret::from(hmac_sha256_hex(
                    config
                        .registration_shared_secret
                        .as_ref()
                        .map(|secret| secret.expose_secret())
                        .unwrap_or_default(),
                    &admin_user,
                )),
                cached: Mutex::new(None),
            },
            metrics,
            slots: Semaphore::new(config.concurrency),
            create_slots: Semaphore::new(config.create_concurrency),
        })
    }

    /// Sends a request. An idempotent one (GET, PUT, DELETE) that met a passing fault — a 5xx,
    /// a dropped connection — is sent again after a short pause, a few times: Synapse answers
    /// `500` when its own database is briefly busy, and no caller should fail for one such answer.
    /// A timeout is not repeated (the caller already waited the whole timeout), nor is a POST
    /// (repeating a room creation would make a second room).
    async fn send(&self, operation: &'static str, request: RequestBuilder) -> HsResult<Value> {
        let mut request = request.build().map_err(|e| transport_error(operation, e))?;
        let idempotent = request.method().is_idempotent();
        let mut pauses = REPEAT_PAUSES.iter();
        loop {
            let copy = if idempotent { request.try_clone() } else { None };
            let (result, passing) = self.send_once(operation, request).await;
            match (result, copy, pauses.next()) {
                (Err(_), Some(copy), Some(pause)) if passing => {
                    tokio::time::sleep(*pause).await;
                    request = copy;
                }
                (result, ..) => return result,
            }
        }
    }

    /// One call, timed by operation and outcome: the class of the answer, not what the caller
    /// makes of it (an unknown alias on lookup is a `client_error` too). The flag says whether a
    /// failure was a passing fault worth one more try.
    async fn send_once(&self, operation: &'static str, request: reqwest::Request) -> (HsResult<Value>, bool) {
        let queued = Instant::now();
        // Never closed, so acquiring cannot fail.
        let _create_slot = match operation {
            "create room" | "create space" => self.create_slots.acquire().await.ok(),
            _ => None,
        };
        let _slot = self.slots.acquire().await.ok();
        let started = Instant::now();
        self.metrics.observe_homeserver_queue(operation, started - queued);
        let (result, passing) = match self.http.execute(request).await {
            Ok(response) => {
                let server_error = response.status().is_server_error();
                (answer(operation, response).await, server_error)
            }
            Err(e) => {
                let passing = !e.is_timeout();
                (Err(transport_error(operation, e)), passing)
            }
        };
        let outcome = match &result {
            Ok(_) => "success",
            Err(e) => e.outcome(),
        };
        let elapsed = started.elapsed();
        let status = result.as_ref().err().and_then(HomeserverError::status);
        tracing::debug!(
            operation,
            outcome,
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            "homeserver call"
        );
        self.metrics.observe_homeserver_call(operation, outcome, elapsed);
        (result, passing)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn as_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(self.as_token.expose_secret())
    }

    async fn admin_token(&self) -> HsResult<Secret> {
        if let Some(token) = &self.admin.configured {
            return Ok(token.clone());
        }
        let mut cached = self.admin.cached.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let token = self.bootstrap_admin().await?;
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Registers the admin user with the shared secret, or logs it in when it exists already.
    /// Its password is derived from the registration shared secret, so nothing needs storing.
    async fn bootstrap_admin(&self) -> HsResult<Secret> {
        const OP: &str = "admin bootstrap";
        let Some(shared_secret) = &self.admin.shared_secret else {
            return Err(HomeserverError::Protocol {
                operation: OP,
                message: "set CHATROOMS_MATRIX_ADMIN_TOKEN or CHATROOMS_MATRIX_REGISTRATION_SHARED_SECRET"
                    .into(),
            });
        };
        let nonce = self.send(OP, self.http.get(self.url("/_synapse/admin/v1/register"))).await?;
        let nonce = nonce["nonce"].as_str().unwrap_or_default().to_owned();
        let user = &self.admin.localpart;
        let password = self.admin.password.expose_secret();
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(shared_secret.expose_secret().as_bytes())
            .map_err(|e| HomeserverError::Protocol { operation: OP, message: e.to_string() })?;
        mac.update(format!("{nonce}\0{user}\0{password}\0admin").as_bytes());
        let body = json!({
            "nonce": nonce, "username": user, "password": password, "admin": true,
            "mac": hex::encode(mac.finalize().into_bytes()),
        });
        match self.send(OP, self.http.post(self.url("/_synapse/admin/v1/register")).json(&body)).await {
            Ok(answer) => token_from(OP, &answer),
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => {
                let login = json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user},
                    "password": password,
                    "initial_device_display_name": "chatrooms service",
                });
                let answer =
                    self.send(OP, self.http.post(self.url("/_matrix/client/v3/login")).json(&login)).await?;
                token_from(OP, &answer)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends an admin request; a revoked admin token is dropped so the next call fetches a new one.
    async fn admin_send(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> HsResult<Value> {
        let attempt = |token: Secret| {
            let mut request =
                self.http.request(method.clone(), self.url(path)).bearer_auth(token.expose_secret());
            if let Some(body) = &body {
                request = request.json(body);
            }
            self.send(op, request)
        };
        let result = attempt(self.admin_token().await?).await;
        match result {
            // A token we logged in for ourselves may have been revoked: log in again, once. A
            // configured token that is refused stays an error for the operator.
            Err(e) if e.errcode() == Some("M_UNKNOWN_TOKEN") && self.admin.configured.is_none() => {
                *self.admin.cached.lock().await = None;
                attempt(self.admin_token().await?).await
            }
            other => other,
        }
    }
}

fn token_from(op: &'static str, answer: &Value) -> HsResult<Secret> {
    answer["access_token"].as_str().map(Secret::from).ok_or_else(|| HomeserverError::Protocol {
        operation: op,
        message: "no access_token in answer".into(),
    })
}

fn enc(segment: &str) -> String {
    urlencoding::encode(segment).into_owned()
}

/// Turns an answer into JSON or a classified error.
async fn answer(operation: &'static str, response: reqwest::Response) -> HsResult<Value> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| transport_error(operation, e))?;
    let body: Value =
        if bytes.is_empty() { json!({}) } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    if status.is_success() {
        return Ok(body);
    }
    Err(matrix_error(operation, status, &body, &bytes))
}

fn matrix_error(operation: &'static str, status: StatusCode, body: &Value, raw: &[u8]) -> HomeserverError {
    let errcode = body["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned();
    let message = body["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned());
    let retry_after = body["retry_after_ms"].as_u64().map(Duration::from_millis);
    HomeserverError::Matrix { operation, status: status.as_u16(), errcode, message, retry_after }
}

/// A call that got no answer. The URL is left out: it names the homeserver's internal address,
/// and these messages reach API responses (`syncError`).
fn transport_error(operation: &'static str, err: reqwest::Error) -> HomeserverError {
    let message = if err.is_timeout() { "timed out".to_owned() } else { error_chain(&err.without_url()) };
    HomeserverError::Transport { operation, message }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn room_id_from(op: &'static str, answer: &Value) -> HsResult<OwnedRoomId> {
    answer["room_id"].as_str().and_then(|id| RoomId::parse(id).ok()).ok_or_else(|| {
        HomeserverError::Protocol { operation: op, message: format!("no valid room_id in {answer}") }
    })
}

#[async_trait]
impl super::Homeserver for Synapse {
    fn ids(&self) -> &MatrixIds {
        &self.ids
    }

    async fn ping(&self) -> HsResult<()> {
        // whoami with our own token: reachable, and our credentials are accepted.
        self.send(
            "check the appservice token",
            self.as_request(Method::GET, "/_matrix/client/v3/account/whoami"),
        )
        .await?;
        // Only a token we have: readiness must not register the admin user. A revoked token we
        // logged in for ourselves is renewed once by admin_send.
        if self.admin.configured.is_some() || self.admin.cached.lock().await.is_some() {
            self.admin_send("check the admin token", Method::GET, "/_matrix/client/v3/account/whoami", None)
                .await?;
        }
        Ok(())
    }

    #[tracing::instrument(name = "homeserver.ping_appservice", skip(self))]
    async fn ping_appservice(&self, appservice_id: &str) -> HsResult<u64> {
        let path = format!("/_matrix/client/v1/appservice/{}/ping", enc(appservice_id));
        // A fresh id each time: the homeserver refuses one it has seen with another body.
        let body = json!({"transaction_id": format!("readyz-{}", hex::encode(rand::random::<[u8; 8]>()))});
        let answer = self.send("ping appservice", self.as_request(Method::POST, &path).json(&body)).await?;
        Ok(answer["duration_ms"].as_u64().unwrap_or_default())
    }

    #[tracing::instrument(name = "homeserver.default_room_version", skip(self))]
    async fn default_room_version(&self) -> HsResult<String> {
        const OP: &str = "capabilities";
        let answer = self.send(OP, self.as_request(Method::GET, "/_matrix/client/v3/capabilities")).await?;
        answer["capabilities"]["m.room_versions"]["default"].as_str().map(str::to_owned).ok_or_else(|| {
            HomeserverError::Protocol { operation: OP, message: "no default room version".into() }
        })
    }

    #[tracing::instrument(name = "homeserver.ensure_user", skip(self), fields(user = %user))]
    async fn ensure_user(&self, user: &UserId) -> HsResult<()> {
        let body = json!({
            "type": "m.login.application_service",
            "username": user.localpart(),
            "inhibit_login": true,
        });
        match self
            .send("register", self.as_request(Method::POST, "/_matrix/client/v3/register").json(&body))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.errcode() == Some("M_USER_IN_USE") => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "homeserver.upload_media", skip(self, bytes), fields(size = bytes.len()))]
    async fn upload_media(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
        file_name: &str,
    ) -> HsResult<OwnedMxcUri> {
        const OP: &str = "upload media";
        let path = format!("/_matrix/media/v3/upload?filename={}", enc(file_name));
        let request = self.as_request(Method::POST, &path).header("content-type", content_type).body(bytes);
        let answer = self.send(OP, request).await?;
        let uri = answer["content_uri"].as_str().unwrap_or_default();
        let mxc: OwnedMxcUri = uri.into();
        if !mxc.is_valid() {
            return Err(HomeserverError::Protocol {
                operation: OP,
                message: format!("invalid content_uri {uri:?}"),
            });
        }
        Ok(mxc)
    }

    async fn resolve_alias(&self, alias: &RoomAliasId) -> HsResult<Option<OwnedRoomId>> {
        const OP: &str = "resolve alias";
        let path = format!("/_matrix/client/v3/directory/room/{}", enc(alias.as_str()));
        match self.send(OP, self.as_request(Method::GET, &path)).await {
            Ok(answer) => room_id_from(OP, &answer).map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "homeserver.create_room", skip(self, room), fields(alias = %room.alias_localpart))]
    async fn create_room(&self, room: &NewRoom) -> HsResult<Option<OwnedRoomId>> {
        let op: &'static str = if room.space { "create space" } else { "create room" };
        let mut initial_state = vec![
            json!({"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}),
            json!({"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "shared"}}),
        ];
        if let Some(avatar) = &room.avatar {
            initial_state.push(json!({"type": "m.room.avatar", "state_key": "", "content": {"url": avatar}}));
        }
        if room.encrypted {
            initial_state.push(json!({"type": "m.room.encryption", "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"}}));
        }
        let mut body = json!({
            "preset": "private_chat",
            "visibility": "private",
            "name": room.name,
            "room_alias_name": room.alias_localpart,
            "invite": room.invite,
            "initial_state": initial_state,
            "power_level_content_override": {"users": room.power_users, "events_default": room.events_default},
        });
        if let Some(topic) = &room.topic {
            body["topic"] = json!(topic);
        }
        if let Some(version) = &room.room_version {
            body["room_version"] = json!(version);
        }
        if room.space {
            body["creation_content"] = json!({"type": "m.space"});
        }
        match self.send(op, self.as_request(Method::POST, "/_matrix/client/v3/createRoom").json(&body)).await
        {
            Ok(answer) => room_id_from(op, &answer).map(Some),
            Err(e) if e.errcode() == Some("M_ROOM_IN_USE") => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "homeserver.room_state", skip(self), fields(room = %room))]
    async fn room_state(&self, room: &RoomId) -> HsResult<RoomState> {
        const OP: &str = "read room state";
        let path = format!("/_matrix/client/v3/rooms/{}/state", enc(room.as_str()));
        let answer = self.send(OP, self.as_request(Method::GET, &path)).await?;
        let events = answer.as_array().ok_or_else(|| HomeserverError::Protocol {
            operation: OP,
            message: "state is not an array".into(),
        })?;
        Ok(RoomState::from_events(events))
    }

    #[tracing::instrument(name = "homeserver.room_state_as_admin", skip(self), fields(room = %room))]
    async fn room_state_as_admin(&self, room: &RoomId) -> HsResult<Option<RoomState>> {
        const OP: &str = "read room state (admin)";
        let path = format!("/_synapse/admin/v1/rooms/{}/state", enc(room.as_str()));
        let answer = match self.admin_send(OP, Method::GET, &path, None).await {
            Ok(answer) => answer,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        let events = answer["state"].as_array().ok_or_else(|| HomeserverError::Protocol {
            operation: OP,
            message: "state is not an array".into(),
        })?;
        Ok(Some(RoomState::from_events(events)))
    }

    #[tracing::instrument(name = "homeserver.delete_alias", skip(self), fields(alias = %alias))]
    async fn delete_alias(&self, alias: &RoomAliasId) -> HsResult<()> {
        let path = format!("/_matrix/client/v3/directory/room/{}", enc(alias.as_str()));
        // As the bot: the alias is in our exclusive namespace, which even a server admin may not edit.
        match self.send("delete alias", self.as_request(Method::DELETE, &path)).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "homeserver.set_state", skip(self, content), fields(room = %room))]
    async fn set_state_keyed(
        &self,
        room: &RoomId,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) -> HsResult<()> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room.as_str()),
            enc(event_type),
            enc(state_key)
        );
        self.send("set room state", self.as_request(Method::PUT, &path).json(&content)).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.invite", skip(self), fields(room = %room, user = %user))]
    async fn invite(&self, room: &RoomId, user: &UserId) -> HsResult<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", enc(room.as_str()));
        self.send("invite", self.as_request(Method::POST, &path).json(&json!({"user_id": user})))
            .await
            .map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.join", skip(self), fields(room = %room, user = %user))]
    async fn join_as(&self, room: &RoomId, user: &UserId) -> HsResult<()> {
        let path =
            format!("/_matrix/client/v3/rooms/{}/join?user_id={}", enc(room.as_str()), enc(user.as_str()));
        self.send("join", self.as_request(Method::POST, &path).json(&json!({}))).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.kick", skip(self), fields(room = %room, user = %user))]
    async fn kick(&self, room: &RoomId, user: &UserId, reason: &str) -> HsResult<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/kick", enc(room.as_str()));
        let body = json!({"user_id": user, "reason": reason});
        self.send("kick", self.as_request(Method::POST, &path).json(&body)).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.unban", skip(self), fields(room = %room, user = %user))]
    async fn unban(&self, room: &RoomId, user: &UserId) -> HsResult<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/unban", enc(room.as_str()));
        self.send("unban", self.as_request(Method::POST, &path).json(&json!({"user_id": user})))
            .await
            .map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.send_message", skip(self, content), fields(room = %room))]
    async fn send_message(
        &self,
        room: &RoomId,
        sender: Option<&UserId>,
        txn_id: &str,
        content: Value,
    ) -> HsResult<OwnedEventId> {
        const OP: &str = "send message";
        let mut path =
            format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{}", enc(room.as_str()), enc(txn_id));
        if let Some(sender) = sender {
            path.push_str(&format!("?user_id={}", enc(sender.as_str())));
        }
        let answer = self.send(OP, self.as_request(Method::PUT, &path).json(&content)).await?;
        answer["event_id"].as_str().and_then(|id| EventId::parse(id).ok()).ok_or_else(|| {
            HomeserverError::Protocol { operation: OP, message: format!("no valid event_id in {answer}") }
        })
    }

    #[tracing::instrument(name = "homeserver.messages", skip(self), fields(room = %room))]
    async fn messages(&self, room: &RoomId, from: Option<&str>, limit: u32) -> HsResult<MessagePage> {
        let filter = enc(r#"{"types":["m.room.message"]}"#);
        let mut path = format!(
            "/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}&filter={filter}",
            enc(room.as_str())
        );
        if let Some(from) = from {
            path.push_str(&format!("&from={}", enc(from)));
        }
        let answer = self.send("read messages", self.as_request(Method::GET, &path)).await?;
        let events = answer["chunk"].as_array().cloned().unwrap_or_default();
        // No `end`: the room's beginning. A page may come back empty before that.
        let next = answer["end"].as_str().map(str::to_owned);
        Ok(MessagePage { events, next })
    }

    #[tracing::instrument(name = "homeserver.search", skip(self, rooms, term), fields(rooms = rooms.len()))]
    async fn search(
        &self,
        rooms: &[OwnedRoomId],
        term: &str,
        next: Option<&str>,
        limit: u32,
    ) -> HsResult<MessagePage> {
        let mut path = "/_matrix/client/v3/search".to_owned();
        if let Some(next) = next {
            path.push_str(&format!("?next_batch={}", enc(next)));
        }
        let body = json!({"search_categories": {"room_events": {
            "search_term": term,
            "keys": ["content.body"],
            "order_by": "recent",
            "filter": {"rooms": rooms, "types": ["m.room.message"], "limit": limit},
        }}});
        let answer = self.send("search", self.as_request(Method::POST, &path).json(&body)).await?;
        let found = &answer["search_categories"]["room_events"];
        let events = found["results"]
            .as_array()
            .map(|results| results.iter().map(|hit| hit["result"].clone()).collect())
            .unwrap_or_default();
        Ok(MessagePage { events, next: found["next_batch"].as_str().map(str::to_owned) })
    }

    #[tracing::instrument(name = "homeserver.event", skip(self), fields(room = %room, event = %event))]
    async fn event(&self, room: &RoomId, event: &EventId) -> HsResult<Option<Value>> {
        let path = format!("/_matrix/client/v3/rooms/{}/event/{}", enc(room.as_str()), enc(event.as_str()));
        match self.send("read event", self.as_request(Method::GET, &path)).await {
            Ok(answer) => Ok(Some(answer)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "homeserver.redact", skip(self), fields(room = %room, event = %event))]
    async fn redact(
        &self,
        room: &RoomId,
        event: &EventId,
        txn_id: &str,
        reason: Option<&str>,
        edit_of: Option<&str>,
    ) -> HsResult<()> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
            enc(room.as_str()),
            enc(event.as_str()),
            enc(txn_id)
        );
        let mut body = json!({});
        if let Some(reason) = reason {
            body["reason"] = json!(reason);
        }
        if let Some(original) = edit_of {
            body[super::REDACTED_EDIT_OF] = json!(original);
        }
        self.send("redact", self.as_request(Method::PUT, &path).json(&body)).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.mark_history", skip(self), fields(room = %room))]
    async fn mark_history(&self, room: &RoomId, at_ms: i64) -> HsResult<OwnedEventId> {
        const OP: &str = "mark history";
        let path =
            format!("/_matrix/client/v3/rooms/{}/state/org.chatrooms.history_truncated/", enc(room.as_str()));
        let answer = self.send(OP, self.as_request(Method::PUT, &path).json(&json!({"at": at_ms}))).await?;
        answer["event_id"].as_str().and_then(|id| EventId::parse(id).ok()).ok_or_else(|| {
            HomeserverError::Protocol { operation: OP, message: format!("no valid event_id in {answer}") }
        })
    }

    #[tracing::instrument(name = "homeserver.purge_history", skip(self), fields(room = %room))]
    async fn purge_history(&self, room: &RoomId, up_to: &EventId) -> HsResult<String> {
        const OP: &str = "purge history";
        let path = format!("/_synapse/admin/v1/purge_history/{}/{}", enc(room.as_str()), enc(up_to.as_str()));
        // Our own users' messages are local events: kept unless asked.
        let body = json!({"delete_local_events": true});
        let answer = self.admin_send(OP, Method::POST, &path, Some(body)).await?;
        answer["purge_id"].as_str().map(str::to_owned).ok_or_else(|| HomeserverError::Protocol {
            operation: OP,
            message: format!("no purge_id in {answer}"),
        })
    }

    async fn purge_history_status(&self, purge_id: &str) -> HsResult<Option<PurgeStatus>> {
        let path = format!("/_synapse/admin/v1/purge_history_status/{}", enc(purge_id));
        let answer = match self.admin_send("purge history status", Method::GET, &path, None).await {
            Ok(answer) => answer,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(match answer["status"].as_str() {
            Some("complete") => PurgeStatus::Complete,
            Some("failed") => PurgeStatus::Failed,
            _ => PurgeStatus::Active,
        }))
    }

    #[tracing::instrument(name = "homeserver.ban", skip(self), fields(room = %room, user = %user))]
    async fn ban(&self, room: &RoomId, user: &UserId, reason: &str) -> HsResult<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/ban", enc(room.as_str()));
        let body = json!({"user_id": user, "reason": reason});
        self.send("ban", self.as_request(Method::POST, &path).json(&body)).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.leave", skip(self), fields(room = %room))]
    async fn leave(&self, room: &RoomId) -> HsResult<()> {
        let path = format!("/_matrix/client/v3/rooms/{}/leave", enc(room.as_str()));
        self.send("leave", self.as_request(Method::POST, &path).json(&json!({}))).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.room_media", skip(self), fields(room = %room))]
    async fn room_media(&self, room: &RoomId) -> HsResult<Vec<OwnedMxcUri>> {
        let path = format!("/_synapse/admin/v1/room/{}/media", enc(room.as_str()));
        let answer = match self.admin_send("list room media", Method::GET, &path, None).await {
            Ok(answer) => answer,
            Err(e) if e.status() == Some(404) => return Ok(Vec::new()), // Purged already.
            Err(e) => return Err(e),
        };
        Ok(answer["local"]
            .as_array()
            .map(|uris| uris.iter().filter_map(Value::as_str).map(OwnedMxcUri::from).collect())
            .unwrap_or_default())
    }

    #[tracing::instrument(name = "homeserver.delete_media", skip(self), fields(mxc = %mxc))]
    async fn delete_media(&self, mxc: &OwnedMxcUri) -> HsResult<()> {
        let Ok((server, media_id)) = <&MxcUri>::from(mxc.as_str()).parts() else {
            return Ok(()); // Not a media id we could have uploaded: nothing to delete.
        };
        if server.as_str() != self.ids.server_name() {
            return Ok(()); // Remote media is only cached here; its origin owns it.
        }
        let path = format!("/_synapse/admin/v1/media/{}/{}", enc(server.as_str()), enc(media_id));
        match self.admin_send("delete media", Method::DELETE, &path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "homeserver.purge_room", skip(self), fields(room = %room))]
    async fn purge_room(&self, room: &RoomId) -> HsResult<()> {
        const OP: &str = "purge room";
        let path = format!("/_synapse/admin/v2/rooms/{}", enc(room.as_str()));
        let answer = match self.admin_send(OP, Method::DELETE, &path, Some(json!({"purge": true}))).await {
            Ok(answer) => answer,
            Err(e) if e.status() == Some(404) => return Ok(()),
            Err(e) => return Err(e),
        };
        let delete_id = answer["delete_id"]
            .as_str()
            .ok_or_else(|| HomeserverError::Protocol {
                operation: OP,
                message: format!("no delete_id in {answer}"),
            })?
            .to_owned();
        let status_path = format!("/_synapse/admin/v2/rooms/delete_status/{}", enc(&delete_id));
        let mut delay = Duration::from_millis(50);
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            if Instant::now() > deadline {
                return Err(HomeserverError::Transport {
                    operation: OP,
                    message: format!("purge {delete_id} still running after 10 minutes"),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            let status = self.admin_send(OP, Method::GET, &status_path, None).await?;
            match status["status"].as_str() {
                Some("complete") => return Ok(()),
                Some("failed") => {
                    return Err(HomeserverError::Matrix {
                        operation: OP,
                        status: 500,
                        errcode: "M_UNKNOWN".into(),
                        message: format!("purge failed: {}", status["error"]),
                        retry_after: None,
                    })
                }
                _ => continue,
            }
        }
    }

    #[tracing::instrument(name = "homeserver.login", skip(self), fields(user = %user))]
    async fn login(&self, user: &UserId, device_id: &str) -> HsResult<Session> {
        const OP: &str = "login";
        let body = json!({
            "type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": user},
            "device_id": device_id,
            "refresh_token": true,
        });
        let answer =
            self.send(OP, self.as_request(Method::POST, "/_matrix/client/v3/login").json(&body)).await?;
        let protocol =
            |message: &str| HomeserverError::Protocol { operation: OP, message: message.to_owned() };
        let well_known = match answer.get("well_known") {
            Some(known) if known.is_object() => known.clone(),
            _ => self
                .send("well-known", self.http.get(self.url("/.well-known/matrix/client")))
                .await
                .unwrap_or_else(|_| json!({})),
        };
        Ok(Session {
            user_id: answer["user_id"]
                .as_str()
                .and_then(|id| UserId::parse(id).ok())
                .ok_or_else(|| protocol("no user_id"))?,
            device_id: answer["device_id"]
                .as_str()
                .map(OwnedDeviceId::from)
                .ok_or_else(|| protocol("no device_id"))?,
            access_token: token_from(OP, &answer)?,
            refresh_token: answer["refresh_token"].as_str().map(Secret::from),
            expires_in_ms: answer["expires_in_ms"].as_u64(),
            well_known,
        })
    }

    #[tracing::instrument(name = "homeserver.set_password", skip(self, password), fields(user = %user))]
    async fn set_password(&self, user: &UserId, password: &Secret) -> HsResult<()> {
        let path = format!("/_synapse/admin/v2/users/{}", enc(user.as_str()));
        // Without logout_devices=false, Synapse would end every session the user has.
        let body = json!({"password": password.expose_secret(), "logout_devices": false});
        self.admin_send("set password", Method::PUT, &path, Some(body)).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.set_display_name", skip(self), fields(user = %user))]
    async fn set_display_name(&self, user: &UserId, name: Option<&str>) -> HsResult<()> {
        let path = format!(
            "/_matrix/client/v3/profile/{}/displayname?user_id={}",
            enc(user.as_str()),
            enc(user.as_str())
        );
        let body = json!({"displayname": name.unwrap_or_default()});
        self.send("set display name", self.as_request(Method::PUT, &path).json(&body)).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.set_avatar_url", skip(self), fields(user = %user))]
    async fn set_avatar_url(&self, user: &UserId, avatar: Option<&OwnedMxcUri>) -> HsResult<()> {
        let path = format!(
            "/_matrix/client/v3/profile/{}/avatar_url?user_id={}",
            enc(user.as_str()),
            enc(user.as_str())
        );
        let body = json!({"avatar_url": avatar.map(|a| a.as_str()).unwrap_or_default()});
        self.send("set avatar", self.as_request(Method::PUT, &path).json(&body)).await.map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.devices", skip(self), fields(user = %user))]
    async fn devices(&self, user: &UserId) -> HsResult<Vec<Device>> {
        let path = format!("/_synapse/admin/v2/users/{}/devices", enc(user.as_str()));
        let answer = self.admin_send("list devices", Method::GET, &path, None).await?;
        let devices = answer["devices"].as_array().cloned().unwrap_or_default();
        Ok(devices
            .iter()
            .filter_map(|d| {
                Some(Device {
                    device_id: d["device_id"].as_str()?.to_owned(),
                    display_name: d["display_name"].as_str().map(str::to_owned),
                    last_seen_ts: d["last_seen_ts"].as_i64(),
                    last_seen_ip: d["last_seen_ip"].as_str().map(str::to_owned),
                })
            })
            .collect())
    }

    #[tracing::instrument(name = "homeserver.delete_devices", skip(self), fields(user = %user, count = devices.len()))]
    async fn delete_devices(&self, user: &UserId, devices: &[String]) -> HsResult<()> {
        let path = format!("/_synapse/admin/v2/users/{}/delete_devices", enc(user.as_str()));
        self.admin_send("delete devices", Method::POST, &path, Some(json!({"devices": devices})))
            .await
            .map(|_| ())
    }

    #[tracing::instrument(name = "homeserver.event_reports", skip(self))]
    async fn event_reports(&self, from: u64, limit: u32) -> HsResult<EventReportPage> {
        // Newest first (`dir=b`): a reader stops at the first report it has seen.
        let path = format!("/_synapse/admin/v1/event_reports?dir=b&from={from}&limit={limit}");
        let answer = self.admin_send("list event reports", Method::GET, &path, None).await?;
        let text = |report: &Value, key: &str| report[key].as_str().map(str::to_owned);
        let reports = answer["event_reports"]
            .as_array()
            .map(|reports| {
                reports
                    .iter()
                    .filter_map(|report| {
                        Some(EventReport {
                            id: report["id"].as_i64()?,
                            room_id: text(report, "room_id")?,
                            event_id: text(report, "event_id")?,
                            reporter: text(report, "user_id")?,
                            sender: text(report, "sender"),
                            reason: text(report, "reason"),
                            received_ts: report["received_ts"].as_i64().unwrap_or_default(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(EventReportPage { reports, next: answer["next_token"].as_u64() })
    }

    #[tracing::instrument(name = "homeserver.delete_event_report", skip(self))]
    async fn delete_event_report(&self, id: i64) -> HsResult<()> {
        let path = format!("/_synapse/admin/v1/event_reports/{id}");
        match self.admin_send("delete event report", Method::DELETE, &path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(name = "homeserver.deactivate", skip(self), fields(user = %user))]
    async fn deactivate(&self, user: &UserId) -> HsResult<()> {
        let path = format!("/_synapse/admin/v1/deactivate/{}", enc(user.as_str()));
        match self.admin_send("deactivate", Method::POST, &path, Some(json!({"erase": false}))).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()), // Never existed: nothing to deactivate.
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::Homeserver;

    /// A stand-in homeserver that answers `500` to the first `failures` calls, then `200`, and
    /// counts the calls by method.
    async fn flaky_homeserver(failures: usize) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let calls = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = calls.clone();
        let app = axum::Router::new().fallback(move |method: Method| {
            let seen = seen.clone();
            async move {
                let mut calls = seen.lock().unwrap();
                calls.push(method.to_string());
                if calls.len() <= failures {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        r#"{"errcode":"M_UNKNOWN","error":"Internal server error"}"#,
                    )
                } else {
                    (StatusCode::OK, r#"{"room_id":"!a:localhost"}"#)
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, calls)
    }

    fn synapse_at(url: &str) -> Synapse {
        let config = MatrixConfig {
            homeserver_url: url.to_owned(),
            server_name: "localhost".into(),
            as_token: Secret::from("as".to_owned()),
            hs_token: None,
            bot_localpart: "chatrooms".into(),
            appservice_id: "chatrooms".into(),
            user_prefix: "app_".into(),
            admin_token: Some(Secret::from("admin".to_owned())),
            registration_shared_secret: None,
            admin_localpart: "chatrooms-admin".into(),
            room_version: None,
            request_timeout: Duration::from_secs(5),
            concurrency: 4,
            create_concurrency: 1,
        };
        Synapse::new(&config, Arc::new(Metrics::default())).unwrap()
    }

    #[tokio::test]
    async fn an_idempotent_call_is_repeated_after_a_passing_server_error() {
        let (url, calls) = flaky_homeserver(2).await;
        let synapse = synapse_at(&url);
        let user = UserId::parse("@app_1:localhost").unwrap();
        synapse.set_avatar_url(&user, None).await.expect("the third try succeeds");
        assert_eq!(*calls.lock().unwrap(), ["PUT", "PUT", "PUT"]);
    }

    #[tokio::test]
    async fn an_idempotent_call_gives_up_after_its_repeats() {
        let (url, calls) = flaky_homeserver(usize::MAX).await;
        let synapse = synapse_at(&url);
        let user = UserId::parse("@app_1:localhost").unwrap();
        let err = synapse.set_avatar_url(&user, None).await.expect_err("always 500");
        assert_eq!(err.status(), Some(500));
        assert_eq!(calls.lock().unwrap().len(), 1 + REPEAT_PAUSES.len());
    }

    #[tokio::test]
    async fn a_room_creation_is_never_repeated() {
        let (url, calls) = flaky_homeserver(1).await;
        let synapse = synapse_at(&url);
        let room = NewRoom {
            alias_localpart: "r".into(),
            name: "r".into(),
            avatar: None,
            topic: None,
            events_default: 0,
            room_version: None,
            power_users: Default::default(),
            invite: vec![],
            space: false,
            encrypted: false,
        };
        let err = synapse.create_room(&room).await.expect_err("a second room must not be made");
        assert_eq!(err.status(), Some(500));
        assert_eq!(*calls.lock().unwrap(), ["POST"]);
    }

    #[test]
    fn homeserver_errors_keep_errcode_and_retry_hint() {
        let body =
            json!({"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 1500});
        let err = matrix_error("join", StatusCode::TOO_MANY_REQUESTS, &body, b"");
        assert_eq!(err.errcode(), Some("M_LIMIT_EXCEEDED"));
        assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
        assert!(err.is_transient());
        let forbidden = matrix_error("join", StatusCode::FORBIDDEN, &json!({"errcode": "M_FORBIDDEN"}), b"");
        assert!(!forbidden.is_transient());
        let html = matrix_error("join", StatusCode::BAD_GATEWAY, &Value::Null, b"<html>bad gateway</html>");
        assert!(html.is_transient());
        assert!(html.to_string().contains("bad gateway"), "{html}");
    }
}
