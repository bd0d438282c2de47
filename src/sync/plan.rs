//! Desired state versus actual state → the homeserver writes that close the gap. Pure, so the
//! decisions are unit-tested; the reconciler only executes them.

use std::collections::{BTreeMap, BTreeSet};

use ruma::{OwnedRoomId, OwnedUserId, UserId};
use serde_json::{json, Value};

use crate::{
    domain::Role,
    matrix::{power_levels, MatrixIds, Membership, RoomState},
};

pub struct DesiredRoom {
    pub name: String,
    pub avatar: Option<String>,
    pub topic: Option<String>,
    pub read_only: bool,
    /// Nobody but the bot posts or changes state; members keep reading.
    pub archived: bool,
    /// The users to have joined with their role: the lists, banned users left out.
    pub members: BTreeMap<OwnedUserId, Role>,
    /// Users to keep banned while their ban lasts, with its reason.
    pub banned: BTreeMap<OwnedUserId, String>,
    /// Users whose ban ended: unbanned where the homeserver still has them banned.
    pub unbanned: BTreeSet<OwnedUserId>,
    /// Assigned users who read but cannot post.
    pub muted: BTreeSet<OwnedUserId>,
    /// The organization's space, named as the room's canonical parent once it exists.
    pub parent: Option<OwnedRoomId>,
}

/// A muted user's power level: below `events_default` (0), so every message is refused.
pub const MUTED_LEVEL: i64 = -1;

/// One change to a user's membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Unban,
    Invite,
    /// The user joins (the appservice acts as them).
    Join,
    Kick,
}

/// One homeserver write, or one user's membership changes in the order they must happen.
#[derive(Debug, PartialEq)]
pub enum Action {
    SetName(String),
    /// `m.room.topic`; an empty topic removes it.
    SetTopic(String),
    /// New `m.room.avatar` content (`{}` removes the avatar).
    SetAvatar(Value),
    /// One write for all role changes: power levels are a single state event.
    SetPowerLevels(Value),
    Membership {
        user: OwnedUserId,
        steps: Vec<Step>,
    },
    /// The user leaves (if there) and cannot come back while banned.
    Ban {
        user: OwnedUserId,
        reason: String,
    },
    /// A room's `m.space.parent` for a space: canonical (its organization's), or removed
    /// (empty content: any other).
    SetParent {
        space: String,
        present: bool,
    },
    /// A space's `m.space.child` for the room: added, or removed (empty content).
    SetChild {
        room: String,
        present: bool,
    },
}

/// What the homeserver needs, in order: room state first (so a joining user finds their power
/// level set), then memberships, joins before kicks. Membership actions of different users are
/// independent of each other.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

pub fn plan(desired: &DesiredRoom, actual: &RoomState, ids: &MatrixIds) -> Plan {
    let mut actions = Vec::new();
    if actual.name.as_deref() != Some(desired.name.as_str()) {
        actions.push(Action::SetName(desired.name.clone()));
    }
    if actual.avatar != desired.avatar {
        actions.push(Action::SetAvatar(match &desired.avatar {
            Some(url) => json!({ "url": url }),
            None => json!({}),
        }));
    }
    if actual.topic != desired.topic {
        actions.push(Action::SetTopic(desired.topic.clone().unwrap_or_default()));
    }
    if let Some(space) = &desired.parent {
        if actual.parents.get(space.as_str()) != Some(&true) {
            actions.push(Action::SetParent { space: space.to_string(), present: true });
        }
        // One parent, the backend's: links to other spaces (a retired one, one set by hand) go.
        for other in actual.parents.keys().filter(|other| other.as_str() != space.as_str()) {
            actions.push(Action::SetParent { space: other.clone(), present: false });
        }
    }
    let levels = desired.members.iter().filter_map(|(user, role)| match role.power_level() {
        Some(level) => Some((user.clone(), level)),
        None => desired.muted.contains(user).then(|| (user.clone(), MUTED_LEVEL)),
    });
    let users = power_levels::desired_users(levels, ids.bot(), &actual.room_version);
    let thresholds = power_levels::Thresholds {
        events_default: power_levels::events_default(desired.read_only),
        archived: desired.archived,
        archived_level: power_levels::archived_level(&actual.room_version),
    };
    actions.extend(
        power_levels::with_levels(&actual.power_levels, &users, thresholds).map(Action::SetPowerLevels),
    );

    for user in desired.members.keys() {
        let steps = match actual.members.get(user) {
            Some(Membership::Join) => continue,
            Some(Membership::Invite) => vec![Step::Join],
            Some(Membership::Ban) => vec![Step::Unban, Step::Invite, Step::Join],
            Some(Membership::Leave | Membership::Knock) | None => vec![Step::Invite, Step::Join],
        };
        actions.push(Action::Membership { user: user.clone(), steps });
    }
    for (user, reason) in &desired.banned {
        if actual.members.get(user) != Some(&Membership::Ban) {
            actions.push(Action::Ban { user: user.clone(), reason: reason.clone() });
        }
    }
    for user in &desired.unbanned {
        let listed = desired.members.contains_key(user) || desired.banned.contains_key(user);
        if !listed && actual.members.get(user) == Some(&Membership::Ban) {
            actions.push(Action::Membership { user: user.clone(), steps: vec![Step::Unban] });
        }
    }
    for (user, membership) in &actual.members {
        // Strangers (other servers' users, or local ones outside our namespace) are not ours to
        // remove; a banned user leaves by the ban.
        let ours = ids.app_user(user).is_some();
        let present = matches!(membership, Membership::Join | Membership::Invite | Membership::Knock);
        let wanted = desired.members.contains_key(user) || desired.banned.contains_key(user);
        if ours && present && !wanted {
            actions.push(Action::Membership { user: user.clone(), steps: vec![Step::Kick] });
        }
    }
    Plan { actions }
}

