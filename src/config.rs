//! Configuration from environment variables. Every variable is documented in the README;
//! defaults run the service locally against `scripts/run.sh`'s Synapse.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use anyhow::{bail, Context};
use jsonwebtoken::Algorithm;

/// A value that must never reach a log line: `Debug` prints it redacted, and its memory is
/// zeroed when dropped.
pub use secrecy::SecretString as Secret;

#[derive(Clone, Debug)]
pub struct Config {
    pub bind_addr: SocketAddr,
    pub database_url: String,
    /// Postgres: the pool's size; SQLite: the read connections beside the writer. `None`: the
    /// store's default for the backend.
    pub database_max_connections: Option<u32>,
    pub matrix: MatrixConfig,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub rate_limits: RateLimitConfig,
    pub sync: SyncConfig,
    pub webhooks: WebhookConfig,
    pub default_room_name: String,
    pub log_format: LogFormat,
}

#[derive(Clone, Debug)]
pub struct MatrixConfig {
    pub homeserver_url: String,
    pub server_name: String,
    pub as_token: Secret,
    /// The token Synapse sends with the transactions it pushes; without it intake is refused.
    pub hs_token: Option<Secret>,
    pub bot_localpart: String,
    /// The registration's `id`, for the homeserver's appservice ping.
    pub appservice_id: String,
    pub user_prefix: String,
    /// An admin user's access token; if absent it is bootstrapped from the shared secret.
    pub admin_token: Option<Secret>,
    pub registration_shared_secret: Option<Secret>,
    pub admin_localpart: String,
    /// Room version for new rooms; `None` uses the homeserver's default.
    pub room_version: Option<String>,
    pub request_timeout: Duration,
    /// Homeserver calls in flight across the service; the rest queue (their timeout starts
    /// once they are sent).
    pub concurrency: usize,
    /// Of those, room and space creations (slow on Synapse).
    pub create_concurrency: usize,
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub api_tokens: Vec<Secret>,
    pub jwt: Option<JwtConfig>,
    /// Key for deriving app users' Matrix passwords; when unset the service generates one
    /// once and keeps it in the database, shared by every replica.
    pub credentials_secret: Option<Secret>,
}

#[derive(Clone, Debug)]
pub struct JwtConfig {
    pub algorithm: Algorithm,
    /// HS256 secret, or the PEM public key for RS256 / EdDSA.
    pub key: Secret,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub avatar_max_bytes: usize,
    pub body_max_bytes: usize,
}

/// Requests per caller; 0 turns a limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub user_logins_per_minute: u32,
    pub user_credentials_per_minute: u32,
    pub user_writes_per_minute: u32,
    /// Logins, credentials and writes together, for the backend's token.
    pub backend_per_second: u32,
}

