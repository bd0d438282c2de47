//! Test harness: one real Synapse per test process (started from the project's own script on a
//! free port), and per test a fresh database (SQLite, or Postgres when CHATROOMS_TEST_DATABASE=postgres)
//! and a service started exactly as `main` starts it.

use std::{
    collections::{BTreeMap, HashMap},
    net::TcpListener,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use chatrooms::{clock::ShiftedClock, Application, Config};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::{sync::oneshot, task::JoinHandle};

pub const API_TOKEN: &str = "test-api-token";
pub const JWT_SECRET: &str = "test-jwt-secret-with-enough-length";

/// The Synapse every test of this process talks to.
pub struct Homeserver {
    pub url: String,
    pub server_name: String,
    pub env: HashMap<String, String>,
}

static HOMESERVER: OnceLock<Homeserver> = OnceLock::new();

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

pub fn homeserver() -> &'static Homeserver {
    HOMESERVER.get_or_init(start_homeserver)
}

fn start_homeserver() -> Homeserver {
    let root = repo_root();
    let script = root.join("scripts/synapse.sh");
    let base = std::env::temp_dir().join(format!("chatrooms-test-synapse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let port = free_port();
    let env = configure_synapse(&base, port, fan_out_url());
    let log = std::fs::File::create(base.join("synapse.log")).expect("synapse log file");
    // The process owns the child for its whole life: with PDEATHSIG, Synapse dies with it.
    let _ = spawn_synapse(base.join("homeserver.yaml"), log);
    let url = format!("http://127.0.0.1:{port}");
    let status = Command::new(&script).args(["wait", &url]).status().expect("waiting for Synapse");
    assert!(status.success(), "Synapse did not start; see {}", base.join("synapse.log").display());
    Homeserver { url, server_name: env["CHATROOMS_MATRIX_SERVER_NAME"].clone(), env }
}

/// Writes a Synapse config for `dir` and `port` with the project's script; returns its env file.
/// The services of this process that hear the homeserver: one registration has one `url`, so
/// the tests' Synapse pushes to this fan-out, which forwards every transaction to each running
/// service (each ignores the rooms it does not manage).
static LISTENERS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The fan-out's address, started once per process on a thread of its own (test runtimes
/// come and go).
fn fan_out_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the fan-out");
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let http = reqwest::Client::new();
                let forward = move |method: axum::http::Method,
                                    uri: axum::http::Uri,
                                    headers: axum::http::HeaderMap,
                                    body: axum::body::Bytes| {
                    let http = http.clone();
                    async move {
                        let targets = LISTENERS.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        for base in targets {
                            let mut request =
                                http.request(method.clone(), format!("{base}{uri}")).body(body.clone());
                            for name in [axum::http::header::AUTHORIZATION, axum::http::header::CONTENT_TYPE]
                            {
                                if let Some(value) = headers.get(&name) {
                                    request = request.header(name, value);
                                }
                            }
                            // A service that stopped meanwhile is simply not told.
                            let _ = request.timeout(Duration::from_secs(10)).send().await;
                        }
                        axum::Json(json!({}))
                    }
                };
                let router = axum::Router::new().fallback(forward);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, router).await.unwrap();
            });
        });
        url
    })
}

