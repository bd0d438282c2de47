//! What a pushed event means to the service, read from the appservice API's JSON (pure, so the
//! routing decisions are unit-tested). Events that mean nothing to us are `None`.

use ruma::{OwnedUserId, UserId};
use serde_json::Value;

use crate::matrix::REDACTED_EDIT_OF;

/// State the backend owns in its rooms and spaces: a change to it by anyone but the bot is drift.
const OWNED_STATE: [&str; 8] = [
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.history_visibility",
    // A room's link to its organization's space, and a space's links to its rooms.
    "m.space.parent",
    "m.space.child",
];

#[derive(Debug, PartialEq)]
pub enum Pushed<'a> {
    /// Owned state (name, avatar, topic, power levels, join rules, history visibility) changed;
    /// for power levels, who went down to the muted level and who came up from it.
    OwnedState { kind: &'a str, muted: Vec<OwnedUserId>, unmuted: Vec<OwnedUserId> },
    Membership {
        target: OwnedUserId,
        membership: &'a str,
        /// The membership before this event, when the homeserver says (`unsigned.prev_content`).
        previous: Option<&'a str>,
        reason: Option<&'a str>,
    },
    /// A redaction; `redacts` is the event it removed; `edit_of`, the message that event was an
    /// edit of, as the bot's redactions of edits name it ([`REDACTED_EDIT_OF`]).
    Redaction { redacts: &'a str, reason: Option<&'a str>, edit_of: Option<&'a str> },
    /// A room message (`m.room.message`), its text and any edit's new text; `edits` is the
    /// event an edit (`m.replace`) replaces.
    Message { text: Vec<&'a str>, edits: Option<&'a str> },
    /// End-to-end encryption turned on (`m.room.encryption`): for good, in Matrix too.
    Encryption,
}

/// One pushed event, with what every kind has.
#[derive(Debug, PartialEq)]
pub struct Event<'a> {
    pub room: &'a str,
    pub sender: OwnedUserId,
    pub event_id: &'a str,
    /// When the homeserver took it (`origin_server_ts`, Unix milliseconds).
    pub at: Option<i64>,
    pub what: Pushed<'a>,
}

pub fn parse(event: &Value) -> Option<Event<'_>> {
    let kind = event["type"].as_str()?;
    let room = event["room_id"].as_str()?;
    let sender = UserId::parse(event["sender"].as_str()?).ok()?;
    let event_id = event["event_id"].as_str()?;
    let content = &event["content"];
    let is_state = event.get("state_key").is_some_and(Value::is_string);
    let what = match kind {
        "m.room.member" if is_state => Pushed::Membership {
            target: UserId::parse(event["state_key"].as_str()?).ok()?,
            membership: content["membership"].as_str()?,
            previous: event["unsigned"]["prev_content"]["membership"].as_str(),
            reason: content["reason"].as_str(),
        },
        kind if is_state && OWNED_STATE.contains(&kind) => {
            let (muted, unmuted) = if kind == "m.room.power_levels" {
                mute_changes(&event["unsigned"]["prev_content"]["users"], &content["users"])
            } else {
                Default::default()
            };
            Pushed::OwnedState { kind, muted, unmuted }
        }
        // Room version 11 moved `redacts` into the content; older versions have it on top.
        "m.room.redaction" => Pushed::Redaction {
            redacts: content["redacts"].as_str().or(event["redacts"].as_str())?,
            reason: content["reason"].as_str(),
            edit_of: content[REDACTED_EDIT_OF].as_str(),
        },
        "m.room.encryption" if is_state => Pushed::Encryption,
        "m.room.message" if !is_state => {
            let new = &content["m.new_content"];
            let text = [&content["body"], &content["formatted_body"], &new["formatted_body"], &new["body"]]
                .into_iter()
                .filter_map(Value::as_str)
                .collect();
            let relation = &content["m.relates_to"];
            let edits = relation["event_id"].as_str().filter(|_| relation["rel_type"] == "m.replace");
            Pushed::Message { text, edits }
        }
        _ => return None,
    };
    Some(Event { room, sender, event_id, at: event["origin_server_ts"].as_i64(), what })
}

/// A muted user's power level (below `events_default`); see the sync plan.
const MUTED_LEVEL: i64 = -1;

