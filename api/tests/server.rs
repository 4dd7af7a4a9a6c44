#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! The HTTP server of `drover_api::server`: what poem's server gave, kept when the
//! API began serving hyper's connections itself (HTTP/1.1 and HTTP/2 prior
//! knowledge on one port, a drain that lets requests finish, and an end to it).

use std::sync::Arc;
use std::time::Duration;

use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use poem::{Route, get, handler};
use tokio::sync::{Notify, oneshot};

const T: Duration = Duration::from_secs(10);

/// Serves `/fast` (answers at once) and `/slow` (answers once `release` is
/// notified, after notifying `entered`) until `stop` fires, draining at most `drain`.
struct Served {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    entered: Arc<Notify>,
    release: Arc<Notify>,
}

async fn serve(drain: Duration) -> Served {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (e, r) = (Arc::clone(&entered), Arc::clone(&release));
    let slow = poem::endpoint::make(move |_| {
        let (e, r) = (Arc::clone(&e), Arc::clone(&r));
        async move {
            let released = r.notified();
            e.notify_one();
            released.await;
            "slow"
        }
    });
    #[handler]
    fn fast() -> &'static str {
        "fast"
    }
    let app = Route::new().at("/fast", get(fast)).at("/slow", get(slow));
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(drover_api::server::run(
        acceptor,
        app,
        async move {
            let _ = stopped.await;
        },
        drain,
    ));
    Served {
        base: format!("http://{addr}"),
        stop: Some(stop),
        task,
        entered,
        release,
    }
}

fn client(h2: bool) -> reqwest::Client {
    let b = reqwest::Client::builder().timeout(T);
    let b = if h2 { b.http2_prior_knowledge() } else { b };
    b.build().unwrap()
}

#[tokio::test]
async fn http1_and_http2_share_the_port_and_a_request_in_flight_finishes_in_the_drain() {
    let mut s = serve(T).await;
    for (h2, version) in [
        (false, reqwest::Version::HTTP_11),
        (true, reqwest::Version::HTTP_2),
    ] {
        let r = client(h2)
            .get(format!("{}/fast", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), r.version()), (200, version));
        assert_eq!(r.text().await.unwrap(), "fast");
    }
    // A request under way when shutdown starts.
    let entered = s.entered.notified();
    let slow = tokio::spawn({
        let url = format!("{}/slow", s.base);
        async move { client(false).get(url).send().await?.text().await }
    });
    tokio::time::timeout(T, entered).await.unwrap();
    s.stop.take().unwrap().send(()).unwrap();
    // New connections are refused once the listener is closed...
    let fast = format!("{}/fast", s.base);
    drover_tests::eventually_async(T, "new connections to be refused", || async {
        client(false)
            .get(&fast)
            .send()
            .await
            .err()
            .filter(reqwest::Error::is_connect)
    })
    .await;
    assert!(
        !s.task.is_finished(),
        "the server waits for the request under way"
    );
    // ...and the one under way still gets its answer, after which the server ends.
    s.release.notify_one();
    assert_eq!(
        tokio::time::timeout(T, slow)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        "slow"
    );
    tokio::time::timeout(T, s.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_request_still_open_after_the_drain_timeout_is_dropped() {
    let mut s = serve(Duration::from_millis(300)).await;
    let entered = s.entered.notified();
    let slow = tokio::spawn({
        let url = format!("{}/slow", s.base);
        async move { client(false).get(url).send().await }
    });
    tokio::time::timeout(T, entered).await.unwrap();
    s.stop.take().unwrap().send(()).unwrap();
    // The handler never finishes: the server ends anyway, and the client's request
    // fails instead of hanging.
    tokio::time::timeout(T, s.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let r = tokio::time::timeout(T, slow).await.unwrap().unwrap();
    assert!(r.is_err(), "the connection was dropped: {r:?}");
}