fn configure_synapse(dir: &std::path::Path, port: u16, pushes_to: &str) -> HashMap<String, String> {
    let status = Command::new(repo_root().join("scripts/synapse.sh"))
        .args(["config", dir.to_str().unwrap(), &port.to_string()])
        .env("SYNAPSE_APPSERVICE_URL", pushes_to)
        // Cheap password hashing keeps the tests fast; the benchmark asks for Synapse's default.
        .env("SYNAPSE_BCRYPT_ROUNDS", std::env::var("SYNAPSE_BCRYPT_ROUNDS").unwrap_or_else(|_| "4".into()))
        .status()
        .expect("running scripts/synapse.sh config");
    assert!(status.success(), "scripts/synapse.sh config failed");
    std::fs::read_to_string(dir.join("env"))
        .expect("synapse env file")
        .lines()
        .filter_map(|line| line.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// Starts Synapse from `.venv` in a thread that owns and reaps the child: with PDEATHSIG tied
/// to that thread, Synapse dies with it (and with the test process, however it ends).
fn spawn_synapse(config_path: PathBuf, log: std::fs::File) -> (libc::pid_t, std::thread::JoinHandle<()>) {
    let python =
        std::env::var("CHATROOMS_VENV").map(PathBuf::from).unwrap_or_else(|_| repo_root().join(".venv"));
    let python = python.join("bin/python");
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let reaper = std::thread::spawn(move || {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(python);
        command
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config_path)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("starting Synapse");
        let _ = pid_tx.send(child.id() as libc::pid_t);
        let _ = child.wait();
    });
    (pid_rx.recv().expect("Synapse started"), reaper)
}

/// Everything the service logs at debug level and above, kept so tests can search it.
pub static CAPTURED_LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED_LOGS.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Prints logs the test runner shows for failing tests, and captures the service's own (and
/// its HTTP layer's) at debug level for the tests that check what never gets logged.
fn init_logging() {
    use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt, Layer};
    let printed =
        tracing_subscriber::fmt::layer().with_test_writer().with_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into()),
        ));
    let captured =
        tracing_subscriber::fmt::layer().with_ansi(false).with_writer(|| CaptureWriter).with_filter(
            Targets::new()
                .with_target("chatrooms", tracing::Level::TRACE)
                .with_target("tower_http", tracing::Level::TRACE),
        );
    let _ = tracing_subscriber::registry().with(printed).with(captured).try_init();
}

pub fn captured_logs() -> String {
    String::from_utf8_lossy(&CAPTURED_LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// A fresh database for one test.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn fresh_database() -> TestDatabase {
    if std::env::var("CHATROOMS_TEST_DATABASE").as_deref() == Ok("postgres") {
        let admin_url = std::env::var("CHATROOMS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        sqlx::any::install_default_drivers();
        let name = format!("chatrooms_test_{:016x}", rand::random::<u64>());
        let mut conn =
            <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url).await.expect("Postgres");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("CREATE DATABASE");
        let (prefix, _) = admin_url.rsplit_once('/').expect("a database in the Postgres URL");
        TestDatabase { url: format!("{prefix}/{name}"), _dir: None }
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("nested/chatrooms.db").display());
        TestDatabase { url, _dir: Some(dir) }
    }
}