/// A space's children as wanted (the organization's live rooms) against those it has: the
/// backend owns the list, so children added by hand are removed.
pub fn space_children(desired: &BTreeSet<OwnedRoomId>, actual: &RoomState) -> Vec<Action> {
    let add = desired
        .iter()
        .filter(|room| !actual.children.contains(room.as_str()))
        .map(|room| Action::SetChild { room: room.to_string(), present: true });
    let remove = actual
        .children
        .iter()
        .filter(|room| !desired.iter().any(|wanted| wanted.as_str() == room.as_str()))
        .map(|room| Action::SetChild { room: room.clone(), present: false });
    add.chain(remove).collect()
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
            topic: None,
            pinned: Vec::new(),
            power_levels: json!({"ban": 50, "users": {"@app_1:hs": 100, "@app_2:hs": 50}}),
            members: BTreeMap::from([
                (uid("@bot:hs"), Membership::Join),
                (uid("@app_1:hs"), Membership::Join),
                (uid("@app_2:hs"), Membership::Join),
                (uid("@app_3:hs"), Membership::Join),
            ]),
            ..Default::default()
        }
    }
    /// The membership steps the plan has for `user` (none: `None`).
    fn steps(plan: &Plan, user: &str) -> Option<Vec<Step>> {
        plan.actions.iter().find_map(|action| match action {
            Action::Membership { user: u, steps } if u.as_str() == user => Some(steps.clone()),
            _ => None,
        })
    }
    fn levels(plan: &Plan) -> Option<&Value> {
        plan.actions.iter().find_map(|action| match action {
            Action::SetPowerLevels(levels) => Some(levels),
            _ => None,
        })
    }
    fn desired() -> DesiredRoom {
        DesiredRoom {
            name: "Team".into(),
            avatar: None,
            topic: None,
            read_only: false,
            archived: false,
            banned: BTreeMap::new(),
            unbanned: BTreeSet::new(),
            muted: BTreeSet::new(),
            parent: None,
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
        assert_eq!(steps(&plan, "@app_4:hs"), Some(vec![Step::Invite, Step::Join]));
        assert_eq!(levels(&plan).unwrap()["users"]["@app_4:hs"], json!(50));
        assert_eq!(plan.actions.len(), 2, "{plan:?}");
    }

    #[test]
    fn removed_members_are_kicked_and_lose_their_level_but_strangers_stay() {
        let mut wanted = desired();
        wanted.members.remove(&uid("@app_2:hs"));
        let mut actual = in_sync_state();
        actual.members.insert(uid("@someone:elsewhere"), Membership::Join);
        let plan = plan(&wanted, &actual, &ids());
        assert_eq!(steps(&plan, "@app_2:hs"), Some(vec![Step::Kick]));
        assert_eq!(steps(&plan, "@someone:elsewhere"), None);
        assert_eq!(levels(&plan).unwrap()["users"], json!({"@app_1:hs": 100}));
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
        // In order: the room's state first, so users joining find their levels set.
        assert_eq!(plan.actions[0], Action::SetName("Team".into()));
        assert_eq!(plan.actions[1], Action::SetAvatar(json!({})));
        assert_eq!(levels(&plan).unwrap()["users"], json!({"@app_1:hs": 100, "@app_2:hs": 50}));
        assert!(matches!(plan.actions[2], Action::SetPowerLevels(_)));
        assert_eq!(steps(&plan, "@app_1:hs"), Some(vec![Step::Invite, Step::Join]));
        assert_eq!(steps(&plan, "@app_2:hs"), Some(vec![Step::Unban, Step::Invite, Step::Join]));
        assert_eq!(plan.actions.len(), 5);
    }

    #[test]
    fn an_invited_member_only_needs_to_join() {
        let mut actual = in_sync_state();
        actual.members.insert(uid("@app_3:hs"), Membership::Invite);
        let plan = plan(&desired(), &actual, &ids());
        assert_eq!(steps(&plan, "@app_3:hs"), Some(vec![Step::Join]));
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
        assert_eq!(levels(&plan).unwrap()["users"]["@bot:hs"], json!(100));
    }

    /// Every membership a user can have, wanted or not, ours or a stranger's, in room versions
    /// 11 and 12: the steps the plan takes, and that the rest of the room needs nothing.
    #[test]
    fn each_membership_wanted_or_not_ours_or_a_strangers_gets_its_steps() {
        use Membership::*;
        let memberships = [Some(Join), Some(Invite), Some(Leave), Some(Ban), Some(Knock), None];
        let expected = |membership: Option<Membership>, wanted: bool, ours: bool| -> Option<Vec<Step>> {
            match (wanted, ours, membership) {
                (true, _, Some(Join)) => None,
                (true, _, Some(Invite)) => Some(vec![Step::Join]),
                (true, _, Some(Ban)) => Some(vec![Step::Unban, Step::Invite, Step::Join]),
                (true, _, Some(Leave | Knock) | None) => Some(vec![Step::Invite, Step::Join]),
                (false, true, Some(Join | Invite | Knock)) => Some(vec![Step::Kick]),
                (false, true, Some(Leave | Ban) | None) => None,
                (false, false, _) => None,
            }
        };
        for version in ["11", "12"] {
            for membership in memberships {
                // Strangers are never wanted: desired members are app users only.
                for (wanted, ours) in [(true, true), (false, true), (false, false)] {
                    let user = if ours { "@app_9:hs" } else { "@app_9:elsewhere" };
                    let mut actual = in_sync_state();
                    actual.room_version = version.into();
                    if version == "11" {
                        actual.power_levels["users"]["@bot:hs"] = json!(100);
                    }
                    if let Some(membership) = membership {
                        actual.members.insert(uid(user), membership);
                    }
                    let mut wanted_room = desired();
                    if wanted {
                        wanted_room.members.insert(uid(user), Role::Assigned);
                    }
                    let plan = plan(&wanted_room, &actual, &ids());
                    let case = format!("v{version} {membership:?} wanted={wanted} ours={ours}: {plan:?}");
                    assert_eq!(steps(&plan, user), expected(membership, wanted, ours), "{case}");
                    let others =
                        plan.actions.iter().filter(|a| !matches!(a, Action::Membership { .. })).count();
                    assert_eq!(others, 0, "an assigned user needs no state change: {case}");
                }
            }
        }
    }

    #[test]
    fn topic_and_read_only_are_set_cleared_and_left_alone_when_they_match() {
        let mut wanted = desired();
        wanted.topic = Some("Agenda".into());
        wanted.read_only = true;
        let first = plan(&wanted, &in_sync_state(), &ids());
        assert!(first.actions.contains(&Action::SetTopic("Agenda".into())), "{first:?}");
        let read_only = levels(&first).expect("read-only raises events_default");
        assert_eq!(read_only["events_default"], 50);
        assert_eq!(read_only["ban"], 50, "other keys stay");

        let mut applied = in_sync_state();
        applied.topic = Some("Agenda".into());
        applied.power_levels = read_only.clone();
        assert!(plan(&wanted, &applied, &ids()).is_empty());

        wanted.topic = None;
        wanted.read_only = false;
        let undone = plan(&wanted, &applied, &ids());
        assert!(
            undone.actions.contains(&Action::SetTopic(String::new())),
            "an empty topic clears it: {undone:?}"
        );
        assert_eq!(levels(&undone).expect("back to 0")["events_default"], 0);
    }

    #[test]
    fn a_banned_user_is_banned_not_kicked_and_unbanned_once_the_ban_ends() {
        let mut wanted = desired();
        // @app_3 is listed but banned; @app_9 holds no role and is banned too.
        wanted.members.remove(&uid("@app_3:hs"));
        wanted.banned.insert(uid("@app_3:hs"), "spam".into());
        wanted.banned.insert(uid("@app_9:hs"), String::new());
        let first = plan(&wanted, &in_sync_state(), &ids());
        let bans: Vec<_> = first
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Ban { user, reason } => Some((user.as_str(), reason.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(bans, [("@app_3:hs", "spam"), ("@app_9:hs", "")]);
        assert_eq!(steps(&first, "@app_3:hs"), None, "banned, not also kicked");

        let mut applied = in_sync_state();
        applied.members.insert(uid("@app_3:hs"), Membership::Ban);
        applied.members.insert(uid("@app_9:hs"), Membership::Ban);
        assert!(plan(&wanted, &applied, &ids()).is_empty(), "an unban by hand would show here");

        // Both bans end: the listed user comes back, the other is only unbanned.
        let mut ended = desired();
        ended.unbanned = BTreeSet::from([uid("@app_3:hs"), uid("@app_9:hs")]);
        let after = plan(&ended, &applied, &ids());
        assert_eq!(steps(&after, "@app_3:hs"), Some(vec![Step::Unban, Step::Invite, Step::Join]));
        assert_eq!(steps(&after, "@app_9:hs"), Some(vec![Step::Unban]));
        applied.members.remove(&uid("@app_9:hs"));
        assert_eq!(steps(&plan(&ended, &applied, &ids()), "@app_9:hs"), None, "not banned any more");
    }

    #[test]
    fn a_muted_assigned_user_gets_power_level_minus_one_until_the_mute_ends() {
        let mut wanted = desired();
        wanted.muted.insert(uid("@app_3:hs"));
        // A mute of an admin would not lower them: only assigned users are muted.
        wanted.muted.insert(uid("@app_1:hs"));
        let muted = plan(&wanted, &in_sync_state(), &ids());
        let users = &levels(&muted).expect("the mute changes power levels")["users"];
        assert_eq!(users["@app_3:hs"], MUTED_LEVEL);
        assert_eq!(users["@app_1:hs"], 100);
        wanted.muted.clear();
        let mut applied = in_sync_state();
        applied.power_levels = levels(&muted).unwrap().clone();
        let restored = plan(&wanted, &applied, &ids());
        assert!(levels(&restored).expect("restored")["users"].get("@app_3:hs").is_none());
    }

    #[test]
    fn a_room_names_its_space_once_and_a_space_keeps_exactly_its_rooms_as_children() {
        let space = ruma::RoomId::parse("!space:hs").unwrap();
        let mut wanted = desired();
        wanted.parent = Some(space.clone());
        let first = plan(&wanted, &in_sync_state(), &ids());
        assert_eq!(first.actions, [Action::SetParent { space: space.to_string(), present: true }]);
        let mut linked = in_sync_state();
        linked.parents.insert("!space:hs".into(), false);
        assert_eq!(plan(&wanted, &linked, &ids()).actions.len(), 1, "a parent link must be canonical");
        linked.parents.insert("!space:hs".into(), true);
        assert!(plan(&wanted, &linked, &ids()).is_empty());
        linked.parents.insert("!elsewhere:hs".into(), true);
        assert_eq!(
            plan(&wanted, &linked, &ids()).actions,
            [Action::SetParent { space: "!elsewhere:hs".into(), present: false }],
            "another space's link goes"
        );

        let (a, b) = (ruma::RoomId::parse("!a:hs").unwrap(), ruma::RoomId::parse("!b:hs").unwrap());
        let mut space_state = in_sync_state();
        space_state.children = BTreeSet::from(["!b:hs".to_owned(), "!by-hand:hs".to_owned()]);
        let children = space_children(&BTreeSet::from([a, b]), &space_state);
        assert_eq!(
            children,
            [
                Action::SetChild { room: "!a:hs".into(), present: true },
                Action::SetChild { room: "!by-hand:hs".into(), present: false },
            ]
        );
    }

    #[test]
    fn joins_come_before_kicks_and_state_before_both() {
        let mut wanted = desired();
        wanted.members.remove(&uid("@app_3:hs"));
        wanted.members.insert(uid("@app_4:hs"), Role::Admin);
        wanted.name = "Renamed".into();
        let plan = plan(&wanted, &in_sync_state(), &ids());
        let kinds: Vec<&str> = plan
            .actions
            .iter()
            .map(|a| match a {
                Action::SetName(_) => "name",
                Action::SetAvatar(_) => "avatar",
                Action::SetTopic(_) => "topic",
                Action::SetPowerLevels(_) => "levels",
                Action::SetParent { .. } | Action::SetChild { .. } => "space",
                Action::Ban { .. } => "ban",
                Action::Membership { steps, .. } if steps.contains(&Step::Kick) => "kick",
                Action::Membership { .. } => "join",
            })
            .collect();
        assert_eq!(kinds, ["name", "levels", "join", "kick"]);
    }
}
