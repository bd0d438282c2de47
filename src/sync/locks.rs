use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::OwnedMutexGuard;

use crate::store::jobs::JobKey;

/// One in-process writer per room (or space); the database lease covers other instances.
#[derive(Default)]
pub struct RoomLocks {
    rooms: Mutex<HashMap<JobKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl RoomLocks {
    pub async fn lock(&self, id: JobKey) -> OwnedMutexGuard<()> {
        let lock = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Drop entries nobody holds or waits for, so the map does not grow with every room ever seen.
            rooms.retain(|_, lock| Arc::strong_count(lock) > 1);
            rooms.entry(id).or_default().clone()
        };
        lock.lock_owned().await
    }
}
