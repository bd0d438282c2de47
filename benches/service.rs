//! Latency figures measured against a real Synapse, through the service started exactly as in
//! the tests. Run with `cargo bench --bench service`. Not a test: it prints, it does not judge.

#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{fresh_org, fresh_users, TestApp};
use serde_json::json;

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<48} n={:<3} median {:>8.1} ms   min {:>8.1} ms   max {:>8.1} ms",
        samples.len(),
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", "warn");
    }
    let app = TestApp::spawn().await;
    // Warm-up: the admin token and the room version are fetched once per process.
    app.create_room(json!({"organizationID": fresh_org(), "name": "warm-up"})).await;

    let mut create_ten = Vec::new();
    for _ in 0..7 {
        let users = fresh_users(10);
        let body = json!({"organizationID": fresh_org(), "name": "Bench", "admins": [users[0]],
            "moderators": [users[1]], "assignedUsers": &users[2..]});
        let started = Instant::now();
        app.create_room(body).await;
        create_ten.push(started.elapsed());
    }
    summary("create room with 10 new users (POST /chatrooms)", create_ten);
    app.stop().await;
}
