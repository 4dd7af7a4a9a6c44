//! `drover keys create | list | revoke`: API keys in the database at `DATABASE_URL`.
//!
//! Keys are stored hashed: `create` prints a key once, and nothing can show it again.
//! A revoked key stops working on every API process within the API's key cache time
//! (`DROVER_API_KEY_CACHE_MS`, 5 s by default).

use anyhow::Context as _;
use clap::Subcommand;
use drover_api::auth::Role;
use drover_api::auth::keys;
use drover_jobs::config::CommonConfig;
use drover_jobs::env::Env;
use sea_orm::DatabaseConnection;

/// What to do with API keys.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it (once: only its hash is stored).
    Create {
        /// `submitter` (submit and read jobs) or `admin` (everything).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A name to tell the key apart in listings (default: `<role> key`).
        #[arg(long)]
        name: Option<String>,
        /// Only these queues (comma-separated, e.g. `export,analysis`): a submitter key
        /// then submits to and reads only them (default: every queue).
        #[arg(long, value_parser = parse_queues)]
        queues: Option<QueueList>,
    },
    /// List the keys: id, name, role, prefix, source, created, last used, revoked.
    List,
    /// Revoke a key, by id or by the prefix `list` shows.
    Revoke {
        /// The key's id, or the start of its prefix (at least 4 characters).
        key: String,
    },
}

/// The queues of `--queues`.
#[derive(Debug, Clone)]
pub struct QueueList(Vec<drover_jobs::QueueName>);

fn parse_queues(s: &str) -> Result<QueueList, String> {
    drover_api::auth::parse_queues(s)
        .map(|q| QueueList(q.to_vec()))
        .map_err(|e| e.to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

/// Runs a `keys` command.
pub async fn run(env: &Env, command: KeysCommand) -> anyhow::Result<()> {
    let config = CommonConfig::from_env(env)?;
    let db = connect(&config).await?;
    match command {
        KeysCommand::Create { role, name, queues } => {
            let name = name.unwrap_or_else(|| format!("{role} key"));
            let (row, key) = keys::create_scoped_key(
                &db,
                &name,
                role,
                queues.as_ref().map(|q| q.0.as_slice()),
                keys::source::CLI,
            )
            .await?;
            println!("{key}");
            eprintln!(
                "created {role} key {} ({:?}, prefix {}); it is shown only now: store it safely",
                row.id, row.name, row.key_prefix
            );
        }
        KeysCommand::List => {
            let rows = keys::list_keys(&db).await?;
            println!(
                "{:>4}  {:<24}  {:<9}  {:<12}  {:<6}  {:<20}  {:<20}  revoked",
                "id", "name", "role", "prefix", "source", "created", "last used"
            );
            let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or_else(
                    || "-".to_owned(),
                    |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
                )
            };
            for k in rows {
                println!(
                    "{:>4}  {:<24}  {:<9}  {:<12}  {:<6}  {:<20}  {:<20}  {}",
                    k.id,
                    k.name,
                    k.role,
                    k.key_prefix,
                    k.source,
                    time(Some(k.created_at)),
                    time(k.last_used_at),
                    time(k.revoked_at)
                );
            }
        }
        KeysCommand::Revoke { key } => {
            let row = keys::revoke_key(&db, &key).await?;
            println!(
                "revoked key {} ({:?}, prefix {}); API processes refuse it within their key cache time",
                row.id, row.name, row.key_prefix
            );
        }
    }
    db.close().await.ok();
    Ok(())
}

async fn connect(config: &CommonConfig) -> anyhow::Result<DatabaseConnection> {
    let db = drover_jobs::connect::database(&config.database_url).await?;
    if config.auto_migrate {
        drover_jobs::connect::migrate(&db).await?;
    }
    Ok(db)
}

/// For `drover up`: when no key works and none is configured, makes a development admin
/// key and returns it, to be printed.
pub async fn dev_admin_key(db: &DatabaseConnection) -> anyhow::Result<Option<String>> {
    if keys::count_active(db).await.context("count the API keys")? > 0 {
        return Ok(None);
    }
    let (_, key) = keys::create_key(db, "dev admin (drover up)", Role::Admin, keys::source::DEV)
        .await
        .context("make a development admin key")?;
    Ok(Some(key))
}
