//! The homeserver killed with SIGKILL while it creates rooms: Synapse can leave a half-made room
//! behind the reserved alias (the alias bound, the bot never joined: no state at all, or only
//! `m.room.create`). Without anyone asking, every chatroom still ends with exactly one complete
//! Matrix room that its alias names.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, Instant},
};

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{fresh_org, fresh_users, FaultProxy, MatrixView, PrivateHomeserver, TestApp};

const ROOMS_PER_ROUND: usize = 30;
const MAX_ROUNDS: usize = 5;
/// How long after the first alias appears the kill lands, per round. Synapse works through
/// concurrent createRooms almost in lockstep: right after the first alias, most rooms have
/// their alias and no event; some hundreds of milliseconds later, only `m.room.create`.
const KILL_AFTER_FIRST_ALIAS_MS: [u64; MAX_ROUNDS] = [150, 400, 0, 700, 250];

fn enc(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

/// The alias localpart of each chatroom, from the service's database.
async fn aliases(app: &TestApp) -> HashMap<i64, String> {
    use sqlx::Row;
    sqlx::query("SELECT id, matrix_alias FROM chatrooms")
        .fetch_all(app.state.store.pool())
        .await
        .expect("reading the aliases")
        .into_iter()
        .map(|row| (row.get::<i64, _>("id"), row.get::<String, _>("matrix_alias")))
        .collect()
}

/// The room the alias names on the homeserver, if any (asked as the bot, as the service does).
async fn resolve(matrix: &MatrixView, alias: &str) -> Option<String> {
    let path = format!("/_matrix/client/v3/directory/room/{}", enc(alias));
    let (status, body) = matrix.call(Method::GET, &path, matrix.as_token(), None).await;
    match status {
        StatusCode::OK => Some(body["room_id"].as_str().expect("a room id").to_owned()),
        StatusCode::NOT_FOUND => None,
        other => panic!("resolving {alias} answered {other}: {body}"),
    }
}

/// The room's state event types as the homeserver's admin sees it, and whether the bot joined.
async fn admin_state(hs: &PrivateHomeserver, room_id: &str) -> (Vec<String>, bool) {
    let (status, body) =
        hs.admin_call(Method::GET, &format!("/_synapse/admin/v1/rooms/{}/state", enc(room_id)), None).await;
    assert_eq!(status, StatusCode::OK, "admin room state: {body}");
    let events = body["state"].as_array().expect("a state array");
    let bot = format!("@{}:{}", hs.hs.env["CHATROOMS_MATRIX_BOT_LOCALPART"], hs.hs.server_name);
    let bot_joined = events.iter().any(|e| {
        e["type"] == "m.room.member" && e["state_key"] == bot.as_str() && e["content"]["membership"] == "join"
    });
    let mut types: Vec<String> =
        events.iter().map(|e| e["type"].as_str().unwrap_or("?").to_owned()).collect();
    types.sort();
    (types, bot_joined)
}

async fn all_rooms(app: &TestApp, org: i64) -> Vec<Value> {
    let (status, page) =
        app.send(app.request(Method::GET, &format!("/chatrooms?organization_id={org}&all=true"))).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["entries"].as_array().expect("entries").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_homeserver_killed_mid_create_leaves_every_chatroom_one_complete_room() {
    let started = Instant::now();
    // Dropped last (declared first): a failing assertion stops the service, then Synapse.
    let hs = PrivateHomeserver::start().await;
    // The service reaches Synapse through a proxy, cut while the test looks at what the kill
    // left, so the service cannot repair anything before it has been seen.
    let proxy = FaultProxy::start(&hs.hs.url).await;
    let proxy_url = proxy.url.clone();
    let app = TestApp::spawn_against(hs.hs, move |env| {
        env.insert("CHATROOMS_HOMESERVER_URL".into(), proxy_url);
        // Answer at once (202): the creates run on in the background when the kill lands.
        env.insert("CHATROOMS_SYNC_WAIT_MS".into(), "50".into());
        env.insert("CHATROOMS_HOMESERVER_TIMEOUT_MS".into(), "5000".into());
    })
    .await;
    let matrix = MatrixView::new(hs.hs);
    let org = fresh_org();
    let mut assigned: BTreeMap<i64, i64> = BTreeMap::new(); // chatroom -> its one assigned user
    let mut half_made: Vec<(String, Vec<String>)> = Vec::new();

    for (round, kill_after_ms) in KILL_AFTER_FIRST_ALIAS_MS.into_iter().enumerate() {
        let users = fresh_users(ROOMS_PER_ROUND);
        let answers = join_all(users.iter().enumerate().map(|(i, user)| {
            let request = app.request(Method::POST, "/chatrooms").json(&json!({
                "organizationID": org, "name": format!("Crash {round}-{i}"), "assignedUsers": [user],
            }));
            app.send(request)
        }))
        .await;
        let mut this_round = Vec::new();
        for ((status, body), user) in answers.into_iter().zip(&users) {
            assert!(
                status == StatusCode::CREATED || status == StatusCode::ACCEPTED,
                "create answered {status}: {body}"
            );
            let id = body["id"].as_i64().expect("a chatroom id");
            assigned.insert(id, *user);
            this_round.push(id);
        }
        let alias_of = aliases(&app).await;
        let full_alias = |id: &i64| format!("#{}:{}", alias_of[id], hs.hs.server_name);

        // Kill once the homeserver is in the middle of it: the first alias of the round is bound.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let resolved = join_all(this_round.iter().map(|id| {
                let alias = full_alias(id);
                let matrix = &matrix;
                async move { resolve(matrix, &alias).await }
            }))
            .await;
            if resolved.iter().any(Option::is_some) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        proxy.cut();
        hs.kill();
        hs.restart().await;

        // What did the kill leave? Rooms the alias names but the bot never joined.
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for id in &this_round {
            let alias = full_alias(id);
            let kind = match resolve(&matrix, &alias).await {
                None => "no alias yet".to_owned(),
                Some(room_id) => {
                    let (types, bot_joined) = admin_state(&hs, &room_id).await;
                    if bot_joined {
                        format!("bot joined, {} state events", types.len())
                    } else {
                        half_made.push((alias.clone(), types.clone()));
                        format!("HALF-MADE: state {types:?}")
                    }
                }
            };
            *kinds.entry(kind).or_default() += 1;
        }
        eprintln!("round {round}: killed {} ms after the first alias; {kinds:?}", kill_after_ms);
        proxy.restore();
        if !half_made.is_empty() {
            break;
        }
    }
    assert!(
        !half_made.is_empty(),
        "no kill in {MAX_ROUNDS} rounds left a half-made room: the test did not test anything"
    );
    eprintln!("{} half-made rooms after the kill, e.g. {:?}", half_made.len(), half_made[0]);

    // Nobody calls anything: the service must repair on its own.
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(180);
    let rooms = loop {
        let rooms = all_rooms(&app, org).await;
        if rooms.len() == assigned.len() && rooms.iter().all(|r| r["syncStatus"] == "synced") {
            break rooms;
        }
        if Instant::now() > deadline {
            let mut stuck: BTreeMap<String, usize> = BTreeMap::new();
            for r in rooms.iter().filter(|r| r["syncStatus"] != "synced") {
                *stuck.entry(format!("{} / {}", r["syncStatus"], r["syncError"])).or_default() += 1;
            }
            panic!(
                "{} of {} chatrooms not synced 180 s after the homeserver came back: {stuck:#?}",
                stuck.values().sum::<usize>(),
                assigned.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "{} chatrooms synced {} ms after the last restart",
        rooms.len(),
        restarted.elapsed().as_millis()
    );

    let alias_of = aliases(&app).await;
    let bot = format!("@{}:{}", hs.hs.env["CHATROOMS_MATRIX_BOT_LOCALPART"], hs.hs.server_name);
    for room in &rooms {
        let id = room["id"].as_i64().unwrap();
        let room_id = room["matrixRoomID"].as_str().unwrap_or_else(|| panic!("no Matrix room: {room}"));
        let seen = matrix.room(room_id).await;
        assert_eq!(seen.name.as_deref(), room["name"].as_str(), "{room_id}");
        assert!(seen.joined.contains(&bot), "the bot is in {room_id}: {seen:?}");
        let user = format!("@app_{}:{}", assigned[&id], hs.hs.server_name);
        assert!(seen.joined.contains(&user), "{user} is in {room_id}: {seen:?}");
        // Absent join rules mean invite; absent guest access means forbidden.
        assert!(matches!(seen.join_rule.as_deref(), None | Some("invite")), "{seen:?}");
        assert!(matches!(seen.guest_access.as_deref(), None | Some("forbidden")), "{seen:?}");
        let alias = format!("#{}:{}", alias_of[&id], hs.hs.server_name);
        assert_eq!(
            resolve(&matrix, &alias).await.as_deref(),
            Some(room_id),
            "{alias} names the chatroom's room"
        );
    }

    let (status, joined) =
        matrix.call(Method::GET, "/_matrix/client/v3/joined_rooms", matrix.as_token(), None).await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let joined: BTreeSet<String> = joined["joined_rooms"]
        .as_array()
        .expect("joined_rooms")
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    // And the organization's space, made (or made again if the kill left it half-made) alongside.
    let space = loop {
        let (_, organization) = app.send(app.request(Method::GET, &format!("/organizations/{org}"))).await;
        if let (Some(space), "synced") =
            (organization["matrixSpaceID"].as_str(), organization["syncStatus"].as_str().unwrap_or_default())
        {
            break space.to_owned();
        }
        assert!(Instant::now() < deadline, "the organization's space is not synced: {organization}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut expected: BTreeSet<String> =
        rooms.iter().map(|room| room["matrixRoomID"].as_str().unwrap().to_owned()).collect();
    expected.insert(space);
    assert_eq!(joined, expected, "one Matrix room per chatroom and the space, no second one for the bot");
    eprintln!("test took {} s", started.elapsed().as_secs());
    app.stop().await;
}
