//! HTTP API: one module per resource. Routes are registered through utoipa's `routes!`, so a
//! handler cannot be served without being in the OpenAPI document.

pub mod appservice;
pub mod blocklists;
pub mod chatrooms;
pub mod default_rooms;
pub mod event_rooms;
pub mod export;
mod extract;
pub mod health;
pub mod members;
pub mod messages;
pub mod moderation;
pub mod organizations;
mod prefer;
pub mod reports;
mod room_errors;
pub mod rosters;
mod standing;
pub mod user_session;
pub mod users;
pub mod webhooks;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, MatchedPath},
    http::{header, Extensions, HeaderMap, Method, StatusCode},
    response::{Html, IntoResponse},
    Router,
};
use tower::ServiceBuilder;
use tower_http::{
    compression::CompressionLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use tracing::Level;
use utoipa::{
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_axum::{router::OpenApiRouter, routes};
use utoipa_scalar::Scalar;

use crate::{error::ApiError, metrics, rate_limit::Kind, state::AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatrooms",
        description = "Keeps chat rooms on a Matrix homeserver in step with the messenger's backend.\n\n\
            Every error answers with `{\"error\": {\"code\", \"message\"}}`. Writes are stored first and then \
            applied to the homeserver: `201`/`200`/`204` mean the homeserver has the change, `202` means it \
            is stored and being retried (`syncStatus` tells).\n\n\
            Logins, credentials and writes are rate limited per caller (each app user by their JWT; the \
            backend's token has a higher limit of its own): past it they answer `429` (`rate_limited`) with \
            `Retry-After` in seconds."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "chatrooms", description = "Chatrooms and their role lists"),
        (name = "moderation", description = "Bans and mutes, timed or until lifted"),
        (name = "messages", description = "Sending, reading, searching, editing and redacting a room's messages"),
        (name = "reports", description = "Reported messages and the moderation queue"),
        (name = "user", description = "The caller's Matrix account: credentials, login, devices"),
        (name = "organizations", description = "Organizations: their Matrix space, and the rosters (members, event participants) automated rooms follow"),
        (name = "users", description = "App users as the backend manages them"),
        (name = "webhooks", description = "Events posted to the backend (Standard Webhooks) and their delivery log"),
        (name = "health", description = "Probes"),
        (name = "appservice", description = "What the homeserver pushes to the service (application-service API)"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "API-TOKEN",
                "The messenger backend's token: may do everything.",
            ))),
        );
        components.add_security_scheme(
            "personal_access_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Personal-Access-Token",
                "An app user's JWT: `sub` is the app user id; optional claim \
                 `organizations: [{\"id\": 7, \"admin\": true}]`.",
            ))),
        );
        components.add_security_scheme(
            "hs_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The homeserver's `hs_token` from the appservice registration."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The same JWT as Personal-Access-Token, as `Authorization: Bearer`."))
                    .build(),
            ),
        );
    }
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(appservice::put_transaction))
        .routes(routes!(appservice::put_legacy_transaction))
        .routes(routes!(appservice::query_user))
        .routes(routes!(appservice::query_alias))
        .routes(routes!(appservice::ping))
        .routes(routes!(chatrooms::sync_chatroom))
        .routes(routes!(chatrooms::archive_chatroom))
        .routes(routes!(chatrooms::unarchive_chatroom))
        .routes(routes!(chatrooms::list_chatrooms, chatrooms::create_chatroom))
        .routes(routes!(chatrooms::chatroom_by_event))
        .routes(routes!(chatrooms::get_chatroom, chatrooms::update_chatroom, chatrooms::delete_chatroom))
        .routes(routes!(members::add_users))
        .routes(routes!(members::remove_user))
        .routes(routes!(members::claim_chatroom))
        .routes(routes!(moderation::ban_user, moderation::list_bans))
        .routes(routes!(moderation::lift_ban))
        .routes(routes!(moderation::mute_user, moderation::list_mutes))
        .routes(routes!(moderation::unmute_user))
        .routes(routes!(messages::send_message, messages::list_messages))
        .routes(routes!(messages::search_organization_messages))
        .routes(routes!(reports::report_message))
        .routes(routes!(reports::room_reports))
        .routes(routes!(reports::organization_reports))
        .routes(routes!(reports::resolve_report))
        .routes(routes!(messages::redact_message, messages::edit_message))
        .routes(routes!(messages::pin_message, messages::unpin_message))
        .routes(routes!(messages::truncate_history))
        .routes(routes!(messages::truncation_status))
        .routes(routes!(default_rooms::create_default_chatroom))
        .routes(routes!(default_rooms::remove_default_chatroom))
        .routes(routes!(event_rooms::put_event_chatroom, event_rooms::delete_event_chatroom))
        .routes(routes!(user_session::get_credentials))
        .routes(routes!(user_session::login))
        .routes(routes!(user_session::list_devices, user_session::logout_all_devices))
        .routes(routes!(user_session::logout_device))
        .routes(routes!(users::update_user, users::deactivate_user))
        .routes(routes!(users::list_user_chatrooms))
        .routes(routes!(blocklists::get_organization_blocklist, blocklists::put_organization_blocklist))
        .routes(routes!(blocklists::get_room_blocklist, blocklists::put_room_blocklist))
        .routes(routes!(webhooks::create_subscription, webhooks::list_subscriptions))
        .routes(routes!(webhooks::get_subscription, webhooks::delete_subscription))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(organizations::get_organization, organizations::put_organization))
        .routes(routes!(export::export_organization))
        .routes(routes!(export::export_everything))
        .routes(routes!(rosters::put_members, rosters::add_members, rosters::list_members))
        .routes(routes!(rosters::remove_member))
        .routes(routes!(rosters::put_participants, rosters::add_participants, rosters::list_participants))
        .routes(routes!(rosters::remove_participant))
}

