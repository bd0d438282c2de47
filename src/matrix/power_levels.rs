//! Roles → `m.room.power_levels`. Pure functions, so the mapping is unit-tested without a server.

use std::collections::BTreeMap;

use ruma::{OwnedUserId, UserId};
use serde_json::{json, Value};

/// Room versions from 12 on give creators unlimited power and forbid listing them in `users`;
/// earlier versions need the bot listed at 100 or it loses control of the room.
pub fn creator_listed(room_version: &str) -> bool {
    match room_version.parse::<u32>() {
        Ok(v) => v <= 11,
        // Unstable or unknown identifiers: assume the older rules, as Synapse's defaults do.
        Err(_) => true,
    }
}

/// The `users` map a room must have: the listed admins and moderators, and the bot where needed.
pub fn desired_users(
    roles: impl IntoIterator<Item = (OwnedUserId, i64)>,
    bot: &UserId,
    room_version: &str,
) -> BTreeMap<OwnedUserId, i64> {
    let mut users: BTreeMap<OwnedUserId, i64> = roles.into_iter().collect();
    if creator_listed(room_version) {
        users.insert(bot.to_owned(), 100);
    } else {
        users.remove(bot);
    }
    users
}

/// `events_default` of a room: 0 lets every member post; a read-only room needs a
/// moderator's 50.
pub fn events_default(read_only: bool) -> i64 {
    if read_only {
        50
    } else {
        0
    }
}

/// The current content with `users` and `events_default` replaced, or `None` when both
/// already match (the other keys are left as they are).
pub fn with_levels(
    current: &Value,
    users: &BTreeMap<OwnedUserId, i64>,
    events_default: i64,
) -> Option<Value> {
    let wanted: serde_json::Map<String, Value> =
        users.iter().map(|(user, level)| (user.to_string(), json!(level))).collect();
    let actual = current.get("users").and_then(Value::as_object);
    let same = actual.is_some_and(|actual| {
        actual.len() == wanted.len()
            && wanted.iter().all(|(user, level)| actual.get(user).and_then(Value::as_i64) == level.as_i64())
    });
    // An absent `events_default` means 0 (the Matrix default).
    let same_default = current.get("events_default").and_then(Value::as_i64).unwrap_or(0) == events_default;
    if same && same_default {
        return None;
    }
    let mut content = match current {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    content.insert("users".into(), Value::Object(wanted));
    content.insert("events_default".into(), json!(events_default));
    Some(Value::Object(content))
}

/// Matrix caps a whole event at 64 KiB; the envelope (hashes, signatures, auth and prev events)
/// takes a few hundred bytes, so the content must stay well below.
pub const MAX_CONTENT_BYTES: usize = 60 * 1024;

/// Size in bytes of the `users` map's JSON once serialized, plus Synapse's default keys.
pub fn content_size(users: &BTreeMap<OwnedUserId, i64>) -> usize {
    const DEFAULT_KEYS_BYTES: usize = 400;
    let users_bytes: usize = users
        .iter()
        .map(|(user, level)| user.as_str().len() + level.to_string().len() + 4) // "": and ,
        .sum();
    DEFAULT_KEYS_BYTES + users_bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(s: &str) -> OwnedUserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn the_bot_is_listed_only_before_room_version_12() {
        let bot = uid("@bot:hs");
        let roles = vec![(uid("@app_1:hs"), 100), (uid("@app_2:hs"), 50)];
        let v12 = desired_users(roles.clone(), &bot, "12");
        assert_eq!(v12.len(), 2);
        assert!(!v12.contains_key(&bot));
        let v11 = desired_users(roles, &bot, "11");
        assert_eq!(v11.get(&bot), Some(&100));
        assert_eq!(v11.len(), 3);
    }

    #[test]
    fn users_are_replaced_exactly_and_other_keys_kept() {
        // A namespaced user without a role and a stranger promoted by hand both lose their entry.
        let current = json!({"ban": 50, "events": {"m.room.name": 50},
            "users": {"@app_1:hs": 100, "@app_9:hs": 50, "@someone:elsewhere": 50}});
        let wanted = BTreeMap::from([(uid("@app_1:hs"), 100), (uid("@app_2:hs"), 50)]);
        let next = with_levels(&current, &wanted, 0).unwrap();
        assert_eq!(next["users"], json!({"@app_1:hs": 100, "@app_2:hs": 50}));
        assert_eq!(next["ban"], json!(50));
        assert_eq!(next["events"], json!({"m.room.name": 50}));
        assert_eq!(with_levels(&next, &wanted, 0), None, "a matching map needs no write");
        let read_only = with_levels(&next, &wanted, 50).expect("read-only changes events_default");
        assert_eq!(read_only["events_default"], 50);
        assert_eq!(read_only["users"], next["users"]);
        assert_eq!(with_levels(&read_only, &wanted, 50), None);
    }

    fn users_on(server: &str, n: i64) -> BTreeMap<OwnedUserId, i64> {
        (0..n).map(|i| (uid(&format!("@app_{}:{server}", 1_000_000_000 + i)), 100)).collect()
    }

    #[test]
    fn content_size_never_undercounts() {
        let users = users_on("chat.example.org", 1000);
        let exact = serde_json::to_string(&users).unwrap().len();
        assert!(content_size(&users) >= exact, "estimate {} undercounts {exact}", content_size(&users));
    }

    #[test]
    fn about_1550_long_or_1900_short_ids_fit_in_one_event() {
        // The capacity the README states.
        assert!(content_size(&users_on("chat.example.org", 1550)) <= MAX_CONTENT_BYTES);
        assert!(content_size(&users_on("chat.example.org", 1600)) > MAX_CONTENT_BYTES);
        assert!(content_size(&users_on("localhost", 1900)) <= MAX_CONTENT_BYTES);
        assert!(content_size(&users_on("localhost", 1950)) > MAX_CONTENT_BYTES);
    }
}
