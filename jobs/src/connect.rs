//! Connections every process opens: Redis, the database, and the queue handles.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use drover_migration::{Migrator, MigratorTrait};
use drover_queue::{Queue, Redis};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    TransactionTrait,
};

use crate::QueueName;
use crate::config::CommonConfig;

/// The Redis handle. Connects lazily: a Redis that is down now is not an error yet.
pub fn redis(config: &CommonConfig) -> anyhow::Result<Redis> {
    Redis::new(config.redis_config()).context("set up the Redis connection pool")
}

/// Everything a process connects to: Redis, the queue handles and the database.
#[derive(Debug, Clone)]
pub struct Stores {
    pub redis: Redis,
    pub queues: Queues,
    pub db: DatabaseConnection,
}

impl Stores {
    /// Connects (Redis lazily), and migrates the database unless `auto_migrate` is off.
    pub async fn open(config: &CommonConfig) -> anyhow::Result<Self> {
        let redis = redis(config)?;
        let queues = Queues::new(&redis, config)?;
        let db = database(&config.database_url).await?;
        if config.auto_migrate {
            migrate(&db).await?;
        }
        Ok(Self { redis, queues, db })
    }
}

/// Handles on the four queues.
#[derive(Debug, Clone)]
pub struct Queues {
    queues: BTreeMap<QueueName, Queue>,
}

impl Queues {
    /// Handles on every queue of namespace `config.namespace`.
    pub fn new(redis: &Redis, config: &CommonConfig) -> anyhow::Result<Self> {
        let mut queues = BTreeMap::new();
        for name in QueueName::ALL {
            let q = Queue::with_settings(
                redis.clone(),
                &config.namespace,
                name.as_str(),
                name.defaults(),
                config.queue_settings(),
            )
            .with_context(|| format!("set up queue {name}"))?;
            queues.insert(name, q);
        }
        Ok(Self { queues })
    }

    /// The handle of one queue.
    #[must_use]
    pub fn get(&self, name: QueueName) -> &Queue {
        // Every name was inserted in `new`.
        &self.queues[&name]
    }

    /// Every queue, in name order.
    pub fn all(&self) -> impl Iterator<Item = (QueueName, &Queue)> {
        self.queues.iter().map(|(k, v)| (*k, v))
    }
}

/// Connects to the database, creating the SQLite file (and its directory) if needed.
///
/// SQLite runs in WAL mode with a busy timeout, so readers never block the writer
/// and concurrent writers wait their turn instead of failing.
pub async fn database(url: &str) -> anyhow::Result<DatabaseConnection> {
    if let Some(path) = sqlite_path(url)
        && let Some(dir) = std::path::Path::new(&path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("create the database directory {}", dir.display()))?;
    }
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        opts.max_connections(8).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .create_if_missing(true)
        });
    } else {
        opts.max_connections(16);
    }
    // A new SQLite file that another process is creating or migrating (an API and a
    // worker started together) can answer "database is locked" at once: SQLite skips
    // the busy timeout where waiting could deadlock, as when two connections both turn
    // the file's journal to WAL. That is worth waiting out; anything else is not.
    let deadline = Instant::now() + SQLITE_OPEN_PATIENCE;
    let mut pause = Duration::from_millis(20);
    loop {
        match Database::connect(opts.clone()).await {
            Ok(db) => return Ok(db),
            Err(e) if is_sqlite_busy(&e) && Instant::now() < deadline => {
                tracing::debug!(error = %e, "the SQLite database is locked; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("connect to the database at {}", redact_db(url)));
            }
        }
    }
}

/// How long opening a SQLite database keeps retrying while another process holds it
/// locked.
const SQLITE_OPEN_PATIENCE: Duration = Duration::from_secs(30);

/// Whether `e` is SQLite's `SQLITE_BUSY` ("database is locked", or one of its
/// extended codes).
fn is_sqlite_busy(e: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(e))
    | DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))) = e
    else {
        return false;
    };
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == SQLITE_BUSY)
}

/// SQLite's primary result code for a locked database.
const SQLITE_BUSY: i32 = 5;

/// Applies every pending migration.
///
/// Processes that start together (an API and a worker) may migrate at the same time.
/// On PostgreSQL the migrations run in one transaction holding an advisory lock, so
/// the second process waits and then finds nothing to do. On SQLite (one machine, one
/// file) the loser of a race finds the work done on its next try, so a failure is
/// retried a few times before it counts.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        tries += 1;
        match migrate_once(db).await {
            Ok(()) => return Ok(()),
            Err(e) if tries < 5 => {
                tracing::warn!(error = %e, tries, "migration failed; another process may be migrating, retrying");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(e) => return Err(e).context("apply database migrations"),
        }
    }
}

/// The key of the PostgreSQL advisory lock that serializes migrations ("drover" in ASCII).
const MIGRATION_LOCK: i64 = 0x0000_6472_6f76_6572;

async fn migrate_once(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        Migrator::up(&txn, None).await?;
        txn.commit().await
    } else {
        Migrator::up(db, None).await
    }
}

/// Checks that the database answers.
pub async fn ping_database(db: &DatabaseConnection) -> anyhow::Result<()> {
    db.execute_unprepared("SELECT 1")
        .await
        .context("query the database")?;
    Ok(())
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| path.to_owned())
}

/// The URL with any password hidden, for logs and errors.
#[must_use]
pub fn redact_db(url: &str) -> String {
    drover_queue::connection::redact(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        assert_eq!(
            sqlite_path("sqlite://./data/drover.db?mode=rwc").as_deref(),
            Some("./data/drover.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }

    #[tokio::test]
    async fn a_locked_sqlite_database_is_told_apart_from_other_errors() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let holder = database(&url).await.unwrap();
        holder
            .execute_unprepared("CREATE TABLE t (x INTEGER)")
            .await
            .unwrap();
        let txn = holder.begin().await.unwrap();
        txn.execute_unprepared("INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        // Another connection that will not wait for the writer's lock.
        let mut opts = ConnectOptions::new(url);
        opts.max_connections(1)
            .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::ZERO));
        let other = Database::connect(opts).await.unwrap();
        let locked = other
            .execute_unprepared("INSERT INTO t VALUES (2)")
            .await
            .unwrap_err();
        assert!(is_sqlite_busy(&locked), "{locked:?}");
        let missing = other
            .execute_unprepared("SELECT * FROM no_such_table")
            .await
            .unwrap_err();
        assert!(!is_sqlite_busy(&missing), "{missing:?}");
        txn.rollback().await.unwrap();
    }
}
