//! A database of a test's own: a fresh SQLite file, or a fresh PostgreSQL database
//! when `TEST_DATABASE_URL` points at a PostgreSQL server.

use sea_orm::{ConnectionTrait, Database};

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A database that exists for one test and is deleted after it.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    engine: Engine,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the server URL (database `postgres`) and the database's name.
    pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh SQLite file in a temporary directory.
    ///
    /// # Panics
    /// If no temporary directory can be made.
    #[must_use]
    pub fn sqlite() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("drover-db-")
            .tempdir()
            .expect("temporary directory for sqlite");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        Self {
            url,
            engine: Engine::Sqlite,
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database on the server of `TEST_DATABASE_URL`, or `None`
    /// when that is not set to a `postgres://` URL.
    ///
    /// # Panics
    /// If the server refuses to create the database.
    pub async fn postgres() -> Option<Self> {
        let base = std::env::var("TEST_DATABASE_URL").ok()?;
        if !(base.starts_with("postgres://") || base.starts_with("postgresql://")) {
            return None;
        }
        let name = format!("drover_t_{}", ulid::Ulid::new().to_string().to_lowercase());
        let admin = with_database(&base, "postgres");
        let db = Database::connect(admin.as_str())
            .await
            .unwrap_or_else(|e| panic!("connect to TEST_DATABASE_URL's server: {e}"));
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        db.close().await.ok();
        Some(Self {
            url: with_database(&base, &name),
            engine: Engine::Postgres,
            _dir: None,
            pg: Some((admin, name)),
        })
    }

    /// SQLite always, and PostgreSQL too when `TEST_DATABASE_URL` is set: tests of the
    /// database run on every engine the machine offers.
    pub async fn all() -> Vec<Self> {
        let mut v = vec![Self::sqlite()];
        if let Some(pg) = Self::postgres().await {
            v.push(pg);
        }
        v
    }

    /// The URL to connect with (`DATABASE_URL`).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }
}

/// `url` with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs outside any runtime: use a thread with one of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(db) = Database::connect(admin.as_str()).await {
                    let _ = db
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    db.close().await.ok();
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
