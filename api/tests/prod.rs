#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! Development defaults do not open a production API.

mod common;

use common::*;
use drover_api::auth::Role;
use drover_api::auth::keys;
use drover_tests::TestDb;

#[tokio::test]
async fn the_drover_up_dev_key_is_refused_in_prod_and_accepted_in_dev() {
    for db in TestDb::all().await {
        let api = TestApi::builder()
            .db(db)
            .env("DROVER_ENV", "prod")
            .start()
            .await;
        let (_, dev) = keys::create_key(
            &api.dbc,
            "dev admin (drover up)",
            Role::Admin,
            keys::source::DEV,
        )
        .await
        .unwrap();
        let (_, cli) = keys::create_key(&api.dbc, "ops", Role::Admin, keys::source::CLI)
            .await
            .unwrap();
        api.get("/api/v1/queues", &dev)
            .await
            .assert_error(401, "unauthorized");
        assert_eq!(api.get("/api/v1/queues", &cli).await.status, 200);
        assert_eq!(api.get("/api/v1/queues", ADMIN).await.status, 200);
        let db = api.stop().await;

        let api = TestApi::builder().db(db).start().await;
        assert_eq!(
            api.get("/api/v1/queues", &dev).await.status,
            200,
            "in dev the key of `drover up` works"
        );
    }
}

#[tokio::test]
async fn a_prod_api_whose_only_key_is_the_dev_key_does_not_start() {
    let db = TestDb::sqlite();
    let dbc = drover_jobs::connect::database(db.url()).await.unwrap();
    drover_jobs::connect::migrate(&dbc).await.unwrap();
    keys::create_key(
        &dbc,
        "dev admin (drover up)",
        Role::Admin,
        keys::source::DEV,
    )
    .await
    .unwrap();
    let e = TestApi::builder()
        .db(db)
        .env("DROVER_ENV", "prod")
        .env("DROVER_API_KEYS", "")
        .try_start()
        .await
        .err()
        .expect("a prod API with only the dev key must not start");
    assert!(e.contains("no API key"), "{e}");
}