#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// How long a write request waits for the homeserver before answering "pending".
    pub request_wait: Duration,
    pub worker_poll: Duration,
    pub scheduler_interval: Duration,
    /// How often the homeserver's event reports (made in Matrix clients) are read.
    pub report_poll: Duration,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    pub lease: Duration,
    pub join_concurrency: usize,
    /// Rooms synced at once by the worker.
    pub concurrency: usize,
    /// How often the periodic drift pass runs; `None` turns it off.
    pub reconcile_interval: Option<Duration>,
    /// Rooms and spaces the pass reads from the homeserver per second, at most.
    pub reconcile_rate: u32,
    /// The longest a room goes without being read, even while the homeserver's pushes vouch
    /// for it.
    pub reconcile_max_age: Duration,
}

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Receivers on loopback and private networks are allowed (local runs, tests).
    pub allow_private: bool,
    /// The delays before each retry; after the last one a delivery is given up.
    pub retry_schedule: Vec<Duration>,
    pub timeout: Duration,
    pub poll: Duration,
    /// Deliveries posted at once.
    pub concurrency: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_map(&std::env::vars().collect())
    }

    /// Reads the configuration from a map of variables (tests pass their own).
    pub fn from_map(vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| vars.get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let or = |key: &str, default: &str| get(key).unwrap_or_else(|| default.to_owned());
        // A value that does not parse or lies outside its range stops the start: a typo must
        // not turn into a truncated or clamped setting.
        let parse_ms = |key: &str, default: u64| -> anyhow::Result<Duration> {
            const MAX_MS: u64 = 365 * 24 * 60 * 60 * 1000;
            let ms = match get(key) {
                Some(v) => {
                    v.parse::<u64>().with_context(|| format!("{key} must be milliseconds, not {v:?}"))?
                }
                None => default,
            };
            if ms > MAX_MS {
                bail!("{key} is {ms} ms; at most {MAX_MS} (a year) is allowed");
            }
            Ok(Duration::from_millis(ms))
        };
        let parse_num = |key: &str, default: usize, min: usize, max: usize| -> anyhow::Result<usize> {
            let n = match get(key) {
                Some(v) => {
                    v.parse::<usize>().with_context(|| format!("{key} must be a whole number, not {v:?}"))?
                }
                None => default,
            };
            if !(min..=max).contains(&n) {
                bail!("{key} is {n}; it must be between {min} and {max}");
            }
            Ok(n)
        };

        let as_token = get("CHATROOMS_MATRIX_AS_TOKEN")
            .context("CHATROOMS_MATRIX_AS_TOKEN is required (the application service's as_token)")?;
        // Never derived from the appservice token: rotating that must not change every password.
        let credentials_secret = get("CHATROOMS_CREDENTIALS_SECRET").map(Secret::from);

        let jwt = match get("CHATROOMS_JWT_ALGORITHM").as_deref() {
            None => get("CHATROOMS_JWT_SECRET").map(|secret| JwtConfig {
                algorithm: Algorithm::HS256,
                key: Secret::from(secret),
                issuer: get("CHATROOMS_JWT_ISSUER"),
                audience: get("CHATROOMS_JWT_AUDIENCE"),
            }),
            Some(alg) => {
                let algorithm = match alg {
                    "HS256" => Algorithm::HS256,
                    "RS256" => Algorithm::RS256,
                    "EdDSA" => Algorithm::EdDSA,
                    other => bail!("CHATROOMS_JWT_ALGORITHM {other:?} is not one of HS256, RS256, EdDSA"),
                };
                let key = if algorithm == Algorithm::HS256 {
                    get("CHATROOMS_JWT_SECRET").context("CHATROOMS_JWT_SECRET is required for HS256")?
                } else if let Some(pem) = get("CHATROOMS_JWT_PUBLIC_KEY") {
                    pem
                } else {
                    let path = get("CHATROOMS_JWT_PUBLIC_KEY_FILE")
                        .context("CHATROOMS_JWT_PUBLIC_KEY or CHATROOMS_JWT_PUBLIC_KEY_FILE is required")?;
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading JWT public key {path}"))?
                };
                Some(JwtConfig {
                    algorithm,
                    key: Secret::from(key),
                    issuer: get("CHATROOMS_JWT_ISSUER"),
                    audience: get("CHATROOMS_JWT_AUDIENCE"),
                })
            }
        };

        let api_tokens: Vec<Secret> = or("CHATROOMS_API_TOKENS", "")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Secret::from)
            .collect();
        if api_tokens.is_empty() && jwt.is_none() {
            bail!("configure CHATROOMS_API_TOKENS and/or CHATROOMS_JWT_SECRET: no caller could authenticate");
        }

        const MIB: usize = 1024 * 1024;
        let avatar_max_bytes = parse_num("CHATROOMS_AVATAR_MAX_BYTES", MIB, 1, 100 * MIB)?;
        // Intervals that must not be zero: a zero poll or retry base spins, a zero timeout fails
        // every call.
        let at_least = |key: &str, default: u64, min_ms: u64| -> anyhow::Result<Duration> {
            let value = parse_ms(key, default)?;
            if value < Duration::from_millis(min_ms) {
                bail!("{key} is {} ms; at least {min_ms} is needed", value.as_millis());
            }
            Ok(value)
        };
        let retry_base = at_least("CHATROOMS_RETRY_BASE_MS", 500, 10)?;
        let retry_cap = parse_ms("CHATROOMS_RETRY_CAP_MS", 300_000)?;
        if retry_cap < retry_base {
            bail!("CHATROOMS_RETRY_CAP_MS must not be below CHATROOMS_RETRY_BASE_MS");
        }
        let lease = parse_ms("CHATROOMS_ROOM_LEASE_MS", 30_000)?;
        if lease < Duration::from_millis(300) {
            bail!("CHATROOMS_ROOM_LEASE_MS is {} ms; at least 300 is needed", lease.as_millis());
        }
        let retry_schedule = match get("CHATROOMS_WEBHOOK_RETRY_SCHEDULE_MS") {
            None => crate::webhooks::delivery::default_schedule(),
            Some(list) => list
                .split(',')
                .map(|ms| ms.trim().parse::<u64>().map(Duration::from_millis))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| {
                    format!("CHATROOMS_WEBHOOK_RETRY_SCHEDULE_MS must be milliseconds separated by commas, not {list:?}")
                })?,
        };
        if retry_schedule.len() > 50 {
            bail!(
                "CHATROOMS_WEBHOOK_RETRY_SCHEDULE_MS has {} retries; at most 50 are allowed",
                retry_schedule.len()
            );
        }
        let webhooks = WebhookConfig {
            allow_private: match or("CHATROOMS_WEBHOOKS_ALLOW_PRIVATE", "false").as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => bail!("CHATROOMS_WEBHOOKS_ALLOW_PRIVATE {other:?} is not true or false"),
            },
            retry_schedule,
            timeout: at_least("CHATROOMS_WEBHOOK_TIMEOUT_MS", 10_000, 100)?,
            poll: at_least("CHATROOMS_WEBHOOK_POLL_MS", 250, 10)?,
            concurrency: parse_num("CHATROOMS_WEBHOOK_CONCURRENCY", 16, 1, 1_000)?,
        };
        Ok(Self {
            webhooks,
            bind_addr: or("CHATROOMS_BIND_ADDR", "127.0.0.1:8080")
                .parse()
                .context("CHATROOMS_BIND_ADDR must be host:port")?,
            database_url: or("DATABASE_URL", "sqlite://data/chatrooms.db"),
            database_max_connections: get("CHATROOMS_DATABASE_MAX_CONNECTIONS")
                .map(|_| parse_num("CHATROOMS_DATABASE_MAX_CONNECTIONS", 10, 1, 10_000).map(|n| n as u32))
                .transpose()?,
            matrix: MatrixConfig {
                homeserver_url: or("CHATROOMS_HOMESERVER_URL", "http://127.0.0.1:8008")
                    .trim_end_matches('/')
                    .to_owned(),
                server_name: or("CHATROOMS_MATRIX_SERVER_NAME", "localhost"),
                as_token: Secret::from(as_token),
                hs_token: get("CHATROOMS_MATRIX_HS_TOKEN").map(Secret::from),
                bot_localpart: or("CHATROOMS_MATRIX_BOT_LOCALPART", "chatrooms"),
                appservice_id: or("CHATROOMS_MATRIX_APPSERVICE_ID", "chatrooms"),
                user_prefix: or("CHATROOMS_MATRIX_USER_PREFIX", "app_"),
                admin_token: get("CHATROOMS_MATRIX_ADMIN_TOKEN").map(Secret::from),
                registration_shared_secret: get("CHATROOMS_MATRIX_REGISTRATION_SHARED_SECRET")
                    .map(Secret::from),
                admin_localpart: or("CHATROOMS_MATRIX_ADMIN_LOCALPART", "chatrooms-admin"),
                room_version: get("CHATROOMS_MATRIX_ROOM_VERSION"),
                request_timeout: at_least("CHATROOMS_HOMESERVER_TIMEOUT_MS", 15_000, 100)?,
                concurrency: parse_num("CHATROOMS_HOMESERVER_CONCURRENCY", 32, 1, 10_000)?,
                create_concurrency: parse_num("CHATROOMS_HOMESERVER_CREATE_CONCURRENCY", 4, 1, 1_000)?,
            },
            auth: AuthConfig { api_tokens, jwt, credentials_secret },
            limits: Limits {
                avatar_max_bytes,
                // A JSON byte array spends up to 4 bytes per avatar byte; leave room for the rest.
                body_max_bytes: parse_num(
                    "CHATROOMS_BODY_MAX_BYTES",
                    avatar_max_bytes * 4 + MIB,
                    1024,
                    1024 * MIB,
                )?,
            },
            rate_limits: RateLimitConfig {
                user_logins_per_minute: parse_num("CHATROOMS_RATE_LIMIT_LOGINS_PER_MINUTE", 10, 0, 100_000)?
                    as u32,
                user_credentials_per_minute: parse_num(
                    "CHATROOMS_RATE_LIMIT_CREDENTIALS_PER_MINUTE",
                    30,
                    0,
                    100_000,
                )? as u32,
                user_writes_per_minute: parse_num("CHATROOMS_RATE_LIMIT_WRITES_PER_MINUTE", 120, 0, 100_000)?
                    as u32,
                backend_per_second: parse_num("CHATROOMS_RATE_LIMIT_BACKEND_PER_SECOND", 200, 0, 1_000_000)?
                    as u32,
            },
            sync: SyncConfig {
                request_wait: parse_ms("CHATROOMS_SYNC_WAIT_MS", 10_000)?,
                worker_poll: at_least("CHATROOMS_WORKER_POLL_MS", 1_000, 10)?,
                scheduler_interval: at_least("CHATROOMS_SCHEDULER_INTERVAL_MS", 10_000, 10)?,
                report_poll: at_least("CHATROOMS_REPORT_POLL_MS", 3_000, 100)?,
                retry_base,
                retry_cap,
                lease,
                join_concurrency: parse_num("CHATROOMS_JOIN_CONCURRENCY", 8, 1, 1_000)?,
                concurrency: parse_num("CHATROOMS_SYNC_CONCURRENCY", 8, 1, 1_000)?,
                reconcile_interval: Some(parse_ms("CHATROOMS_RECONCILE_INTERVAL_MS", 300_000)?)
                    .filter(|interval| !interval.is_zero()),
                reconcile_rate: parse_num("CHATROOMS_RECONCILE_ROOMS_PER_SECOND", 5, 1, 1_000)? as u32,
                reconcile_max_age: parse_ms("CHATROOMS_RECONCILE_MAX_AGE_MS", 86_400_000)?,
            },
            default_room_name: or("CHATROOMS_DEFAULT_ROOM_NAME", "General"),
            log_format: match or("CHATROOMS_LOG_FORMAT", "text").as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => bail!("CHATROOMS_LOG_FORMAT {other:?} is not text or json"),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> =
            [("CHATROOMS_MATRIX_AS_TOKEN", "as-s3cret"), ("CHATROOMS_API_TOKENS", "api-s3cret")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        vars
    }

    fn refused(key: &str, value: &str) -> String {
        match Config::from_map(&vars(&[(key, value)])) {
            Ok(_) => panic!("{key}={value} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn values_that_overflow_or_do_not_parse_stop_the_start() {
        // 2^32 + 5 connections used to be truncated to 5.
        assert!(refused("CHATROOMS_DATABASE_MAX_CONNECTIONS", "4294967301").contains("between 1 and"));
        assert!(refused("CHATROOMS_SYNC_CONCURRENCY", "0").contains("between 1 and"));
        assert!(refused("CHATROOMS_JOIN_CONCURRENCY", "-1").contains("whole number"));
        assert!(refused("CHATROOMS_SYNC_WAIT_MS", "18446744073709551615").contains("at most"));
        assert!(refused("CHATROOMS_SYNC_WAIT_MS", "18446744073709551616").contains("milliseconds"));
        assert!(refused("CHATROOMS_RETRY_BASE_MS", "1.5").contains("milliseconds"));
        assert!(refused("CHATROOMS_ROOM_LEASE_MS", "10").contains("at least 300"));
        assert!(refused("CHATROOMS_WORKER_POLL_MS", "0").contains("at least 10"));
        assert!(refused("CHATROOMS_RETRY_BASE_MS", "0").contains("at least 10"));
        assert!(refused("CHATROOMS_HOMESERVER_TIMEOUT_MS", "0").contains("at least 100"));
        assert!(refused("CHATROOMS_RETRY_CAP_MS", "5").contains("must not be below"));
        assert!(refused("CHATROOMS_AVATAR_MAX_BYTES", "18446744073709551615").contains("between"));
        assert!(refused("CHATROOMS_BIND_ADDR", "localhost").contains("host:port"));
        assert!(refused("CHATROOMS_RATE_LIMIT_LOGINS_PER_MINUTE", "-1").contains("whole number"));
        assert!(refused("CHATROOMS_RATE_LIMIT_BACKEND_PER_SECOND", "5000000").contains("between 0 and"));
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let config = Config::from_map(&vars(&[
            ("CHATROOMS_CREDENTIALS_SECRET", "credentials-s3cret"),
            ("CHATROOMS_JWT_SECRET", "jwt-s3cret"),
            ("CHATROOMS_MATRIX_ADMIN_TOKEN", "admin-s3cret"),
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        for secret in ["credentials-s3cret", "jwt-s3cret", "admin-s3cret", "as-s3cret", "api-s3cret"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("REDACTED"), "{printed}");
    }

    #[test]
    fn defaults_hold_and_the_credentials_secret_is_not_derived_from_the_appservice_token() {
        let config = Config::from_map(&vars(&[])).unwrap();
        assert_eq!(config.database_max_connections, None);
        assert_eq!(config.sync.lease, Duration::from_secs(30));
        let limits = &config.rate_limits;
        assert_eq!(
            (
                limits.user_logins_per_minute,
                limits.user_credentials_per_minute,
                limits.user_writes_per_minute
            ),
            (10, 30, 120)
        );
        assert_eq!(limits.backend_per_second, 200);
        assert!(config.auth.credentials_secret.is_none(), "generated and stored at startup instead");
        let set = Config::from_map(&vars(&[("CHATROOMS_CREDENTIALS_SECRET", "s3cret")])).unwrap();
        assert_eq!(set.auth.credentials_secret.as_ref().map(|s| s.expose_secret()), Some("s3cret"));
    }
}
