//! What every request and background task shares: configuration, storage, the homeserver, the
//! reconciler, authentication and the clock.

use std::sync::Arc;

use crate::{
    auth::Authenticator, clock::Clock, config::Config, credentials::PasswordDeriver,
    domain::blocklist::MatcherCache, matrix::Homeserver, metrics::Metrics, rate_limit::RateLimits,
    store::Store, sync::Reconciler,
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub homeserver: Arc<dyn Homeserver>,
    pub reconciler: Arc<Reconciler>,
    pub authenticator: Arc<Authenticator>,
    pub passwords: Arc<PasswordDeriver>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub rate_limits: Arc<RateLimits>,
    pub blocklist_matchers: Arc<MatcherCache>,
}
