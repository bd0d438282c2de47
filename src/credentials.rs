//! Matrix passwords derived from a server secret: HMAC-SHA256(secret, Matrix user id). Nothing
//! is stored but a fingerprint of the secret, so rotating the secret re-derives every password.

use hmac::{Hmac, Mac};
use ruma::UserId;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::Secret;

pub struct PasswordDeriver {
    secret: Secret,
    key_id: String,
}

impl PasswordDeriver {
    pub fn new(secret: &Secret) -> Self {
        let digest = Sha256::digest(format!("chatrooms-password-key:{}", secret.expose_secret()).as_bytes());
        Self { secret: secret.clone(), key_id: hex::encode(&digest[..8]) }
    }

    /// Identifies the secret (not the password) a stored account was last set up with.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn password_for(&self, user: &UserId) -> Secret {
        Secret::from(hmac_sha256_hex(self.secret.expose_secret(), user.as_str()))
    }
}

/// HMAC-SHA256 of `message` under `key`, hex-encoded.
pub fn hmac_sha256_hex(key: &str, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_stable_per_user_and_change_with_the_secret() {
        let alice = UserId::parse("@app_1:hs").unwrap();
        let bob = UserId::parse("@app_2:hs").unwrap();
        let deriver = PasswordDeriver::new(&Secret::from("one"));
        let password =
            |deriver: &PasswordDeriver, user| deriver.password_for(user).expose_secret().to_owned();
        assert_eq!(password(&deriver, &alice), password(&deriver, &alice));
        assert_ne!(password(&deriver, &alice), password(&deriver, &bob));
        let rotated = PasswordDeriver::new(&Secret::from("two"));
        assert_ne!(password(&rotated, &alice), password(&deriver, &alice));
        assert_ne!(rotated.key_id(), deriver.key_id());
        assert_eq!(password(&deriver, &alice).len(), 64);
    }
}
