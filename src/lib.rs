//! chatrooms: keeps chat rooms on a Matrix homeserver in step with a messenger's backend.

pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod domain;
pub mod error;
pub mod matrix;
pub mod metrics;
pub mod store;
pub mod sync;
pub mod telemetry;

pub use app::{AppState, Application};
pub use config::Config;
