//! Counters for operators, served at `/metrics` in Prometheus' text format.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub syncs_succeeded: AtomicU64,
    pub syncs_failed: AtomicU64,
    pub drift_repairs: AtomicU64,
    pub rooms_created: AtomicU64,
    pub rooms_purged: AtomicU64,
    pub half_made_rooms_retired: AtomicU64,
}

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let rows = [
            (
                "chatrooms_syncs_succeeded_total",
                "Room syncs that brought the homeserver in line",
                &self.syncs_succeeded,
            ),
            (
                "chatrooms_syncs_failed_total",
                "Room sync attempts that failed (retried or failed)",
                &self.syncs_failed,
            ),
            (
                "chatrooms_drift_repairs_total",
                "Rooms changed on the homeserver behind our back and restored",
                &self.drift_repairs,
            ),
            ("chatrooms_rooms_created_total", "Matrix rooms created", &self.rooms_created),
            ("chatrooms_rooms_purged_total", "Matrix rooms deleted and purged", &self.rooms_purged),
            (
                "chatrooms_half_made_rooms_retired_total",
                "Rooms a homeserver crash left half-made, purged and created afresh",
                &self.half_made_rooms_retired,
            ),
        ];
        rows.iter()
            .map(|(name, help, value)| {
                format!(
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                    value.load(Ordering::Relaxed)
                )
            })
            .collect()
    }
}
