//! Storage: sqlx's `Any` driver over SQLite (default) or Postgres, one set of portable queries.
//! Placeholders are `$N` (SQLite accepts them too); times are Unix milliseconds in BIGINT.

pub mod accounts;
pub mod appservice;
pub mod blocklists;
pub mod chatrooms;
pub mod drift;
pub mod export;
pub mod idempotency;
pub mod jobs;
pub mod moderation;
pub mod organizations;
pub mod reports;
pub mod rosters;
pub mod secrets;
pub mod webhooks;

use std::{path::Path, str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    AnyPool, ConnectOptions, Executor,
};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    /// Every write, and reads that must see a write's own transaction. SQLite: one connection.
    pool: AnyPool,
    /// Reads that no write should hold up. SQLite (in WAL mode) serves them from connections of
    /// their own beside the writer; Postgres from the same pool.
    reader: AnyPool,
    backend: Backend,
}

/// SQLite's page cache per connection, in KiB (negative: a size, not a page count). Each
/// connection has its own; pages past it come from the operating system's cache, which all
/// share. Measured at 100,000 rooms (scripts/bench-scale.sh), bigger caches bought no latency
/// and cost the memory target.
const SQLITE_WRITER_CACHE: &str = "PRAGMA cache_size = -8192;";
const SQLITE_READER_CACHE: &str = "PRAGMA cache_size = -2048;";

impl Store {
    /// `connections`: Postgres's pool size (default 10); SQLite's read connections beside the
    /// writer (default one per core: a read runs on its connection's thread, so more than the
    /// cores add only memory).
    pub async fn connect(url: &str, connections: Option<u32>) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("DATABASE_URL must start with sqlite: or postgres:");
        };
        let url = match backend {
            Backend::Sqlite => prepare_sqlite(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .with_context(|| "parsing DATABASE_URL")?
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = match backend {
            // SQLite has one writer; a single connection turns lock errors into queueing.
            Backend::Sqlite => {
                let setup =
                    "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;";
                sqlite_pool(&options, 1, format!("{setup} {SQLITE_WRITER_CACHE}")).await?
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(connections.unwrap_or(10))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options.clone())
                .await
                .context("connecting to the database")?,
        };
        let reader = match backend {
            // Made after the writer switched the file to WAL, where readers never wait for it.
            Backend::Sqlite => {
                let setup = "PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;";
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
                let readers = connections.unwrap_or(cores);
                sqlite_pool(&options, readers, format!("{setup} {SQLITE_READER_CACHE}")).await?
            }
            Backend::Postgres => pool.clone(),
        };
        Ok(Self { pool, reader, backend })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.run(&self.pool).await.context("running database migrations")
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For reads that need not see an uncommitted write of the caller's: they never queue
    /// behind the writer.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    pub async fn begin(&self) -> sqlx::Result<Tx> {
        self.pool.begin().await
    }

    pub async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await.map(|_| ())
    }

    pub async fn backlog(&self) -> sqlx::Result<jobs::Backlog> {
        jobs::backlog(&mut *self.reader.acquire().await?).await
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.pool.close().await;
    }
}

async fn sqlite_pool(options: &AnyConnectOptions, size: u32, setup: String) -> anyhow::Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            let setup = setup.clone();
            Box::pin(async move { conn.execute(setup.as_str()).await.map(|_| ()) })
        })
        .connect_with(options.clone())
        .await
        .context("connecting to the database")
}

/// Creates the SQLite file's directory, and the file itself on first run.
fn prepare_sqlite(url: &str) -> anyhow::Result<String> {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if !path.is_empty() && path != ":memory:" {
        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Ids per `IN (...)` query: well under both backends' parameter limits.
const IN_CHUNK: usize = 500;

/// The rows of `{select} IN (ids)`, one query per few hundred ids. `$1, $2, ...` placeholders
/// work on both backends; `Any` has no array binding.
pub async fn fetch_where_in(
    conn: &mut sqlx::AnyConnection,
    select: &str,
    ids: &[i64],
) -> sqlx::Result<Vec<sqlx::any::AnyRow>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!("{select} IN ({})", placeholders.join(", "));
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// True when the error is a unique-constraint violation (the same on both backends).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