pub fn base_env(hs: &Homeserver, database_url: &str) -> HashMap<String, String> {
    let mut vars = hs.env.clone();
    vars.extend([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("CHATROOMS_BIND_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("CHATROOMS_API_TOKENS".to_owned(), format!("other-token,{API_TOKEN}")),
        ("CHATROOMS_JWT_SECRET".to_owned(), JWT_SECRET.to_owned()),
        ("CHATROOMS_CREDENTIALS_SECRET".to_owned(), "test-credentials-secret".to_owned()),
        ("CHATROOMS_WORKER_POLL_MS".to_owned(), "100".to_owned()),
        ("CHATROOMS_WEBHOOKS_ALLOW_PRIVATE".to_owned(), "true".to_owned()),
        ("CHATROOMS_WEBHOOK_POLL_MS".to_owned(), "50".to_owned()),
        ("CHATROOMS_SCHEDULER_INTERVAL_MS".to_owned(), "100".to_owned()),
        ("CHATROOMS_RETRY_BASE_MS".to_owned(), "100".to_owned()),
        ("CHATROOMS_RETRY_CAP_MS".to_owned(), "1000".to_owned()),
        // Longer than the default: the parallel suite slows Synapse down.
        ("CHATROOMS_SYNC_WAIT_MS".to_owned(), "30000".to_owned()),
    ]);
    vars
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: ShiftedClock,
    pub hs: &'static Homeserver,
    /// Keeps the database (and a SQLite file's directory) alive as long as the app.
    database: Arc<TestDatabase>,
    pub state: chatrooms::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let database = Arc::new(fresh_database().await);
        Self::spawn_on(database, customize).await
    }

    /// Starts a service on an existing database (a restart, or a second instance).
    pub async fn spawn_on(
        database: Arc<TestDatabase>,
        customize: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        Self::spawn_wrapped(database, customize, |synapse| synapse).await
    }

    /// Starts a service whose homeserver calls go through `wrap` (fault injection).
    pub async fn spawn_wrapped(
        database: Arc<TestDatabase>,
        customize: impl FnOnce(&mut HashMap<String, String>),
        wrap: impl FnOnce(Arc<dyn chatrooms::matrix::Homeserver>) -> Arc<dyn chatrooms::matrix::Homeserver>,
    ) -> Self {
        init_logging();
        let hs = homeserver();
        let mut vars = base_env(hs, &database.url);
        customize(&mut vars);
        let config = Config::from_map(&vars).expect("test configuration");
        let clock = ShiftedClock::default();
        let app =
            Application::build_with(config, Arc::new(clock.clone()), wrap).await.expect("building the app");
        let base = format!("http://{}", app.local_addr());
        LISTENERS.lock().unwrap_or_else(|p| p.into_inner()).push(base.clone());
        let state = app.state().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        TestApp { base, http, clock, hs, database, state, shutdown: Some(shutdown), server: Some(server) }
    }

    /// Graceful shutdown, as SIGTERM does.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
    }

    /// The database this instance runs on, to start another instance on it.
    pub fn database(&self) -> Arc<TestDatabase> {
        self.database.clone()
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path)).header("API-TOKEN", API_TOKEN)
    }

    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    pub fn as_user(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path)).header("Personal-Access-Token", token)
    }

    /// Sends and returns status and JSON body (Null when empty).
    pub async fn send(&self, request: RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let bytes = response.bytes().await.expect("body read");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, body)
    }

    pub async fn create_room(&self, body: Value) -> Value {
        let (status, room) = self.send(self.request(Method::POST, "/chatrooms").json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "create answered {room}");
        room
    }

    /// Waits until the room's organization has its space and no sync job of the room is left
    /// (the space's sync queues the room's, to link it): a test that changes the room's state
    /// behind the service's back must not race that job.
    pub async fn settled(&self, room: &Value) {
        let id = room["id"].as_i64().expect("a room id");
        let org = room["organizationID"].as_i64().expect("an organization id");
        eventually(
            "the organization's space is made and the room linked",
            Duration::from_secs(30),
            || async {
                self.state.reconciler.wake_worker();
                let (_, organization) =
                    self.send(self.request(Method::GET, &format!("/organizations/{org}"))).await;
                let room_jobs: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM sync_jobs WHERE chatroom_id = $1")
                        .bind(id)
                        .fetch_one(self.state.store.pool())
                        .await
                        .unwrap();
                organization["syncStatus"] == "synced"
                    && organization["matrixSpaceID"].is_string()
                    && room_jobs == 0
            },
        )
        .await;
    }

    pub async fn list_total(&self, org: i64) -> i64 {
        let (status, page) =
            self.send(self.request(Method::GET, &format!("/chatrooms?organization_id={org}&all=true"))).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["total"].as_i64().unwrap()
    }

    pub fn user_id(&self, app_user: i64) -> String {
        format!("@app_{}:{}", app_user, self.hs.server_name)
    }

    pub fn matrix(&self) -> MatrixView {
        MatrixView { http: self.http.clone(), hs: self.hs }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        LISTENERS.lock().unwrap_or_else(|p| p.into_inner()).retain(|base| base != &self.base);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Reads the homeserver directly, as a Matrix client (the bot, a member of every room) or the
/// homeserver's admin would.
pub struct MatrixView {
    http: reqwest::Client,
    hs: &'static Homeserver,
}

/// The room as a client sees it.
#[derive(Debug)]
pub struct SeenRoom {
    pub creator: String,
    pub room_version: String,
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub topic: Option<String>,
    pub power_users: BTreeMap<String, i64>,
    /// `events_default` of the power levels (0 when absent).
    pub events_default: i64,
    /// The whole `m.room.power_levels` content.
    pub power_levels: Value,
    pub joined: Vec<String>,
    /// Every user's membership (`join`, `invite`, `leave`, `ban`...).
    pub memberships: BTreeMap<String, String>,
    pub join_rule: Option<String>,
    pub guest_access: Option<String>,
}

impl MatrixView {
    pub fn new(hs: &'static Homeserver) -> Self {
        MatrixView { http: reqwest::Client::new(), hs }
    }

    /// A GET on Synapse's admin API.
    pub async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        let token = self.admin_token().await;
        self.call(Method::GET, path, &token, None).await
    }

    pub fn as_token(&self) -> &str {
        &self.hs.env["CHATROOMS_MATRIX_AS_TOKEN"]
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{}", self.hs.url, path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("homeserver request");
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn room(&self, room_id: &str) -> SeenRoom {
        let path = format!("/_matrix/client/v3/rooms/{}/state", urlencoding::encode(room_id));
        let (status, events) = self.call(Method::GET, &path, self.as_token(), None).await;
        assert_eq!(status, StatusCode::OK, "room state: {events}");
        let events = events.as_array().expect("state array").clone();
        let find = |ty: &str| events.iter().find(|e| e["type"] == ty).map(|e| e["content"].clone());
        let create = events.iter().find(|e| e["type"] == "m.room.create").expect("create event");
        let levels = find("m.room.power_levels").unwrap_or_default();
        let power_users = levels["users"].clone();
        let mut joined: Vec<String> = events
            .iter()
            .filter(|e| e["type"] == "m.room.member" && e["content"]["membership"] == "join")
            .map(|e| e["state_key"].as_str().unwrap().to_owned())
            .collect();
        joined.sort();
        let memberships = events
            .iter()
            .filter(|e| e["type"] == "m.room.member")
            .map(|e| {
                let membership = e["content"]["membership"].as_str().unwrap_or_default().to_owned();
                (e["state_key"].as_str().unwrap().to_owned(), membership)
            })
            .collect();
        SeenRoom {
            memberships,
            creator: create["sender"].as_str().unwrap().to_owned(),
            room_version: create["content"]["room_version"].as_str().unwrap_or("1").to_owned(),
            name: find("m.room.name").and_then(|c| c["name"].as_str().map(str::to_owned)),
            avatar: find("m.room.avatar").and_then(|c| c["url"].as_str().map(str::to_owned)),
            topic: find("m.room.topic")
                .and_then(|c| c["topic"].as_str().filter(|t| !t.is_empty()).map(str::to_owned)),
            power_users: serde_json::from_value(power_users).unwrap_or_default(),
            events_default: levels["events_default"].as_i64().unwrap_or(0),
            power_levels: levels.clone(),
            joined,
            join_rule: find("m.room.join_rules").and_then(|c| c["join_rule"].as_str().map(str::to_owned)),
            guest_access: find("m.room.guest_access")
                .and_then(|c| c["guest_access"].as_str().map(str::to_owned)),
        }
    }

    /// An admin token of the homeserver's (registered once with the shared secret).
    pub async fn admin_token(&self) -> String {
        static TOKEN: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        TOKEN.get_or_init(|| self.register_admin()).await.clone()
    }

    /// Whether the homeserver still knows the room (admin API).
    /// Registers the test's own admin user with the shared secret; returns its token.
    async fn register_admin(&self) -> String {
        let secret = &self.hs.env["CHATROOMS_MATRIX_REGISTRATION_SHARED_SECRET"];
        let (_, nonce) = self.call(Method::GET, "/_synapse/admin/v1/register", "", None).await;
        let nonce = nonce["nonce"].as_str().expect("a registration nonce").to_owned();
        let (user, password) = ("test-inspector", "test-inspector-password");
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{nonce}\0{user}\0{password}\0admin").as_bytes());
        let body = json!({"nonce": nonce, "username": user, "password": password, "admin": true,
            "mac": hex::encode(mac.finalize().into_bytes())});
        let (status, answer) = self.call(Method::POST, "/_synapse/admin/v1/register", "", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn room_exists(&self, room_id: &str) -> bool {
        let token = self.admin_token().await;
        let path = format!("/_synapse/admin/v1/rooms/{}", urlencoding::encode(room_id));
        let (status, body) = self.call(Method::GET, &path, &token, None).await;
        match status {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("room lookup answered {other}: {body}"),
        }
    }

    /// Whether local media still exists (admin API).
    pub async fn media_exists(&self, mxc: &str) -> bool {
        let token = self.admin_token().await;
        let (server, id) = mxc.trim_start_matches("mxc://").split_once('/').expect("an mxc uri");
        let path = format!("/_synapse/admin/v1/media/{server}/{id}");
        let (status, body) = self.call(Method::GET, &path, &token, None).await;
        match status {
            StatusCode::OK => true,
            StatusCode::NOT_FOUND => false,
            other => panic!("media lookup answered {other}: {body}"),
        }
    }

    /// Downloads media as a client would (authenticated media).
    pub async fn download(&self, mxc: &str, token: &str) -> Vec<u8> {
        let rest = mxc.trim_start_matches("mxc://");
        let url = format!("{}/_matrix/client/v1/media/download/{rest}", self.hs.url);
        let response = self.http.get(url).bearer_auth(token).send().await.expect("download");
        assert_eq!(response.status(), StatusCode::OK);
        response.bytes().await.unwrap().to_vec()
    }

    /// Logs a namespaced user in through the appservice and returns their access token.
    pub async fn login_as(&self, localpart: &str) -> String {
        let body = json!({"type": "m.login.application_service",
            "identifier": {"type": "m.id.user", "user": localpart}});
        let (status, answer) =
            self.call(Method::POST, "/_matrix/client/v3/login", self.as_token(), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer["access_token"].as_str().unwrap().to_owned()
    }
}

/// App user ids no other test uses.
pub fn fresh_users(n: usize) -> Vec<i64> {
    let base = 1_000_000 + (rand::random::<u32>() as i64) * 1000;
    (0..n as i64).map(|i| base + i).collect()
}

pub fn fresh_org() -> i64 {
    rand::random::<u32>() as i64
}

/// A 1x1 PNG.
pub fn tiny_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[
        0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 31, 21, 196, 137, 0, 0, 0, 13,
        73, 68, 65, 84, 120, 156, 99, 248, 207, 192, 240, 31, 0, 5, 0, 1, 255, 137, 153, 61, 29, 0, 0, 0, 0,
        73, 69, 78, 68, 174, 66, 96, 130,
    ]);
    png
}

/// A signed personal access token.
pub fn jwt(sub: Value, organizations: Value, valid_for_secs: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": sub, "exp": now + valid_for_secs, "iat": now, "organizations": organizations});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Polls until `check` holds (the background worker converges on its own schedule).
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP proxy in front of the homeserver that a test can cut (every connection refused and
/// every open one dropped), stall (connections accepted, never answered) and restore.
pub struct FaultProxy {
    pub url: String,
    mode: Arc<std::sync::atomic::AtomicU8>,
    generation: tokio::sync::watch::Sender<u64>,
}

const PROXY_UP: u8 = 0;
const PROXY_CUT: u8 = 1;
const PROXY_STALLED: u8 = 2;

impl FaultProxy {
    pub async fn start(target: &str) -> Self {
        use std::sync::atomic::Ordering;
        let target = target.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(PROXY_UP));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (accept_mode, accept_generation) = (mode.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let mut cut = accept_generation.subscribe();
                match accept_mode.load(Ordering::SeqCst) {
                    PROXY_CUT => drop(inbound),
                    PROXY_STALLED => {
                        // Hold the connection open and say nothing, until the mode changes.
                        tokio::spawn(async move {
                            let _ = cut.changed().await;
                            drop(inbound);
                        });
                    }
                    _ => {
                        let target = target.clone();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = cut.changed() => {}
                            }
                        });
                    }
                }
            }
        });
        FaultProxy { url, mode, generation }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The homeserver becomes unreachable.
    pub fn cut(&self) {
        self.set(PROXY_CUT);
    }

    /// The homeserver accepts connections and never answers.
    pub fn stall(&self) {
        self.set(PROXY_STALLED);
    }

    pub fn restore(&self) {
        self.set(PROXY_UP);
    }
}

