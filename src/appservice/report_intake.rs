//! Reports made in Matrix clients: the homeserver keeps them for its admins and pushes nothing
//! to the appservice, so they are read from its admin API every `report_poll`.

use std::time::Duration;

use crate::{rooms::reports, state::AppState};

pub async fn run(state: AppState, every: Duration, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = reports::take_homeserver_reports(&state).await {
            tracing::warn!(error = %e, "reading the homeserver's event reports failed; retried");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}
