//! chatrooms: keeps chat rooms on a Matrix homeserver in step with a messenger's backend.

pub mod api;
pub mod appservice;
pub mod auth;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod error;
pub mod matrix;
pub mod metrics;
pub mod rate_limit;
pub mod rooms;
pub mod startup;
pub mod state;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod webhooks;

pub use config::Config;
pub use startup::Application;
pub use state::AppState;
