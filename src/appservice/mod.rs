//! What the homeserver pushes to us (the application-service API): transactions of the events
//! of our rooms. The inbox keeps each one before it is answered; routing acts on its events
//! (drift repair, moderation from clients).

mod events;
pub mod inbox;
pub mod report_intake;
mod routing;
