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
