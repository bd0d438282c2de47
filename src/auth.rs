//! Who is calling: the backend (`API-TOKEN`) or an app user (`Personal-Access-Token` JWT, also
//! accepted as `Authorization: Bearer`), and what each may do.

use std::collections::HashMap;

use axum::{extract::FromRequestParts, http::request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{
    app::AppState,
    config::{AuthConfig, Secret},
    domain::{AppUserId, OrganizationId},
    error::ApiError,
    store::chatrooms::Chatroom,
};

pub const API_TOKEN_HEADER: &str = "API-TOKEN";
pub const PERSONAL_ACCESS_TOKEN_HEADER: &str = "Personal-Access-Token";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The messenger's backend: may do everything.
    Backend,
    User(AppUser),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppUser {
    pub id: AppUserId,
    /// Organizations named in the token, and whether the user administers each.
    pub organizations: HashMap<OrganizationId, bool>,
}

impl Caller {
    /// The backend, or an administrator of the organization.
    pub fn may_manage(&self, organization: OrganizationId) -> bool {
        match self {
            Caller::Backend => true,
            Caller::User(user) => user.organizations.get(&organization).copied().unwrap_or(false),
        }
    }

    pub fn require_manage(&self, organization: OrganizationId) -> Result<(), ApiError> {
        if self.may_manage(organization) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("you do not administer organization {organization}")))
        }
    }

    /// Scopes idempotency keys: two callers may use the same key.
    pub fn key(&self) -> String {
        match self {
            Caller::Backend => "backend".to_owned(),
            Caller::User(user) => format!("user:{}", user.id),
        }
    }

    pub fn require_backend(&self) -> Result<(), ApiError> {
        match self {
            Caller::Backend => Ok(()),
            Caller::User(_) => Err(ApiError::forbidden("only the backend (API-TOKEN) may do this")),
        }
    }

    /// The app user a `/user/...` request acts for: a token's own user, or with the backend's
    /// token the `user_id` parameter.
    pub fn subject(&self, user_id: Option<AppUserId>) -> Result<AppUserId, ApiError> {
        match (self, user_id) {
            (Caller::User(user), None) => Ok(user.id),
            (Caller::User(user), Some(other)) if other == user.id => Ok(user.id),
            (Caller::User(_), Some(_)) => Err(ApiError::forbidden("a user can only act for themselves")),
            (Caller::Backend, Some(user)) => Ok(user),
            (Caller::Backend, None) => Err(ApiError::bad_request("user_id is required with an API token")),
        }
    }

    /// Managers of the organization, and users holding a role in the room.
    pub fn require_read(&self, room: &Chatroom) -> Result<(), ApiError> {
        match self {
            _ if self.may_manage(room.organization_id) => Ok(()),
            Caller::User(user) if room.roles.role_of(user.id).is_some() => Ok(()),
            _ => Err(ApiError::forbidden(format!("you hold no role in chatroom {}", room.id))),
        }
    }
}

/// JWT claims we read. `organizations` is optional: `[{"id": 7, "admin": true}, ...]`.
#[derive(Debug, Deserialize)]
struct Claims {
    /// The app user id, as a string of digits (JWT's `sub` is a string).
    sub: String,
    #[serde(default)]
    organizations: Vec<OrganizationClaim>,
}

#[derive(Debug, Deserialize)]
struct OrganizationClaim {
    id: OrganizationId,
    #[serde(default)]
    admin: bool,
}

pub struct Authenticator {
    api_tokens: Vec<Secret>,
    jwt: Option<(DecodingKey, Validation)>,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let jwt = match &config.jwt {
            None => None,
            Some(jwt) => {
                let key = match jwt.algorithm {
                    Algorithm::HS256 => DecodingKey::from_secret(jwt.key.expose().as_bytes()),
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(jwt.key.expose().as_bytes())?,
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(jwt.key.expose().as_bytes())?,
                    other => anyhow::bail!("unsupported JWT algorithm {other:?}"),
                };
                // The algorithm is pinned: a token naming another one (or none) is refused.
                let mut validation = Validation::new(jwt.algorithm);
                validation.set_required_spec_claims(&["exp", "sub"]);
                validation.validate_nbf = true;
                validation.leeway = 30;
                match &jwt.issuer {
                    Some(iss) => validation.set_issuer(&[iss]),
                    None => validation.iss = None,
                }
                match &jwt.audience {
                    Some(aud) => validation.set_audience(&[aud]),
                    None => validation.validate_aud = false,
                }
                Some((key, validation))
            }
        };
        Ok(Self { api_tokens: config.api_tokens.clone(), jwt })
    }

    pub fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(token) = header(API_TOKEN_HEADER) {
            let known = self.api_tokens.iter().fold(false, |found, candidate| {
                // Compare against every token so timing does not tell which one nearly matched.
                found | bool::from(candidate.expose().as_bytes().ct_eq(token.as_bytes()))
            });
            return if known {
                Ok(Caller::Backend)
            } else {
                Err(ApiError::unauthorized("invalid API-TOKEN"))
            };
        }
        let jwt = header(PERSONAL_ACCESS_TOKEN_HEADER).or_else(|| {
            header("authorization")
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        });
        match jwt {
            Some(token) => self.verify_jwt(token).map(Caller::User),
            None => Err(ApiError::unauthorized(
                "authentication required: send an API-TOKEN or a Personal-Access-Token header",
            )),
        }
    }

    fn verify_jwt(&self, token: &str) -> Result<AppUser, ApiError> {
        let Some((key, validation)) = &self.jwt else {
            return Err(ApiError::unauthorized("personal access tokens are not enabled"));
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| ApiError::unauthorized(format!("invalid personal access token: {e}")))?;
        let id = data.claims.sub.parse::<AppUserId>().ok().filter(|id| *id >= 0).ok_or_else(|| {
            ApiError::unauthorized("invalid personal access token: sub must be an app user id")
        })?;
        let organizations = data.claims.organizations.iter().map(|o| (o.id, o.admin)).collect();
        Ok(AppUser { id, organizations })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.authenticator.authenticate(parts)
    }
}
