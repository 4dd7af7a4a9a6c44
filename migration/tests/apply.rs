//! The migrations apply, roll back and apply again, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use drover_migration::{Migrator, MigratorTrait};
use drover_tests::{Engine, TestDb};
use sea_orm::{ConnectionTrait, Database, Statement};

async fn tables(db: &sea_orm::DatabaseConnection, engine: Engine) -> Vec<String> {
    let sql = match engine {
        Engine::Sqlite => "SELECT name AS t FROM sqlite_master WHERE type = 'table' ORDER BY name",
        Engine::Postgres => {
            "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        }
    };
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "t").unwrap())
        .collect()
}

#[tokio::test]
async fn migrations_apply_and_roll_back_on_every_engine() {
    let dbs = TestDb::all().await;
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        assert_eq!(
            dbs.len(),
            2,
            "TEST_DATABASE_URL is set, so PostgreSQL must be tested too"
        );
    }
    for t in &dbs {
        let db = Database::connect(t.url()).await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        let after_up = tables(&db, t.engine()).await;
        for expected in [
            "aggregates",
            "api_keys",
            "exports",
            "job_history",
            "seaql_migrations",
        ] {
            assert!(
                after_up.iter().any(|n| n == expected),
                "{:?}: {expected} missing in {after_up:?}",
                t.engine()
            );
        }
        assert!(
            Migrator::get_pending_migrations(&db)
                .await
                .unwrap()
                .is_empty()
        );
        // Applying again is a no-op.
        Migrator::up(&db, None).await.unwrap();
        Migrator::down(&db, None).await.unwrap();
        let after_down = tables(&db, t.engine()).await;
        assert!(
            !after_down
                .iter()
                .any(|n| ["api_keys", "job_history", "exports", "aggregates"].contains(&n.as_str())),
            "{after_down:?}"
        );
        Migrator::up(&db, None).await.unwrap();
        assert_eq!(tables(&db, t.engine()).await, after_up);
        db.close().await.unwrap();
    }
}
