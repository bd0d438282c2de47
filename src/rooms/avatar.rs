//! Avatar uploads: before anything is written, and deleted again when the request then fails.

use ruma::OwnedMxcUri;

use crate::{domain::Avatar, matrix::HomeserverError, state::AppState};

/// Uploads the avatar before anything is written: if the homeserver cannot take it now, the
/// request is refused whole instead of half-accepted.
pub async fn upload_avatar(state: &AppState, avatar: &Avatar) -> Result<OwnedMxcUri, HomeserverError> {
    state.homeserver.upload_media(avatar.bytes().to_vec(), avatar.content_type(), avatar.file_name()).await
}

/// Deletes what was uploaded for a request that then failed: nothing of it stays behind.
pub async fn discard_upload(state: &AppState, uploaded: Option<&OwnedMxcUri>) {
    if let Some(mxc) = uploaded {
        if let Err(e) = state.homeserver.delete_media(mxc).await {
            tracing::warn!(error = %e, %mxc, "deleting the upload of a failed request failed");
        }
    }
}
