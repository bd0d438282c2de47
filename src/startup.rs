//! Builds the application: state, router, background tasks. `main` and the tests both start
//! the service through `Application::build`, so the tests run what production runs.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    api,
    auth::Authenticator,
    clock::{Clock, SystemClock},
    config::Config,
    config::Secret,
    credentials::PasswordDeriver,
    matrix::{Homeserver, Synapse},
    metrics::Metrics,
    rate_limit::RateLimits,
    state::AppState,
    store::{jobs, secrets, Store},
    sync::{spawn_background, Reconciler},
};

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::build_with(config, clock, |synapse| synapse).await
    }

    /// `wrap` may put a layer around the Synapse adapter (tests inject faults with it).
    pub async fn build_with(
        config: Config,
        clock: Arc<dyn Clock>,
        wrap: impl FnOnce(Arc<dyn Homeserver>) -> Arc<dyn Homeserver>,
    ) -> anyhow::Result<Self> {
        let store = Store::connect(&config.database_url, config.database_max_connections).await?;
        store.migrate().await?;
        let credentials_secret = match &config.auth.credentials_secret {
            Some(secret) => secret.clone(),
            None => stored_credentials_secret(&store, clock.as_ref()).await?,
        };
        {
            let mut conn = store.pool().acquire().await?;
            let retried = jobs::retry_configuration_failures(&mut conn, clock.now_ms()).await?;
            if retried > 0 {
                tracing::info!(rooms = retried, "retrying rooms stopped by refused credentials");
            }
        }
        let metrics = Arc::new(Metrics::default());
        let homeserver: Arc<dyn Homeserver> = wrap(Arc::new(
            Synapse::new(&config.matrix, metrics.clone()).context("configuring the homeserver")?,
        ));
        let reconciler = Arc::new(Reconciler::new(
            store.clone(),
            homeserver.clone(),
            clock.clone(),
            config.sync.clone(),
            config.matrix.room_version.clone(),
            metrics.clone(),
        ));
        let authenticator = Arc::new(Authenticator::new(&config.auth).context("configuring authentication")?);
        let listener = TcpListener::bind(config.bind_addr)
            .await
            .with_context(|| format!("binding {}", config.bind_addr))?;
        let passwords = Arc::new(PasswordDeriver::new(&credentials_secret));
        let rate_limits = Arc::new(RateLimits::new(&config.rate_limits));
        let state = AppState {
            config: Arc::new(config),
            store,
            homeserver,
            reconciler,
            authenticator,
            passwords,
            clock,
            metrics,
            rate_limits,
            blocklist_matchers: Default::default(),
        };
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests and background work.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state;
        let background = spawn_background(
            state.reconciler.clone(),
            state.store.clone(),
            state.clock.clone(),
            state.config.sync.clone(),
            state.config.matrix.appservice_id.clone(),
        );
        // Intake's sweep and the webhook deliveries, beside the sync loops.
        let (stop_extra, extra_stopped) = tokio::sync::watch::channel(false);
        let sweeper = tokio::spawn(crate::appservice::inbox::run_sweeper(
            state.clone(),
            state.config.sync.scheduler_interval,
            extra_stopped.clone(),
        ));
        let report_intake = tokio::spawn(crate::appservice::report_intake::run(
            state.clone(),
            state.config.sync.report_poll,
            extra_stopped.clone(),
        ));
        let deliveries = tokio::spawn(crate::webhooks::delivery::run(
            state.store.clone(),
            state.clock.clone(),
            state.config.webhooks.clone(),
            state.metrics.clone(),
            extra_stopped,
        ));
        tracing::info!(addr = %self.listener.local_addr()?, "serving");
        let router = api::router(state.clone());
        let served = axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await;
        let _ = stop_extra.send(true);
        let _ = tokio::join!(sweeper, report_intake, deliveries);
        background.stop().await;
        state.store.close().await;
        served.context("serving HTTP")
    }
}

/// Without `CHATROOMS_CREDENTIALS_SECRET`, a secret generated on the first start and kept in
/// the database: every replica derives the same passwords, and nothing ties them to the
/// appservice token.
async fn stored_credentials_secret(store: &Store, clock: &dyn Clock) -> anyhow::Result<Secret> {
    let candidate = hex::encode(rand::random::<[u8; 32]>());
    let mut conn = store.pool().acquire().await?;
    let secret = secrets::get_or_insert(&mut conn, "credentials", &candidate, clock.now_ms())
        .await
        .context("reading the stored credentials secret")?;
    Ok(Secret::from(secret))
}
