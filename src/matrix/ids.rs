use ruma::{OwnedUserId, UserId};

use crate::domain::AppUserId;

/// Maps app users to Matrix users inside the application service's namespace.
#[derive(Clone, Debug)]
pub struct MatrixIds {
    server_name: String,
    user_prefix: String,
    bot: OwnedUserId,
}

impl MatrixIds {
    pub fn new(server_name: &str, user_prefix: &str, bot_localpart: &str) -> Result<Self, String> {
        let bot = UserId::parse(format!("@{bot_localpart}:{server_name}"))
            .map_err(|e| format!("bot user id @{bot_localpart}:{server_name}: {e}"))?;
        let ids = Self { server_name: server_name.to_owned(), user_prefix: user_prefix.to_owned(), bot };
        // Fail at startup, not on the first request, if the prefix cannot form user ids.
        ids.user_id(0)?;
        Ok(ids)
    }
    pub fn server_name(&self) -> &str {
        &self.server_name
    }
    pub fn bot(&self) -> &UserId {
        &self.bot
    }
    pub fn localpart(&self, user: AppUserId) -> String {
        format!("{}{user}", self.user_prefix)
    }
    pub fn user_id(&self, user: AppUserId) -> Result<OwnedUserId, String> {
        UserId::parse(format!("@{}:{}", self.localpart(user), self.server_name))
            .map_err(|e| format!("user id for app user {user}: {e}"))
    }
    /// The app user behind a Matrix user, if the user is one of ours.
    pub fn app_user(&self, user: &UserId) -> Option<AppUserId> {
        if user.server_name().as_str() != self.server_name {
            return None;
        }
        let digits = user.localpart().strip_prefix(&self.user_prefix)?;
        let id: AppUserId = digits.parse().ok()?;
        // Only the canonical spelling is ours: `app_007` is not app user 7.
        (id.to_string() == digits).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_users_map_to_namespaced_matrix_users_and_back() {
        let ids = MatrixIds::new("chat.example.org", "app_", "chatrooms").unwrap();
        let user = ids.user_id(42).unwrap();
        assert_eq!(user.as_str(), "@app_42:chat.example.org");
        assert_eq!(ids.app_user(&user), Some(42));
        assert_eq!(ids.app_user(&UserId::parse("@app_007:chat.example.org").unwrap()), None);
        assert_eq!(ids.app_user(&UserId::parse("@app_42:other.org").unwrap()), None);
        assert_eq!(ids.app_user(ids.bot()), None);
    }
}
