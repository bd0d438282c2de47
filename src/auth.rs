//! Who is calling: the backend (`API-TOKEN`) or an app user (`Personal-Access-Token` JWT, also
//! accepted as `Authorization: Bearer`), and what each may do.

use secrecy::ExposeSecret;
use std::collections::HashMap;

use axum::http::{header::AUTHORIZATION, request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{
    config::{AuthConfig, Secret},
    domain::{parse_id, AppUserId, ChatroomId, OrganizationId, Role, RoomMembers},
    error::ApiError,
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

    /// The caller's rank in moderating the room ([`Role::rank`]): the backend and organization
    /// admins above everyone, then the room's admins and moderators; a banned user has none.
    /// `None` (a `403`) for everyone else.
    pub fn moderation_rank(
        &self,
        room: ChatroomId,
        organization: OrganizationId,
        roles: &RoomMembers,
        banned: bool,
    ) -> Result<i64, ApiError> {
        match self {
            _ if self.may_manage(organization) => Ok(Role::MANAGER_RANK),
            Caller::User(user) if !banned && Role::rank(roles.role_of(user.id)) > 0 => {
                Ok(Role::rank(roles.role_of(user.id)))
            }
            _ => Err(ApiError::forbidden(format!(
                "you are neither an admin nor a moderator of chatroom {room}"
            ))),
        }
    }

    /// The organizations in which the caller may list `user`'s rooms: all of them (`None`) for
    /// the backend and the user themselves, else those the caller administers (a `403` when
    /// there are none).
    pub fn rooms_scope(&self, user: AppUserId) -> Result<Option<Vec<OrganizationId>>, ApiError> {
        match self {
            Caller::Backend => Ok(None),
            Caller::User(me) if me.id == user => Ok(None),
            Caller::User(me) => {
                let mut managed: Vec<OrganizationId> =
                    me.organizations.iter().filter(|(_, admin)| **admin).map(|(org, _)| *org).collect();
                if managed.is_empty() {
                    return Err(ApiError::forbidden(
                        "you may list your own rooms, or other users' as an organization admin",
                    ));
                }
                managed.sort_unstable();
                Ok(Some(managed))
            }
        }
    }

    /// The app user the caller is, if an app user.
    pub fn app_user(&self) -> Option<AppUserId> {
        match self {
            Caller::Backend => None,
            Caller::User(user) => Some(user.id),
        }
    }

    /// Managers of the room's organization, and users holding a role in the room.
    pub fn require_read(
        &self,
        room: ChatroomId,
        organization: OrganizationId,
        roles: &RoomMembers,
    ) -> Result<(), ApiError> {
        match self {
            _ if self.may_manage(organization) => Ok(()),
            Caller::User(user) if roles.role_of(user.id).is_some() => Ok(()),
            _ => Err(ApiError::forbidden(format!("you hold no role in chatroom {room}"))),
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
                    Algorithm::HS256 => DecodingKey::from_secret(jwt.key.expose_secret().as_bytes()),
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(jwt.key.expose_secret().as_bytes())?,
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(jwt.key.expose_secret().as_bytes())?,
                    other => anyhow::bail!("unsupported JWT algorithm {other:?}"),
                };
                // The algorithm is pinned: a token naming another one (or none) is refused.
                let mut validation = Validation::new(jwt.algorithm);
                validation.validate_nbf = true;
                validation.leeway = 30;
                // A configured issuer or audience is required, not only compared when present.
                let mut required = vec!["exp", "sub"];
                match &jwt.issuer {
                    Some(iss) => {
                        validation.set_issuer(&[iss]);
                        required.push("iss");
                    }
                    None => validation.iss = None,
                }
                match &jwt.audience {
                    Some(aud) => {
                        validation.set_audience(&[aud]);
                        required.push("aud");
                    }
                    None => validation.validate_aud = false,
                }
                validation.set_required_spec_claims(&required);
                Some((key, validation))
            }
        };
        Ok(Self { api_tokens: config.api_tokens.clone(), jwt })
    }

    /// The one caller a request names. Every credential it carries must name the same caller:
    /// a personal access token sent twice (`Personal-Access-Token` and `Authorization: Bearer`)
    /// is fine when both are valid and say the same, while two tokens for different users, or
    /// an `API-TOKEN` together with a JWT, leave it unclear who acts and are a `401`.
    pub fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let api_token = single_header(parts, API_TOKEN_HEADER)?;
        let personal = single_header(parts, PERSONAL_ACCESS_TOKEN_HEADER)?;
        let bearer = single_header(parts, AUTHORIZATION.as_str())?.and_then(bearer_token);
        let jwt = match (personal, bearer) {
            (Some(personal), Some(bearer)) => {
                let (first, second) = (self.verify_jwt(personal)?, self.verify_jwt(bearer)?);
                if first != second {
                    return Err(ApiError::unauthorized(
                        "Personal-Access-Token and Authorization name different callers; send one",
                    ));
                }
                Some(first)
            }
            (Some(token), None) | (None, Some(token)) => Some(self.verify_jwt(token)?),
            (None, None) => None,
        };
        match (api_token, jwt) {
            (Some(_), Some(_)) => Err(ApiError::unauthorized(
                "send either an API-TOKEN or a personal access token, not both: the caller is ambiguous",
            )),
            (Some(token), None) => self.verify_api_token(token),
            (None, Some(user)) => Ok(Caller::User(user)),
            (None, None) => Err(ApiError::unauthorized(
                "authentication required: send an API-TOKEN or a Personal-Access-Token header",
            )),
        }
    }

    fn verify_api_token(&self, token: &str) -> Result<Caller, ApiError> {
        let known = self.api_tokens.iter().fold(false, |found, candidate| {
            // Compare against every token so timing does not tell which one nearly matched.
            found | bool::from(candidate.expose_secret().as_bytes().ct_eq(token.as_bytes()))
        });
        if known {
            Ok(Caller::Backend)
        } else {
            Err(ApiError::unauthorized("invalid API-TOKEN"))
        }
    }

    fn verify_jwt(&self, token: &str) -> Result<AppUser, ApiError> {
        let Some((key, validation)) = &self.jwt else {
            return Err(ApiError::unauthorized("personal access tokens are not enabled"));
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| ApiError::unauthorized(format!("invalid personal access token: {e}")))?;
        let id = parse_id(&data.claims.sub).map_err(|e| {
            ApiError::unauthorized(format!("invalid personal access token: sub must be an app user id: {e}"))
        })?;
        let organizations = data.claims.organizations.iter().map(|o| (o.id, o.admin)).collect();
        Ok(AppUser { id, organizations })
    }
}

/// A header's value, trimmed; the same header twice with different values is a `401`.
fn single_header<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = parts.headers.get_all(name).iter().map(|v| v.to_str().map(str::trim));
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let first = first.map_err(|_| ApiError::unauthorized(format!("the {name} header is not valid text")))?;
    if values.any(|other| other.ok() != Some(first)) {
        return Err(ApiError::unauthorized(format!("the {name} header is sent twice with different values")));
    }
    Ok(Some(first))
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive);
/// other schemes are not ours and ignored.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