/// The OpenAPI document, as committed in `openapi/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_prefer_header(with_rate_limit_responses(api_routes().into_openapi()))
}

/// Adds the `429` to every operation the caller's rate limit applies to ([`Kind::of`] decides
/// for the spec as for the requests).
fn with_rate_limit_responses(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{
        content::Content, header::Header, path::Operation, schema::Ref, ObjectBuilder, ResponseBuilder, Type,
    };
    let response = ResponseBuilder::new()
        .description(
            "The caller's rate limit for logins, credentials or writes is spent (`rate_limited`); \
             `Retry-After` says in how many seconds to try again",
        )
        .header("Retry-After", Header::new(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1))))
        .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
        .build();
    for (path, item) in spec.paths.paths.iter_mut() {
        let operations: [(Method, &mut Option<Operation>); 5] = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation.as_mut().filter(|_| Kind::of(&method, path).is_some()) {
                operation.responses.responses.insert("429".to_owned(), response.clone().into());
            }
        }
    }
    spec
}

/// Every operation that can answer `202` (a change still reaching the homeserver) takes
/// `Prefer: wait=N` / `respond-async`, and names an honoured one in `Preference-Applied`.
fn with_prefer_header(mut spec: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{
        header::Header,
        path::{ParameterBuilder, ParameterIn},
        ObjectBuilder, RefOr, Required, Type,
    };
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let parameter = ParameterBuilder::new()
        .name("Prefer")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(format!(
            "RFC 7240: `wait=N` waits up to N seconds (at most {}) for the homeserver before \
             answering `202`; `respond-async` answers at once (with `wait`, `wait` says how long \
             to try first). Without it a write waits `CHATROOMS_SYNC_WAIT_MS`. Other preferences \
             are ignored.",
            prefer::MAX_WAIT.as_secs()
        )))
        .schema(Some(string()))
        .build();
    let applied = Header::builder()
        .schema(string())
        .description(Some("The `Prefer` preference honoured (`wait=N` or `respond-async`)".to_owned()))
        .build();
    for item in spec.paths.paths.values_mut() {
        let operations = [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for operation in operations.into_iter().flatten() {
            if !operation.responses.responses.contains_key("202") {
                continue;
            }
            operation.parameters.get_or_insert_with(Vec::new).push(parameter.clone());
            for (code, response) in operation.responses.responses.iter_mut() {
                if let (true, RefOr::T(response)) = (code.starts_with('2'), response) {
                    response.headers.insert("Preference-Applied".to_owned(), applied.clone());
                }
            }
        }
    }
    spec
}

pub fn openapi_json() -> String {
    openapi().to_pretty_json().expect("the OpenAPI document serializes")
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.body_max_bytes;
    let (router, spec) = api_routes().split_for_parts();
    let spec = with_prefer_header(with_rate_limit_responses(spec));
    // Rendered once, shared by reference: axum clones every route's handler for each connection
    // (and as the router is layered), and the document (its structs, the docs page) is megabytes.
    let spec_json = Bytes::from(serde_json::to_vec(&spec).expect("the OpenAPI document serializes"));
    let docs = Bytes::from(Scalar::new(spec).to_html());
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let body = spec_json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .route(
            "/docs",
            axum::routing::get(move || {
                let page = docs.clone();
                async move { Html(page) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this path",
            )
            .into_response()
        })
        // Enforced where bodies are read (the JSON extractor), so the 413 has our error shape.
        .layer(DefaultBodyLimit::max(body_limit))
        // Exports only: the other answers are small, and compressing them costs more than it saves.
        .layer(CompressionLayer::new().gzip(true).compress_when(
            |_, _, headers: &HeaderMap, _: &Extensions| {
                headers.get(header::CONTENT_TYPE).is_some_and(|kind| kind == export::NDJSON)
            },
        ))
        .layer(axum::middleware::from_fn(prefer::honour_prefer))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track_http))
        // Outermost first: the id is set (or the caller's kept), the request's span carries it,
        // and the response echoes it.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id()),
        )
        .with_state(state)
}

/// Every log line of a request, including those of the syncs it waits for, is in this span.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("request", request_id, method = %request.method(), route)
}
