use std::time::Duration;

/// A failed homeserver call, classified so the worker knows whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum HomeserverError {
    #[error("homeserver unreachable during {operation}: {message}")]
    Transport { operation: &'static str, message: String },
    #[error("homeserver refused {operation}: HTTP {status} {errcode}: {message}")]
    Matrix {
        operation: &'static str,
        status: u16,
        errcode: String,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("unexpected homeserver answer to {operation}: {message}")]
    Protocol { operation: &'static str, message: String },
}

impl HomeserverError {
    pub fn errcode(&self) -> Option<&str> {
        match self {
            Self::Matrix { errcode, .. } => Some(errcode),
            _ => None,
        }
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Matrix { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// Worth retrying by itself: the network, an overloaded or restarting server, rate limits.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Matrix { status, errcode, .. } => {
                *status >= 500
                    || *status == 429
                    || errcode == "M_LIMIT_EXCEEDED"
                    || errcode == "M_UNKNOWN_TOKEN"
            }
            Self::Protocol { .. } => false,
        }
    }
    /// How long the homeserver asked us to wait (`M_LIMIT_EXCEEDED`'s `retry_after_ms`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Matrix { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
