//! axum's extractors with their rejections turned into our error shape.

use axum::{
    body::Bytes,
    extract::{rejection::JsonRejection, FromRequest, FromRequestParts, MatchedPath, Request},
    http::{header, request::Parts, StatusCode},
};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::{auth::Caller, error::ApiError, rate_limit::Kind, state::AppState};

/// A JSON object as the request body. A content type other than JSON is a `415`, malformed
/// JSON a `400`, and JSON of the wrong shape (not an object, wrong types, missing or unknown
/// fields) a `422` saying which.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(&req) {
            return Err(unsupported_media_type());
        }
        let bytes = read_body(req, state).await?;
        parse_object(&bytes).map(Self)
    }
}

/// A JSON body that may also be left out entirely (then `T::default()`): an empty body without
/// a content type (or with a JSON one). A body of any other content type is a `415`.
pub struct ApiJsonOrEmpty<T>(pub T);

impl<S, T> FromRequest<S> for ApiJsonOrEmpty<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type_given = req.headers().contains_key(header::CONTENT_TYPE);
        let json = has_json_content_type(&req);
        let bytes = read_body(req, state).await?;
        if !json && (content_type_given || !bytes.is_empty()) {
            return Err(unsupported_media_type());
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse_object(&bytes).map(Self)
    }
}

/// `application/json` or any `application/*+json`, as axum's `Json` accepts.
fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

fn unsupported_media_type() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "expected Content-Type: application/json",
    )
}

/// The body, within the configured limit (over it: `413`).
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        let code =
            if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "invalid_request" };
        ApiError::new(status, code, rejection.body_text())
    })
}

/// Every request body is a JSON object: `[]`, `"x"`, `42` or `null` are refused (`422`) even
/// where every field is optional, instead of being read as an empty request.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(bytes) {
            Err(e) => ApiError::bad_request(format!("malformed JSON: {e}")),
            Ok(_) => ApiError::unprocessable("invalid request body: expected a JSON object"),
        });
    }
    axum::Json::<T>::from_bytes(bytes).map(|axum::Json(value)| value).map_err(json_error)
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let message = match &rejection {
        JsonRejection::JsonDataError(e) => format!("invalid request body: {}", source_text(e)),
        JsonRejection::JsonSyntaxError(e) => format!("malformed JSON: {}", source_text(e)),
        other => other.body_text(),
    };
    match status {
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::unprocessable(message),
        _ => ApiError::bad_request(message),
    }
}

fn source_text(err: &dyn std::error::Error) -> String {
    // axum's own text repeats "Failed to deserialize..."; serde's cause says what and where.
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Query parameters; unknown values and wrong types are a 400.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Self)
            .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
    }
}

/// Path parameters; with [`crate::domain::Id`] for ids, an id that is not a positive integer in
/// digits (`abc`, `+7`, `07`, `0`) is a 400.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))),
        }
    }
}

/// The optional `Idempotency-Key` header of creating requests.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value.to_str().unwrap_or_default();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters"));
        }
        Ok(Self(Some(key.to_owned())))
    }
}

/// Who is calling, as the authenticator of the shared state says. A login, credentials or write
/// request also takes one from the caller's rate limit here, before the handler runs: a `429`
/// costs the homeserver nothing.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = state.authenticator.authenticate(parts)?;
        let route = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str);
        if let Some(kind) = route.and_then(|route| Kind::of(&parts.method, route)) {
            state
                .rate_limits
                .check(&caller, kind)
                .map_err(|limited| ApiError::rate_limited(limited.retry_after))?;
        }
        Ok(caller)
    }
}

/// A `limit`/`offset` page: `limit` from 1 to `max` (`default` when absent), `offset` 0 or more.
pub fn page(limit: Option<i64>, offset: Option<i64>, default: i64, max: i64) -> Result<(i64, i64), ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {max}, not {limit}")));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request(format!("offset must not be negative, not {offset}")));
    }
    Ok((limit, offset))
}

/// `archived=`: rooms in use (`false`, the default), archived ones (`true`), or both (`any`).
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArchivedParam {
    #[default]
    False,
    True,
    Any,
}

impl From<ArchivedParam> for crate::store::chatrooms::Archived {
    fn from(param: ArchivedParam) -> Self {
        match param {
            ArchivedParam::False => Self::Exclude,
            ArchivedParam::True => Self::Only,
            ArchivedParam::Any => Self::Any,
        }
    }
}
