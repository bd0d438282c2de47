use reqwest::{Method, StatusCode};

use crate::harness::TestApp;

#[test]
fn the_committed_openapi_document_is_current() {
    let generated = chatrooms::api::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `scripts/openapi.sh` and commit the result"
    );
}

#[test]
fn every_operation_documents_auth_errors_and_the_error_shape() {
    let spec: serde_json::Value = serde_json::from_str(&chatrooms::api::openapi_json()).unwrap();
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["api_token"]["name"], "API-TOKEN");
    assert_eq!(schemes["personal_access_token"]["name"], "Personal-Access-Token");
    assert!(spec["components"]["schemas"]["ErrorBody"].is_object());
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if ["/healthz", "/readyz", "/metrics"].contains(&path.as_str()) {
                continue;
            }
            // The homeserver's own API: its token, and Matrix's error shape.
            if path.starts_with("/_matrix/") || path.starts_with("/transactions/") {
                assert_eq!(operation["security"][0]["hs_token"], serde_json::json!([]), "{method} {path}");
                assert!(operation["responses"]["403"].is_object(), "{method} {path}");
                continue;
            }
            operations += 1;
            let responses = &operation["responses"];
            let unauthorized = &responses["401"]["content"]["application/json"]["schema"]["$ref"];
            assert_eq!(unauthorized, "#/components/schemas/ErrorBody", "{method} {path}");
            // Managing app users and webhooks, and writing rosters, is the backend's alone;
            // everything else (a user's rooms too) takes either scheme.
            let roster = path.contains("/members") || path.contains("/participants");
            let managing_users = path.starts_with("/users/") && !path.ends_with("/chatrooms");
            let everything = path == "/export";
            let backend_only =
                managing_users || everything || path.starts_with("/webhooks") || (roster && method != "get");
            let schemes = if backend_only { 1 } else { 3 };
            assert_eq!(operation["security"].as_array().map(Vec::len), Some(schemes), "{method} {path}");
        }
    }
    assert_eq!(operations, 64);
}

#[tokio::test]
async fn the_service_serves_its_spec_docs_and_probes() {
    let app = TestApp::spawn().await;
    let (status, spec) = app.send(app.anonymous(Method::GET, "/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec, serde_json::from_str::<serde_json::Value>(&chatrooms::api::openapi_json()).unwrap());
    let docs = app.anonymous(Method::GET, "/docs").send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let page = docs.text().await.unwrap();
    assert!(page.contains("<html") && page.contains("chatrooms"), "{page}");
    let (status, health) = app.send(app.anonymous(Method::GET, "/healthz")).await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, ready) = app.send(app.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["homeserver"], "ok");
}
