//! What the homeserver pushes to us (the application-service API): transactions of the events
//! of our rooms. The inbox keeps each one before it is answered; routing them (drift repair,
//! moderation, webhooks) builds on it.

pub mod inbox;
