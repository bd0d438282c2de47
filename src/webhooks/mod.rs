//! Webhooks to the backend (Standard Webhooks): subscriptions, signing, the durable outbox of
//! deliveries and the worker that posts them.

pub mod delivery;
mod events;
pub mod outbox;
pub mod signing;
pub mod subscriptions;
pub mod target;

pub use events::EventType;
pub use outbox::{emit, Outgoing, RoomRef};
