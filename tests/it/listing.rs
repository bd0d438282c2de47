use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{fresh_org, TestApp};

#[tokio::test]
async fn rooms_are_listed_in_stable_pages_with_a_total() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    let mut ids = Vec::new();
    for i in 0..13 {
        ids.push(
            app.create_room(json!({"organizationID": org, "name": format!("Room {i}")})).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    app.create_room(json!({"organizationID": org + 1, "name": "Elsewhere"})).await;

    let page = |query: String| {
        let app = &app;
        async move {
            let (status, page) =
                app.send(app.request(Method::GET, &format!("/chatrooms?organization_id={org}{query}"))).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let got: Vec<i64> =
                page["entries"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
            (got, page["total"].as_i64().unwrap())
        }
    };
    assert_eq!(page(String::new()).await, (ids[..10].to_vec(), 13), "default limit 10");
    assert_eq!(page("&limit=5&offset=10".into()).await, (ids[10..].to_vec(), 13));
    assert_eq!(page("&limit=50&offset=13".into()).await, (vec![], 13));
    assert_eq!(page("&all=true&limit=1".into()).await, (ids.clone(), 13), "all ignores limit");
    assert_eq!(page("&limit=1&offset=3".into()).await, (vec![ids[3]], 13));
}

#[tokio::test]
async fn all_lists_up_to_a_thousand_rooms_and_pages_past_the_end_keep_their_total() {
    let app = TestApp::spawn().await;
    let org = fresh_org();
    // Stored directly, as created and in sync (no job): a thousand Matrix rooms would take long.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1001) \
         INSERT INTO chatrooms (kind, organization_id, name, automation_enabled, matrix_room_id, \
           matrix_alias, created_at, updated_at) \
         SELECT 'custom', $1, 'Bulk', 0, '!bulk' || CAST(i AS TEXT) || ':localhost', \
           'bulk-' || CAST($1 AS TEXT) || '-' || CAST(i AS TEXT), 0, 0 FROM n",
    )
    .bind(org)
    .execute(app.state.store.pool())
    .await
    .unwrap();
    let list =
        |query: &str| app.send(app.request(Method::GET, &format!("/chatrooms?organization_id={org}{query}")));

    let (status, refused) = list("&all=true").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"]["code"], "too_many_to_list", "{refused}");
    let (status, last) = list("&limit=50&offset=1000").await;
    assert_eq!(
        (status, last["entries"].as_array().unwrap().len(), last["total"].as_i64()),
        (StatusCode::OK, 1, Some(1001))
    );
    let (status, past) = list("&limit=50&offset=5000").await;
    assert_eq!(
        (status, past["entries"].as_array().unwrap().len(), past["total"].as_i64()),
        (StatusCode::OK, 0, Some(1001))
    );

    // One fewer, and `all` lists them all.
    sqlx::query("UPDATE chatrooms SET deleted_at = 1 WHERE id = (SELECT MAX(id) FROM chatrooms WHERE organization_id = $1)")
        .bind(org)
        .execute(app.state.store.pool())
        .await
        .unwrap();
    let (status, all) = list("&all=true").await;
    assert_eq!(
        (status, all["entries"].as_array().unwrap().len(), all["total"].as_i64()),
        (StatusCode::OK, 1000, Some(1000))
    );
}