/// A Synapse of one test's own (its own directory and port), for tests that kill the homeserver
/// itself; the shared one must stay up for the tests running beside them. It dies with the test
/// process (PDEATHSIG) and when dropped, so a failing assertion leaves nothing running.
pub struct PrivateHomeserver {
    /// Leaked once per test, so a `TestApp` and a `MatrixView` can hold it as they hold the shared one.
    pub hs: &'static Homeserver,
    dir: PathBuf,
    running: Mutex<Option<RunningSynapse>>,
    admin: tokio::sync::OnceCell<String>,
}

struct RunningSynapse {
    pid: libc::pid_t,
    /// Owns and reaps the child; PDEATHSIG is tied to this thread, which lives as long as the child.
    reaper: std::thread::JoinHandle<()>,
}

impl PrivateHomeserver {
    pub async fn start() -> Self {
        Self::start_pushing_to(fan_out_url()).await
    }

    /// A homeserver whose appservice pushes go to `url` (a service's own address), not to
    /// the fan-out.
    pub async fn start_pushing_to(url: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "chatrooms-test-private-synapse-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let port = free_port();
        let env = configure_synapse(&dir, port, url);
        let hs: &'static Homeserver = Box::leak(Box::new(Homeserver {
            url: format!("http://127.0.0.1:{port}"),
            server_name: env["CHATROOMS_MATRIX_SERVER_NAME"].clone(),
            env,
        }));
        let private = PrivateHomeserver { hs, dir, running: Mutex::new(None), admin: Default::default() };
        private.restart().await;
        private
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("synapse.log")
    }

    /// Starts Synapse (again) on the same directory and port and waits until it answers.
    pub async fn restart(&self) {
        assert!(self.running.lock().unwrap().is_none(), "Synapse is running already");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("synapse log file");
        let (pid, reaper) = spawn_synapse(self.dir.join("homeserver.yaml"), log);
        *self.running.lock().unwrap() = Some(RunningSynapse { pid, reaper });
        let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let answered = http.get(format!("{}/_matrix/client/versions", self.hs.url)).send().await;
            if matches!(answered, Ok(r) if r.status().is_success()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "private Synapse did not come up; see {}",
                self.log_path().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown handler runs, whatever Synapse was writing stays half-written.
    pub fn kill(&self) {
        if let Some(running) = self.running.lock().unwrap_or_else(|p| p.into_inner()).take() {
            unsafe {
                libc::kill(running.pid, libc::SIGKILL);
            }
            let _ = running.reaper.join();
        }
    }

    /// A call on this homeserver's admin API (its own admin user, registered with the shared secret).
    pub async fn admin_call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let matrix = MatrixView::new(self.hs);
        let token = self.admin.get_or_init(|| matrix.register_admin()).await;
        matrix.call(method, path, token, body).await
    }
}

