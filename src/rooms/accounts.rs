//! The one place that provisions a single user's Matrix account on first need (profiles,
//! credentials, logins, devices).

use ruma::OwnedUserId;

use super::{RoomError, RoomResult};
use crate::{domain::AppUserId, state::AppState, store::accounts};

/// An app user whose Matrix account exists and is active.
pub struct ProvisionedAccount {
    pub app_user: AppUserId,
    pub matrix_user: OwnedUserId,
    /// Fingerprint of the secret the account's password was last derived from.
    pub password_key: Option<String>,
}

/// Makes sure the app user has a Matrix account (registering it on first need) and is not
/// deactivated. Safe when several first requests for the same user race. One database read
/// when the account exists already (the login path).
pub async fn provision_account(state: &AppState, user: AppUserId) -> RoomResult<ProvisionedAccount> {
    let matrix_user = state.homeserver.ids().user_id(user).map_err(RoomError::Invalid)?;
    let account = {
        let mut conn = state.store.reader().acquire().await?;
        accounts::find(&mut conn, user).await?
    };
    let password_key = match account {
        Some(account) if account.deactivated => return Err(RoomError::UserDeactivated(user)),
        Some(account) => account.password_key,
        None => {
            state.reconciler.ensure_accounts(&[user]).await?;
            None
        }
    };
    Ok(ProvisionedAccount { app_user: user, matrix_user, password_key })
}
