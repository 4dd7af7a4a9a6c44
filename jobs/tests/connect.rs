//! Connecting and migrating, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use drover_jobs::connect;
use drover_tests::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_migrating_at_once_both_succeed() {
    for t in TestDb::all().await {
        // Two "processes": two pools on the same database, migrating together.
        let (a, b) = tokio::join!(connect::database(t.url()), connect::database(t.url()));
        let (a, b) = (a.unwrap(), b.unwrap());
        let (ra, rb) = tokio::join!(connect::migrate(&a), connect::migrate(&b));
        ra.unwrap_or_else(|e| panic!("{:?}: {e:#}", t.engine()));
        rb.unwrap_or_else(|e| panic!("{:?}: {e:#}", t.engine()));
        connect::ping_database(&a).await.unwrap();
        use drover_migration::MigratorTrait;
        assert!(
            drover_migration::Migrator::get_pending_migrations(&a)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_sqlite_database_is_created_with_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/drover.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let db = connect::database(&url).await.unwrap();
    connect::migrate(&db).await.unwrap();
    assert!(path.exists());
}

/// The failure of a cold CI run: an API migrating a new SQLite file while a worker
/// opens it. SQLite answers "database is locked" at once, without waiting out the busy
/// timeout, where waiting could deadlock (two connections turning the new file's
/// journal to WAL); opening the database must wait that out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_new_sqlite_file_another_process_is_migrating_succeeds() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("drover.db").display()
        );
        let migrating = async {
            let db = connect::database(&url).await?;
            connect::migrate(&db).await
        };
        let opening = futures::future::join_all((0..6).map(|_| connect::database(&url)));
        let (migrated, opened) = tokio::join!(migrating, opening);
        migrated.unwrap_or_else(|e| panic!("round {round}: migrating: {e:#}"));
        for db in opened {
            let db = db.unwrap_or_else(|e| panic!("round {round}: opening: {e:#}"));
            connect::ping_database(&db).await.unwrap();
        }
    }
}
