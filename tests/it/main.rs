//! One integration binary: every test runs the real service against a real Synapse and a real
//! database (SQLite, or Postgres with CHATROOMS_TEST_DATABASE=postgres).

mod appservice;
mod archive;
mod auth;
mod blocklists;
mod chatrooms;
mod client_moderation;
mod concurrency;
mod crash;
mod drift_pass;
mod export;
mod fault_injection;
mod faults;
mod harness;
mod homeserver_crash;
mod homeserver_slots;
mod idempotency;
mod jwt;
mod listing;
mod messages;
mod mobile_client;
mod moderation;
mod observability;
mod openapi;
mod organization_rooms;
mod prefer;
mod rate_limits;
mod resilience;
mod room_settings;
mod rosters;
mod spaces;
mod sync_faults;
mod user_rooms;
mod validation;
mod webhooks;
