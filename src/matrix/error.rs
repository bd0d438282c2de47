use std::time::Duration;

/// A failed homeserver call, classified so the worker knows whether to retry.
#[derive(Debug, thiserror::Error)]
pub enum HomeserverError {
    /// No answer: connection refused or reset, a timeout. Never carries the homeserver's URL.
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

/// What a failure means for whoever waits on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The network, an overloaded or restarting server, rate limits: retry by itself.
    Transient,
    /// The homeserver said no; repeating the same request may not help.
    Refused,
    /// The homeserver refuses the service's own token: an operator must fix the configuration.
    Configuration,
}

impl FailureKind {
    /// As stored with a failed job and shown in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Refused => "refused",
            Self::Configuration => "configuration",
        }
    }
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
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Transport { .. } => FailureKind::Transient,
            Self::Matrix { errcode, .. } if errcode == "M_UNKNOWN_TOKEN" => FailureKind::Configuration,
            Self::Matrix { status, errcode, .. } => {
                if *status >= 500 || *status == 429 || errcode == "M_LIMIT_EXCEEDED" {
                    FailureKind::Transient
                } else {
                    FailureKind::Refused
                }
            }
            Self::Protocol { .. } => FailureKind::Refused,
        }
    }
    /// The answer's class, as metrics label it: `unreachable` (no answer), `rate_limited`,
    /// `server_error` (5xx), `client_error` (another 4xx), `invalid_answer`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Transport { .. } => "unreachable",
            Self::Matrix { status: 429, .. } => "rate_limited",
            Self::Matrix { errcode, .. } if errcode == "M_LIMIT_EXCEEDED" => "rate_limited",
            Self::Matrix { status, .. } if *status >= 500 => "server_error",
            Self::Matrix { .. } => "client_error",
            Self::Protocol { .. } => "invalid_answer",
        }
    }
    /// Worth retrying by itself.
    pub fn is_transient(&self) -> bool {
        self.kind() == FailureKind::Transient
    }
    /// How long the homeserver asked us to wait (`M_LIMIT_EXCEEDED`'s `retry_after_ms`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Matrix { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
