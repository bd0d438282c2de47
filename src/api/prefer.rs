//! `Prefer` (RFC 7240) on writes: `wait=N` waits up to N seconds for the homeserver before
//! answering `202`, `respond-async` answers at once. A preference the service does not know,
//! or a malformed one, is ignored (as the RFC asks); an honoured one is named in
//! `Preference-Applied`.

use std::time::Duration;

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::Response,
};

use crate::sync::with_request_wait;

/// The longest wait a caller may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(300);

/// The wait a request's `Prefer` header asks for, and how to name it in `Preference-Applied`.
#[derive(Debug, PartialEq, Eq)]
pub struct Preferred {
    pub wait: Duration,
    pub applied: String,
}

/// Reads `wait` and `respond-async` from every `Prefer` header. Given both, `wait` says how long
/// to try before answering asynchronously (RFC 7240 §4.3); longer waits are cut to `MAX_WAIT`.
pub fn preferred(headers: &HeaderMap) -> Option<Preferred> {
    let mut wait = None;
    let mut respond_async = false;
    let tokens = headers.get_all("prefer").iter().filter_map(|value| value.to_str().ok());
    for token in tokens.flat_map(|value| value.split(',')) {
        // Parameters after `;` refine a preference; none of ours has any.
        let preference = token.split(';').next().unwrap_or_default().trim();
        let (name, value) = match preference.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (preference, None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("respond-async", None) => respond_async = true,
            ("wait", Some(seconds)) if wait.is_none() => {
                wait = seconds.parse::<u64>().ok().map(|s| Duration::from_secs(s).min(MAX_WAIT));
            }
            _ => {}
        }
    }
    match (wait, respond_async) {
        (Some(wait), _) => Some(Preferred { wait, applied: format!("wait={}", wait.as_secs()) }),
        (None, true) => Some(Preferred { wait: Duration::ZERO, applied: "respond-async".to_owned() }),
        (None, false) => None,
    }
}

/// Runs a write with the wait its caller prefers.
pub async fn honour_prefer(request: Request, next: Next) -> Response {
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let Some(preferred) = preferred(request.headers()).filter(|_| writes) else {
        return next.run(request).await;
    };
    let mut response = with_request_wait(preferred.wait, next.run(request)).await;
    if let Ok(applied) = HeaderValue::from_str(&preferred.applied) {
        response.headers_mut().insert("preference-applied", applied);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> Option<Preferred> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("prefer", HeaderValue::from_str(value).unwrap());
        }
        preferred(&headers)
    }

    fn wait(seconds: u64) -> Option<Preferred> {
        Some(Preferred { wait: Duration::from_secs(seconds), applied: format!("wait={seconds}") })
    }

    #[test]
    fn wait_and_respond_async_are_read_from_every_prefer_header() {
        assert_eq!(prefer(&["wait=5"]), wait(5));
        assert_eq!(prefer(&["Wait = \"7\""]), wait(7));
        assert_eq!(prefer(&["return=minimal, wait=0"]), wait(0));
        assert_eq!(prefer(&["handling=lenient", "wait=12"]), wait(12));
        assert_eq!(prefer(&["respond-async, wait=10"]), wait(10), "wait says how long to try first");
        assert_eq!(
            prefer(&["respond-async"]),
            Some(Preferred { wait: Duration::ZERO, applied: "respond-async".to_owned() })
        );
        assert_eq!(prefer(&["wait=100000"]), wait(300), "capped");
        assert_eq!(prefer(&["wait=3", "wait=9"]), wait(3), "the first one counts");
    }

    #[test]
    fn unknown_or_malformed_preferences_are_ignored() {
        assert_eq!(prefer(&[]), None);
        assert_eq!(prefer(&["return=representation"]), None);
        assert_eq!(prefer(&["wait=soon"]), None);
        assert_eq!(prefer(&["wait=-1"]), None);
        assert_eq!(prefer(&["wait"]), None);
        assert_eq!(prefer(&["respond-async=yes"]), None);
    }
}