/// Users at the muted level now but not before, and the other way round.
fn mute_changes(before: &Value, after: &Value) -> (Vec<OwnedUserId>, Vec<OwnedUserId>) {
    let muted_in = |levels: &Value| -> Vec<OwnedUserId> {
        let Some(users) = levels.as_object() else { return Vec::new() };
        users
            .iter()
            .filter(|(_, level)| level.as_i64() == Some(MUTED_LEVEL))
            .filter_map(|(user, _)| UserId::parse(user).ok())
            .collect()
    };
    let (was, is) = (muted_in(before), muted_in(after));
    let muted = is.iter().filter(|user| !was.contains(user)).cloned().collect();
    let unmuted = was.into_iter().filter(|user| !is.contains(user)).collect();
    (muted, unmuted)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(kind: &str, extra: Value) -> Value {
        let mut event = json!({"type": kind, "room_id": "!r:hs", "sender": "@app_1:hs", "event_id": "$e",
            "content": {}});
        for (key, value) in extra.as_object().unwrap() {
            event[key] = value.clone();
        }
        event
    }

    #[test]
    fn owned_state_memberships_redactions_and_messages_are_read() {
        let name = event("m.room.name", json!({"state_key": "", "content": {"name": "x"}}));
        let unchanged = Pushed::OwnedState { kind: "m.room.name", muted: vec![], unmuted: vec![] };
        assert_eq!(parse(&name).unwrap().what, unchanged);
        let levels = event(
            "m.room.power_levels",
            json!({"state_key": "", "content": {"users": {"@app_1:hs": 100, "@app_2:hs": -1}},
                "unsigned": {"prev_content": {"users": {"@app_1:hs": 100, "@app_3:hs": -1}}}}),
        );
        let Pushed::OwnedState { muted, unmuted, .. } = parse(&levels).unwrap().what else { panic!() };
        assert_eq!((muted[0].as_str(), unmuted[0].as_str()), ("@app_2:hs", "@app_3:hs"));
        let ban = event(
            "m.room.member",
            json!({"state_key": "@app_2:hs", "content": {"membership": "ban", "reason": "spam"},
                "unsigned": {"prev_content": {"membership": "join"}}}),
        );
        let parsed = parse(&ban).unwrap();
        assert_eq!(parsed.sender.as_str(), "@app_1:hs");
        assert_eq!(
            parsed.what,
            Pushed::Membership {
                target: UserId::parse("@app_2:hs").unwrap(),
                membership: "ban",
                previous: Some("join"),
                reason: Some("spam"),
            }
        );
        for redaction in [
            event("m.room.redaction", json!({"content": {"redacts": "$m"}})),
            event("m.room.redaction", json!({"redacts": "$m"})),
        ] {
            assert_eq!(
                parse(&redaction).unwrap().what,
                Pushed::Redaction { redacts: "$m", reason: None, edit_of: None }
            );
        }
        let of_edit =
            event("m.room.redaction", json!({"content": {"redacts": "$e", REDACTED_EDIT_OF: "$m"}}));
        assert_eq!(
            parse(&of_edit).unwrap().what,
            Pushed::Redaction { redacts: "$e", reason: None, edit_of: Some("$m") }
        );
        let edit = event(
            "m.room.message",
            json!({"content": {"body": "* hi", "msgtype": "m.text",
                "m.new_content": {"body": "hi", "formatted_body": "<b>hi</b>"},
                "m.relates_to": {"rel_type": "m.replace", "event_id": "$original"}}}),
        );
        // The new HTML too: it is what clients show.
        assert_eq!(
            parse(&edit).unwrap().what,
            Pushed::Message { text: vec!["* hi", "<b>hi</b>", "hi"], edits: Some("$original") }
        );
    }

    #[test]
    fn what_means_nothing_to_the_service_is_skipped() {
        for ignored in [
            event("m.room.message", json!({"state_key": ""})),
            event("m.room.create", json!({"state_key": ""})),
            event("m.reaction", json!({})),
            event("m.room.name", json!({})),
            event("m.room.member", json!({"state_key": "not a user", "content": {"membership": "join"}})),
            json!({"type": "m.room.message", "room_id": "!r:hs", "sender": "nobody", "event_id": "$e"}),
            json!({"type": "m.room.message"}),
            json!("not an object"),
        ] {
            assert_eq!(parse(&ignored), None, "{ignored}");
        }
    }
}
