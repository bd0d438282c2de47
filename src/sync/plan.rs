//! Desired state versus actual state → the homeserver writes that close the gap. Pure, so the
//! decisions are unit-tested; the reconciler only executes them.

use std::collections::BTreeMap;

use ruma::{OwnedUserId, UserId};
use serde_json::{json, Value};

use crate::{
    domain::Role,
    matrix::{power_levels, MatrixIds, Membership, RoomState},
};

pub struct DesiredRoom {
    pub name: String,
    pub avatar: Option<String>,
    pub members: BTreeMap<OwnedUserId, Role>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub name: Option<String>,
    /// New `m.room.avatar` content (`{}` removes the avatar).
    pub avatar: Option<Value>,
    pub power_levels: Option<Value>,
    pub unban: Vec<OwnedUserId>,
    pub invite: Vec<OwnedUserId>,
    pub join: Vec<OwnedUserId>,
    pub kick: Vec<OwnedUserId>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

pub fn plan(desired: &DesiredRoom, actual: &RoomState, ids: &MatrixIds) -> Plan {
    let mut plan = Plan::default();
    if actual.name.as_deref() != Some(desired.name.as_str()) {
        plan.name = Some(desired.name.clone());
    }
    if actual.avatar != desired.avatar {
        plan.avatar = Some(match &desired.avatar {
            Some(url) => json!({ "url": url }),
            None => json!({}),
        });
    }
    let levels = desired.members.iter().filter_map(|(user, role)| Some((user.clone(), role.power_level()?)));
    let users = power_levels::desired_users(levels, ids.bot(), &actual.room_version);
    plan.power_levels = power_levels::with_users(&actual.power_levels, &users);

    for user in desired.members.keys() {
        match actual.members.get(user) {
            Some(Membership::Join) => {}
            Some(Membership::Invite) => plan.join.push(user.clone()),
            Some(Membership::Ban) => {
                plan.unban.push(user.clone());
                plan.invite.push(user.clone());
                plan.join.push(user.clone());
            }
            Some(Membership::Leave | Membership::Knock) | None => {
                plan.invite.push(user.clone());
                plan.join.push(user.clone());
            }
        }
    }
    for (user, membership) in &actual.members {
        let ours = ids.app_user(user).is_some();
        let present = matches!(membership, Membership::Join | Membership::Invite | Membership::Knock);
        if ours && present && !desired.members.contains_key(user) {
            plan.kick.push(user.clone());
        }
    }
    plan
}

/// A room createRoom did not finish (the homeserver crashed midway): the bot never joined, or
/// the power levels that createRoom writes right after the bot's join are missing. Nobody but
/// the bot can be in such a room (invites come last), so it is safe to retire. Later initial
/// state (join rules, history visibility) missing alone does not count: an earlier version
/// finished such rooms, which have members by now, and Synapse's defaults match ours.
pub fn is_half_made(state: &RoomState, bot: &UserId) -> bool {
    !state.members.contains_key(bot) || state.power_levels.is_null()
}

/// The users a new room is created with: its invite list and initial power levels.
pub fn initial_power_users(
    members: &BTreeMap<OwnedUserId, Role>,
    bot: &UserId,
    room_version: &str,
) -> BTreeMap<OwnedUserId, i64> {
    let levels = members.iter().filter_map(|(user, role)| Some((user.clone(), role.power_level()?)));
    power_levels::desired_users(levels, bot, room_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> MatrixIds {
        MatrixIds::new("hs", "app_", "bot").unwrap()
    }
    fn uid(s: &str) -> OwnedUserId {
        UserId::parse(s).unwrap()
    }
    fn in_sync_state() -> RoomState {
        RoomState {
            room_version: "12".into(),
            name: Some("Team".into()),
            avatar: None,
            power_levels: json!({"ban": 50, "users": {"@app_1:hs": 100, "@app_2:hs": 50}}),
            members: BTreeMap::from([
                (uid("@bot:hs"), Membership::Join),
                (uid("@app_1:hs"), Membership::Join),
                (uid("@app_2:hs"), Membership::Join),
                (uid("@app_3:hs"), Membership::Join),
            ]),
        }
    }
    fn desired() -> DesiredRoom {
        DesiredRoom {
            name: "Team".into(),
            avatar: None,
            members: BTreeMap::from([
                (uid("@app_1:hs"), Role::Admin),
                (uid("@app_2:hs"), Role::Moderator),
                (uid("@app_3:hs"), Role::Assigned),
            ]),
        }
    }

    #[test]
    fn a_room_in_sync_needs_no_writes() {
        assert!(plan(&desired(), &in_sync_state(), &ids()).is_empty());
    }

    #[test]
    fn new_members_are_invited_and_joined_and_get_their_level() {
        let mut wanted = desired();
        wanted.members.insert(uid("@app_4:hs"), Role::Moderator);
        let plan = plan(&wanted, &in_sync_state(), &ids());
        assert_eq!(plan.invite, vec![uid("@app_4:hs")]);
        assert_eq!(plan.join, vec![uid("@app_4:hs")]);
        assert_eq!(plan.power_levels.unwrap()["users"]["@app_4:hs"], json!(50));
        assert!(plan.kick.is_empty());
    }

    #[test]
    fn removed_members_are_kicked_and_lose_their_level_but_strangers_stay() {
        let mut wanted = desired();
        wanted.members.remove(&uid("@app_2:hs"));
        let mut actual = in_sync_state();
        actual.members.insert(uid("@someone:elsewhere"), Membership::Join);
        let plan = plan(&wanted, &actual, &ids());
        assert_eq!(plan.kick, vec![uid("@app_2:hs")]);
        assert_eq!(plan.power_levels.unwrap()["users"], json!({"@app_1:hs": 100}));
    }

    #[test]
    fn drift_is_repaired_name_avatar_levels_and_membership() {
        let mut actual = in_sync_state();
        actual.name = Some("Renamed by hand".into());
        actual.avatar = Some("mxc://hs/other".into());
        actual.power_levels["users"]["@app_3:hs"] = json!(100);
        actual.members.insert(uid("@app_1:hs"), Membership::Leave);
        actual.members.insert(uid("@app_2:hs"), Membership::Ban);
        let plan = plan(&desired(), &actual, &ids());
        assert_eq!(plan.name.as_deref(), Some("Team"));
        assert_eq!(plan.avatar, Some(json!({})));
        assert_eq!(plan.power_levels.unwrap()["users"], json!({"@app_1:hs": 100, "@app_2:hs": 50}));
        assert_eq!(plan.unban, vec![uid("@app_2:hs")]);
        assert_eq!(plan.invite, vec![uid("@app_1:hs"), uid("@app_2:hs")]);
        assert_eq!(plan.join, vec![uid("@app_1:hs"), uid("@app_2:hs")]);
    }

    #[test]
    fn an_invited_member_only_needs_to_join() {
        let mut actual = in_sync_state();
        actual.members.insert(uid("@app_3:hs"), Membership::Invite);
        let plan = plan(&desired(), &actual, &ids());
        assert!(plan.invite.is_empty());
        assert_eq!(plan.join, vec![uid("@app_3:hs")]);
    }

    #[test]
    fn a_room_createroom_did_not_finish_is_half_made_and_a_finished_one_is_not() {
        let bot = uid("@bot:hs");
        assert!(!is_half_made(&in_sync_state(), &bot));
        let only_create = RoomState { room_version: "12".into(), ..Default::default() };
        assert!(is_half_made(&only_create, &bot));
        let mut no_levels = in_sync_state();
        no_levels.power_levels = Value::Null;
        assert!(is_half_made(&no_levels, &bot), "the bot joined, the crash came before the levels");
        // A finished room the bot was removed from is not retired: its members and history count.
        let mut bot_left = in_sync_state();
        bot_left.members.insert(bot.clone(), Membership::Leave);
        assert!(!is_half_made(&bot_left, &bot));
    }

    #[test]
    fn rooms_before_version_12_keep_the_bot_at_100() {
        let mut actual = in_sync_state();
        actual.room_version = "10".into();
        actual.power_levels["users"]["@bot:hs"] = json!(100);
        assert!(plan(&desired(), &actual, &ids()).is_empty());
        actual.power_levels["users"].as_object_mut().unwrap().remove("@bot:hs");
        let plan = plan(&desired(), &actual, &ids());
        assert_eq!(plan.power_levels.unwrap()["users"]["@bot:hs"], json!(100));
    }
}
