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