impl Drop for PrivateHomeserver {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("private Synapse kept for inspection: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl TestApp {
    /// A service on a fresh database, talking to the given homeserver (a private one) instead
    /// of the shared one.
    pub async fn spawn_against(
        hs: &'static Homeserver,
        customize: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        Self::spawn_against_on(hs, Arc::new(fresh_database().await), customize).await
    }

    /// As [`TestApp::spawn_against`], on an existing database (a restart).
    pub async fn spawn_against_on(
        hs: &'static Homeserver,
        database: Arc<TestDatabase>,
        customize: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        init_logging();
        let mut vars = base_env(hs, &database.url);
        customize(&mut vars);
        let config = Config::from_map(&vars).expect("test configuration");
        let clock = ShiftedClock::default();
        let app =
            Application::build_with_clock(config, Arc::new(clock.clone())).await.expect("building the app");
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        TestApp { base, http, clock, hs, database, state, shutdown: Some(shutdown), server: Some(server) }
    }
}

/// Gives users roles in a room directly in the database, without a sync job: the homeserver
/// never hears of them. For tests of the limits of large rooms, whose members would take
/// minutes to register and join.
pub async fn seed_roles(app: &TestApp, room: i64, roles: &[(i64, chatrooms::domain::Role)]) {
    let roles = chatrooms::domain::RoleLists::from_roles(roles.iter().copied().collect());
    let mut tx = app.state.store.begin().await.expect("a transaction");
    chatrooms::store::chatrooms::put_roles(&mut tx, room, &roles).await.expect("roles stored");
    tx.commit().await.expect("roles committed");
}

/// A sample from the service's `/metrics`, by its name and labels as served
/// (`name{label="value"}`); `None` when it is not served (yet).
pub async fn metric(app: &TestApp, series: &str) -> Option<f64> {
    let text = app.anonymous(Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let prefix = format!("{series} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok())
}

/// A counter from the service's `/metrics`.
pub async fn counter(app: &TestApp, name: &str) -> u64 {
    metric(app, name).await.expect("the counter is served") as u64
}
