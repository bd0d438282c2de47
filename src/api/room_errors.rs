//! How a room use case's refusal answers over HTTP.

use crate::{error::ApiError, rooms::RoomError};

impl From<RoomError> for ApiError {
    fn from(err: RoomError) -> Self {
        match err {
            RoomError::NotFound(_)
            | RoomError::NotAMember { .. }
            | RoomError::NotBanned { .. }
            | RoomError::NotMuted { .. }
            | RoomError::NotInRoster(_) => ApiError::not_found(err.to_string()),
            RoomError::OnlyByRoster { .. } => ApiError::conflict("by_roster", err.to_string()),
            RoomError::NotMutable { .. } => ApiError::conflict("not_mutable", err.to_string()),
            RoomError::NoSuchMessage(_) | RoomError::NotPinned(_) => ApiError::not_found(err.to_string()),
            RoomError::Archived(_) => ApiError::conflict("room_archived", err.to_string()),
            RoomError::AlreadyReported(_) => ApiError::conflict("already_reported", err.to_string()),
            RoomError::NoSuchReport(_) => ApiError::not_found(err.to_string()),
            RoomError::ReportResolved(_) => ApiError::conflict("report_resolved", err.to_string()),
            RoomError::Encrypted(_) => ApiError::conflict("room_encrypted", err.to_string()),
            RoomError::EncryptionFixed(_) => ApiError::conflict("encryption_fixed", err.to_string()),
            RoomError::TruncationRunning(_) => ApiError::conflict("truncation_running", err.to_string()),
            RoomError::TruncationFailed(_) => {
                ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "truncation_failed", err.to_string())
            }
            RoomError::BadPageToken(_) => ApiError::bad_request(err.to_string()),
            RoomError::NotOnHomeserver(_) => ApiError::conflict("room_pending", err.to_string()),
            RoomError::SenderHoldsNoRole { .. } => ApiError::unprocessable(err.to_string()),
            RoomError::CannotPost(_) => ApiError::forbidden(err.to_string()).with_code("cannot_post"),
            RoomError::NotTheSender(_) => ApiError::forbidden(err.to_string()).with_code("not_the_sender"),
            RoomError::HoldsNoRole { .. } | RoomError::Outranked(_) => ApiError::forbidden(err.to_string()),
            RoomError::UserDeactivated(_) => {
                ApiError::forbidden(err.to_string()).with_code("user_deactivated")
            }
            RoomError::Exists => ApiError::conflict("exists", err.to_string()),
            RoomError::RoomFull(_) => ApiError::conflict("room_full", err.to_string()),
            RoomError::IdempotencyKeyReused => {
                ApiError::unprocessable(err.to_string()).with_code("idempotency_key_reused")
            }
            RoomError::TooManyUsers(_)
            | RoomError::TooManyPowerUsers(_)
            | RoomError::DeactivatedUsers(_)
            | RoomError::Invalid(_) => ApiError::unprocessable(err.to_string()),
            RoomError::Homeserver(e) => e.into(),
            RoomError::Sync(e) => e.into(),
            RoomError::Database(e) => e.into(),
        }
    }
}
