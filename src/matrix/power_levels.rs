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

/// What an archived room asks of every message and state change: above the admins' 100, so
/// that only the bot posts (from room version 12 it is the creator, above every level). Before
/// version 12 the bot is listed at 100 like the admins and may not rise above them: their
/// admins keep posting there.
pub fn archived_level(room_version: &str) -> i64 {
    if creator_listed(room_version) {
        100
    } else {
        101
    }
}

/// The thresholds a room's settings ask for, beyond `users`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// What posting takes while the room is in use ([`events_default`]).
    pub events_default: i64,
    pub archived: bool,
    /// [`archived_level`] of the room's version.
    pub archived_level: i64,
}

/// Synapse's level for a state event of a new room: what an archive's end restores.
fn standard_state_level(event_type: &str) -> i64 {
    match event_type {
        "m.room.power_levels"
        | "m.room.history_visibility"
        | "m.room.server_acl"
        | "m.room.encryption"
        | "m.room.tombstone" => 100,
        _ => 50,
    }
}

/// Matrix's values for absent keys.
const ABSENT_EVENTS_DEFAULT: i64 = 0;
const ABSENT_STATE_DEFAULT: i64 = 50;

/// The current content with `users` replaced and the thresholds applied, or `None` when it
/// already matches. Archived: posting, every state event and the default for others at the
/// archived level (higher entries, as the tombstone's 150, stay). Back in use, a room that
/// still looks archived gets Synapse's standard levels back. Other keys are left as they are.
pub fn with_levels(current: &Value, users: &BTreeMap<OwnedUserId, i64>, wanted: Thresholds) -> Option<Value> {
    let original = match current {
        Value::Object(map) => map.clone(),
        _ => serde_json::Map::new(),
    };
    let mut content = original.clone();
    let level_of = |key: &str, absent: i64| original.get(key).and_then(Value::as_i64).unwrap_or(absent);
    let users_wanted: serde_json::Map<String, Value> =
        users.iter().map(|(user, level)| (user.to_string(), json!(level))).collect();
    let same_users = original.get("users").and_then(Value::as_object).is_some_and(|actual| {
        actual.len() == users_wanted.len()
            && users_wanted
                .iter()
                .all(|(user, level)| actual.get(user).and_then(Value::as_i64) == level.as_i64())
    });
    if !same_users {
        content.insert("users".into(), Value::Object(users_wanted));
    }
    let archived_level = wanted.archived_level;
    let looks_archived = level_of("events_default", ABSENT_EVENTS_DEFAULT) >= archived_level
        && level_of("state_default", ABSENT_STATE_DEFAULT) >= archived_level;
    let (events_default, state_default) = match (wanted.archived, looks_archived) {
        (true, _) => {
            (archived_level, Some(level_of("state_default", ABSENT_STATE_DEFAULT).max(archived_level)))
        }
        (false, true) => (wanted.events_default, Some(ABSENT_STATE_DEFAULT)),
        (false, false) => (wanted.events_default, None),
    };
    if level_of("events_default", ABSENT_EVENTS_DEFAULT) != events_default {
        content.insert("events_default".into(), json!(events_default));
    }
    if let Some(state_default) =
        state_default.filter(|level| *level != level_of("state_default", ABSENT_STATE_DEFAULT))
    {
        content.insert("state_default".into(), json!(state_default));
    }
    if wanted.archived || looks_archived {
        if let Some(Value::Object(events)) = content.get_mut("events") {
            for (event_type, level) in events.iter_mut() {
                let Some(current) = level.as_i64() else { continue };
                let next = match wanted.archived {
                    true => current.max(archived_level),
                    false if current == archived_level => standard_state_level(event_type),
                    false => current,
                };
                *level = json!(next);
            }
        }
    }
    (content != original).then_some(Value::Object(content))
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

    fn in_use(events_default: i64) -> Thresholds {
        Thresholds { events_default, archived: false, archived_level: 101 }
    }

    #[test]
    fn an_archive_raises_posting_and_every_state_event_above_the_admins_and_its_end_restores_them() {
        // Synapse's levels of a new version 12 room, a read-only one.
        let standard = json!({"users": {"@app_1:hs": 100, "@app_2:hs": -1}, "events_default": 50, "state_default": 50,
            "ban": 50, "events": {"m.room.name": 50, "m.room.power_levels": 100, "m.room.tombstone": 150,
            "m.room.history_visibility": 100, "m.room.avatar": 50}});
        let users = BTreeMap::from([(uid("@app_1:hs"), 100), (uid("@app_2:hs"), -1)]);
        let archived = Thresholds { archived: true, ..in_use(50) };
        let closed = with_levels(&standard, &users, archived).expect("archiving changes the levels");
        assert_eq!(
            (closed["events_default"].clone(), closed["state_default"].clone()),
            (json!(101), json!(101))
        );
        assert_eq!(
            closed["events"],
            json!({"m.room.name": 101, "m.room.power_levels": 101, "m.room.tombstone": 150,
                "m.room.history_visibility": 101, "m.room.avatar": 101})
        );
        assert_eq!((closed["users"].clone(), closed["ban"].clone()), (standard["users"].clone(), json!(50)));
        assert_eq!(with_levels(&closed, &users, archived), None, "archived already");
        let reopened = with_levels(&closed, &users, in_use(50)).expect("unarchiving restores");
        assert_eq!(reopened, standard, "exactly the levels before, read-only and mute included");
        assert_eq!(with_levels(&standard, &users, in_use(50)), None);
        // A room never archived keeps levels set by hand.
        let by_hand = json!({"users": {"@app_1:hs": 100, "@app_2:hs": -1}, "events_default": 50,
            "events": {"m.room.name": 101}});
        assert_eq!(with_levels(&by_hand, &users, in_use(50)), None);
        // Before version 12 the archived level is the admins' own.
        assert_eq!((archived_level("11"), archived_level("12")), (100, 101));
    }

    #[test]
    fn users_are_replaced_exactly_and_other_keys_kept() {
        // A namespaced user without a role and a stranger promoted by hand both lose their entry.
        let current = json!({"ban": 50, "events": {"m.room.name": 50},
            "users": {"@app_1:hs": 100, "@app_9:hs": 50, "@someone:elsewhere": 50}});
        let wanted = BTreeMap::from([(uid("@app_1:hs"), 100), (uid("@app_2:hs"), 50)]);
        let next = with_levels(&current, &wanted, in_use(0)).unwrap();
        assert_eq!(next["users"], json!({"@app_1:hs": 100, "@app_2:hs": 50}));
        assert_eq!(next["ban"], json!(50));
        assert_eq!(next["events"], json!({"m.room.name": 50}));
        assert_eq!(with_levels(&next, &wanted, in_use(0)), None, "a matching map needs no write");
        let read_only = with_levels(&next, &wanted, in_use(50)).expect("read-only changes events_default");
        assert_eq!(read_only["events_default"], 50);
        assert_eq!(read_only["users"], next["users"]);
        assert_eq!(with_levels(&read_only, &wanted, in_use(50)), None);
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
