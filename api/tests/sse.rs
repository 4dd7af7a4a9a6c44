//! Progress events over Server-Sent Events, against a real API, a real Redis and real
//! apalis workers.
#![allow(clippy::unwrap_used)]

mod common;

use drover_tests::each_target;
use std::collections::HashSet;
use std::time::Duration;

use common::sse::{
    self, ApiProc, Msg, Sse, StepGate, WAIT, client, enqueue, handles_on, job_events, rows_done,
    worker,
};
use common::{ADMIN, SUBMITTER, TestApi};
use drover_jobs::QueueName;
use drover_jobs::events::EventType;
use drover_tests::eventually_async;
use serde_json::json;

/// A stream entry id (`<ms>-<seq>`) in the order Redis gives entries.
fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap(), seq.parse().unwrap())
}

fn ids(ms: &[Msg]) -> Vec<String> {
    ms.iter().map(|m| m.parsed().id).collect()
}

/// Waits until the stream of `q` holds an event of job `id` satisfying `pred`.
async fn wait_event(
    api: &TestApi,
    q: QueueName,
    id: &str,
    what: &str,
    pred: impl Fn(&drover_jobs::events::Event) -> bool,
) {
    eventually_async(WAIT, what, || async {
        job_events(api.queue(q), id)
            .await
            .iter()
            .any(&pred)
            .then_some(())
    })
    .await;
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_progress_arrives_in_order_then_completed_and_the_stream_closes(target) {
    let api = sse::start_at(target, &[]).await;
    let q = QueueName::Analysis;
    let gate = StepGate::closed();
    let _w = worker(&api.redis, &api.namespace, api.queue(q), &gate);
    let id = enqueue(api.queue(q), 4).await;

    let mut sse = Sse::open(&api.v1(&format!("/jobs/{id}/events")), None).await;
    assert_eq!(sse.status, 200);
    let mut got = Vec::new();
    // Release each step only once its progress has arrived: one event per step.
    while let Some(m) = sse.next().await {
        if rows_done(&m).is_some() {
            gate.release();
        }
        got.push(m);
    }
    assert!(sse.ended());
    let kinds: Vec<&str> = got.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "job:queued",
            "job:active",
            "job:progress",
            "job:progress",
            "job:progress",
            "job:progress",
            "job:completed"
        ]
    );
    let rows: Vec<u64> = got.iter().filter_map(rows_done).collect();
    assert_eq!(rows, [1, 2, 3, 4]);
    let percents: Vec<u8> = got.iter().map(|m| m.parsed().progress).collect();
    assert_eq!(percents, [0, 0, 25, 50, 75, 99, 100]);
    // The progress carries a rate and an ETA, and the message says so.
    let p = got[3].json();
    assert_eq!(p["data"]["rows_total"], 4);
    assert!(p["data"]["rows_per_s"].is_number(), "{p}");
    assert!(
        p["message"]
            .as_str()
            .unwrap()
            .starts_with("testing: 2 of 4 rows"),
        "{p}"
    );
    // Each message is the stream's event: SSE id = event id, SSE type = event type.
    for m in &got {
        let e = m.parsed();
        assert_eq!(m.id.as_deref(), Some(e.id.as_str()));
        assert_eq!(m.event, e.kind.as_str());
        assert_eq!(e.job_id, id);
    }
    let stored: Vec<String> = job_events(api.queue(q), &id)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids(&got), stored);
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(target) {
    let api = sse::start_at(target, &[]).await;
    let q = QueueName::Export;
    let gate = StepGate::closed();
    let _w = worker(&api.redis, &api.namespace, api.queue(q), &gate);
    let id = enqueue(api.queue(q), 5).await;
    let url = api.v1(&format!("/jobs/{id}/events"));

    // Read up to the first progress, then go away.
    let mut first = Sse::open(&url, None).await;
    let before = first.until(|m| rows_done(m) == Some(1)).await;
    drop(first);
    // The job goes on while nobody listens: two more steps.
    for n in [2, 3] {
        gate.release();
        wait_event(&api, q, &id, "the next progress", |e| {
            e.data["rows_done"] == n
        })
        .await;
    }
    let last = before.last().unwrap().id.clone().unwrap();
    let mut second = Sse::open(&url, Some(&last)).await;
    assert_eq!(second.status, 200);
    // The missed steps are replayed; the rest arrive live.
    let mut after = Vec::new();
    while let Some(m) = second.next().await {
        if matches!(rows_done(&m), Some(n) if n >= 3) {
            gate.release();
        }
        after.push(m);
    }
    let rows: Vec<u64> = after.iter().filter_map(rows_done).collect();
    assert_eq!(rows, [2, 3, 4, 5]);
    assert_eq!(after.last().unwrap().event, "job:completed");

    let mut all = ids(&before);
    all.extend(ids(&after));
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an event came twice: {all:?}");
    let stored: Vec<String> = job_events(api.queue(q), &id)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all, stored);
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_stream_filters_and_resumes_across_queues_with_a_cursor(target) {
    let api = sse::start_at(target, &[]).await;
    let url = api.v1("/sse/events?queue=export,aggregation&type=job:progress,queue:paused");
    let mut a = Sse::open(&url, None).await;
    assert_eq!(a.status, 200);
    let append = |q: QueueName, kind: EventType, n: u32| {
        let queue = api.queue(q).clone();
        async move {
            queue
                .append_event(
                    kind,
                    &format!("j{n}"),
                    &format!("{q} {n}"),
                    &json!({ "n": n }),
                )
                .await
                .unwrap()
        }
    };
    let mut n = 0;
    let mut burst = |count: u32| {
        let mut v = Vec::new();
        for _ in 0..count {
            n += 1;
            v.push(n);
        }
        v
    };
    let mut wanted = Vec::new();
    for i in burst(6) {
        let q = if i % 2 == 0 {
            QueueName::Export
        } else {
            QueueName::Aggregation
        };
        wanted.push((q, append(q, EventType::JobProgress, i).await));
        // Filtered out: another queue, another type.
        append(QueueName::Cleanup, EventType::JobProgress, i).await;
        append(q, EventType::JobActive, i).await;
    }
    let got_a: Vec<Msg> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(a.next().await.unwrap());
        }
        v
    };
    drop(a);
    // Missed while away, in both queues.
    for i in burst(4) {
        let q = if i % 2 == 0 {
            QueueName::Export
        } else {
            QueueName::Aggregation
        };
        wanted.push((q, append(q, EventType::JobProgress, i).await));
    }
    let cursor = got_a.last().unwrap().id.clone().unwrap();
    assert!(
        cursor.contains("export:") && cursor.contains("aggregation:"),
        "{cursor}"
    );
    let mut b = Sse::open(&url, Some(&cursor)).await;
    let mut got_b = Vec::new();
    for _ in 0..4 {
        got_b.push(b.next().await.unwrap());
    }
    // Then live events, of both followed types.
    assert!(api.queue(QueueName::Aggregation).pause().await.unwrap());
    assert_eq!(b.next().await.unwrap().event, "queue:paused");
    for i in burst(2) {
        let id = append(QueueName::Export, EventType::JobProgress, i).await;
        wanted.push((QueueName::Export, id));
    }
    for _ in 0..2 {
        got_b.push(b.next().await.unwrap());
    }
    let got: Vec<(QueueName, String)> = got_a
        .iter()
        .chain(&got_b)
        .map(|m| {
            let e = m.parsed();
            assert_eq!(e.kind, EventType::JobProgress);
            (e.queue.parse().unwrap(), e.id)
        })
        .collect();
    // Each queue's events in its stream's order, each once; across queues only
    // time order holds (ids of different streams do not compare).
    for q in [QueueName::Export, QueueName::Aggregation] {
        let of = |v: &[(QueueName, String)]| -> Vec<String> {
            v.iter()
                .filter(|(x, _)| *x == q)
                .map(|(_, id)| id.clone())
                .collect()
        };
        assert_eq!(of(&got), of(&wanted), "{q}");
    }
    assert_eq!(got.len(), wanted.len());
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_delay_another(target) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let api = sse::start_at(target, &[("DROVER_SSE_CLIENT_BUFFER", "64")]).await;
    let q = api.queue(QueueName::Export).clone();
    // The stalled client: a tiny receive buffer, and it never reads past the head.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = sock.connect(api.addr).await.unwrap();
    stalled
        .write_all(format!("GET /api/v1/sse/events?queue=export HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(stalled.read(&mut b).await.unwrap(), 1);
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.contains(" 200 "), "{head}");
    // The reading client passes each event id on as it arrives.
    let mut reader = Sse::open(&api.v1("/sse/events?queue=export"), None).await;
    let (tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = reader.next().await {
            let _ = tx.send((m.event.clone(), m.id.clone()));
        }
    });
    // Big events, one at a time, each awaited at the reading client, until the
    // stalled client's socket and buffer are full and it is dropped.
    let filler = "x".repeat(16_000);
    let mut sent = 0;
    while api.status().await["clients"]["lagged_disconnects"] == 0 {
        assert!(sent < 2000, "the stalled client never fell behind");
        let id = q
            .append_event(EventType::JobProgress, "j", &filler, &json!({}))
            .await
            .unwrap();
        sent += 1;
        let (kind, got) = tokio::time::timeout(Duration::from_secs(5), arrived.recv())
            .await
            .expect("the reading client is not held up")
            .unwrap();
        assert_eq!(
            (kind.as_str(), got.as_deref()),
            ("job:progress", Some(format!("export:{id}").as_str()))
        );
    }
    let status = api.status().await;
    assert_eq!(
        status["clients"]["lagged_disconnects"], 1,
        "only the stalled client lags"
    );
    assert_eq!(status["clients"]["event_streams"], 1);
    // The reading client goes on as before.
    let id = q
        .append_event(EventType::JobProgress, "j", "", &json!({}))
        .await
        .unwrap();
    let (_, got) = tokio::time::timeout(WAIT, arrived.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, Some(format!("export:{id}")));
    // The stalled client, once it reads, gets what it had buffered, then the notice.
    let mut body = Vec::new();
    tokio::time::timeout(WAIT, stalled.read_to_end(&mut body))
        .await
        .unwrap()
        .unwrap();
    let mut text = String::from_utf8(body).unwrap();
    let msgs = sse::parse_blocks(&mut text);
    let events: Vec<&Msg> = msgs.iter().filter(|m| !m.comment).collect();
    let last = events.last().unwrap();
    assert_eq!(last.event, "stream:lagged");
    let delivered: Vec<String> = events[..events.len() - 1]
        .iter()
        .map(|m| m.parsed().id)
        .collect();
    let stored: Vec<String> = q
        .events_after("0", 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(!delivered.is_empty());
    assert_eq!(
        delivered,
        stored[..delivered.len()],
        "the stalled client's events are a prefix"
    );
    assert!(delivered.len() < sent, "it cannot have had them all");
    // Its notice says where to resume: after the last event it was given.
    assert_eq!(last.id, events[events.len() - 2].id);
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_gets_its_final_state_and_then_204(target) {
    let api = sse::start_at(target, &[]).await;
    let q = QueueName::Cleanup;
    let gate = StepGate::open();
    let _w = worker(&api.redis, &api.namespace, api.queue(q), &gate);
    let id = enqueue(api.queue(q), 3).await;
    wait_event(&api, q, &id, "the job to complete", |e| {
        e.kind == EventType::JobCompleted
    })
    .await;
    let stored = job_events(api.queue(q), &id).await;
    let url = api.v1(&format!("/jobs/{id}/events"));

    let mut s = Sse::open(&url, None).await;
    let got = s.rest().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].event, "job:completed");
    assert_eq!(got[0].id.as_ref(), Some(&stored.last().unwrap().id));
    assert_eq!(got[0].json()["data"]["result"]["steps"], 3);

    // Resuming from its end: nothing more will come.
    let r = client()
        .get(&url)
        .header("Last-Event-ID", got[0].id.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Resuming from the middle: the rest, then the end.
    let mut s = Sse::open(&url, Some(&stored[1].id)).await;
    let rest: Vec<String> = s.rest().await.iter().map(|m| m.parsed().id).collect();
    let expected: Vec<String> = stored[2..].iter().map(|e| e.id.clone()).collect();
    assert_eq!(rest, expected);
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_event_works_in_dev_and_is_404_in_prod(target) {
    let dev = sse::start_at(target, &[]).await;
    let mut s = Sse::open(&dev.v1("/sse/events?queue=analysis"), None).await;
    let r = client()
        .post(dev.v1("/sse/test-event"))
        .json(&json!({ "queue": "analysis", "type": "job:progress", "message": "hello", "data": { "rows_done": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let published: serde_json::Value = r.json().await.unwrap();
    let m = s.next().await.unwrap();
    assert_eq!(m.event, "job:progress");
    let e = m.parsed();
    assert_eq!(e.id, published["id"].as_str().unwrap());
    assert_eq!(e.message, "hello");
    assert_eq!(e.data["rows_done"], 1);
    assert!(e.job_id.starts_with("test-"));

    let prod = sse::start_at(target, &[("DROVER_ENV", "prod")]).await;
    let r = client()
        .post(prod.v1("/sse/test-event"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        prod.queue(QueueName::Export)
            .events_after("0", 10)
            .await
            .unwrap()
            .is_empty()
    );
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_clients_and_shows_each_relay_caught_up(target) {
    // A closed connection is noticed when the next write fails: keep-alives bound that.
    let api = sse::start_at(target, &[("DROVER_SSE_KEEP_ALIVE_MS", "200")]).await;
    let q = api.queue(QueueName::Export).clone();
    let gate = StepGate::closed();
    let _w = worker(&api.redis, &api.namespace, &q, &gate);
    let id = enqueue(&q, 1).await;
    let job = Sse::open(&api.v1(&format!("/jobs/{id}/events")), None).await;
    let all = Sse::open(&api.v1("/sse/events"), None).await;
    let last = q
        .append_event(EventType::JobProgress, "x", "", &json!({}))
        .await
        .unwrap();
    let status = eventually_async(WAIT, "the export relay to catch up", || async {
        let s = api.status().await;
        let relays = s["relays"].as_array().unwrap().clone();
        let export = relays
            .iter()
            .find(|r| r["queue"] == "export")
            .unwrap()
            .clone();
        // At or past it, and at the stream's end: the worker's own events for the
        // job may come after it.
        let read = export["last_read_id"].as_str().map(stream_id);
        let end = export["stream_last_id"].as_str().map(stream_id);
        (read >= Some(stream_id(&last)) && read == end).then_some(s)
    })
    .await;
    assert_eq!(status["clients"]["job_streams"], 1);
    assert_eq!(status["clients"]["event_streams"], 1);
    assert_eq!(status["clients"]["total"], 2);
    assert_eq!(status["keep_alive_ms"], 200);
    let relays = status["relays"].as_array().unwrap();
    assert_eq!(relays.len(), 4);
    for r in relays {
        assert_eq!(r["connected"], true, "{r}");
        assert_eq!(r["behind_ms"], 0, "{r}");
    }
    drop(job);
    drop(all);
    eventually_async(WAIT, "the clients to be gone", || async {
        (api.status().await["clients"]["total"] == 0).then_some(())
    })
    .await;
    gate.release();
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_comments_flow_on_an_idle_stream(target) {
    let api = sse::start_at(target, &[("DROVER_SSE_KEEP_ALIVE_MS", "100")]).await;
    let mut s = Sse::open(&api.v1("/sse/events"), None).await;
    for _ in 0..3 {
        let m = s.next_any().await.unwrap();
        assert!(m.comment, "{m:?}");
    }
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_error_envelope(target) {
    let api = sse::start_at(target, &[]).await;
    let c = client();
    for (url, header, status) in [
        (api.v1("/sse/events?queue=nope"), None, 400),
        (api.v1("/sse/events?type=job:exploded"), None, 400),
        (api.v1("/sse/events"), Some("garbage"), 400),
        (api.v1("/jobs/01J0000000000000000000000X/events"), None, 404),
    ] {
        let mut req = c.get(&url);
        if let Some(h) = header {
            req = req.header("Last-Event-ID", h);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{url}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_survives_a_redis_restart() {
    let mut redis = drover_tests::TestRedis::start_durable();
    let ns = drover_tests::namespace();
    let api = sse::start_on(&redis.url(), &ns, &[]).await;
    let q = api.queue(QueueName::Export).clone();
    let mut s = Sse::open(&api.v1("/sse/events?queue=export"), None).await;
    let first = q
        .append_event(EventType::JobProgress, "a", "before", &json!({}))
        .await
        .unwrap();
    assert_eq!(s.next().await.unwrap().parsed().id, first);

    redis.kill();
    eventually_async(WAIT, "the relay to notice the outage", || async {
        let st = api.status().await;
        let export = st["relays"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["queue"] == "export")
            .unwrap()
            .clone();
        (export["connected"] == false).then_some(())
    })
    .await;
    redis.restart();
    // The same stream, still open, carries events appended after the restart.
    let after = eventually_async(WAIT, "Redis to take writes again", || async {
        q.append_event(EventType::JobProgress, "a", "after", &json!({}))
            .await
            .ok()
    })
    .await;
    let m = s.next().await.unwrap();
    assert_eq!(m.parsed().id, after);
    assert_eq!(m.parsed().message, "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_processes_both_deliver_every_event_of_a_job() {
    let url = drover_tests::shared_redis_url();
    let ns = drover_tests::namespace();
    let (a, b) = tokio::join!(ApiProc::start(&url, &ns), ApiProc::start(&url, &ns));
    let (redis, queues) = handles_on(&url, &ns);
    let q = queues.get(QueueName::Export);
    let gate = StepGate::closed();
    let _w = worker(&redis, &ns, q, &gate);
    // Both processes' firehoses, open before the job exists.
    let mut all_a = Sse::open(&a.v1("/sse/events?queue=export"), None).await;
    let mut all_b = Sse::open(&b.v1("/sse/events?queue=export"), None).await;
    let id = enqueue(q, 3).await;
    let mut job_a = Sse::open(&a.v1(&format!("/jobs/{id}/events")), None).await;
    let mut job_b = Sse::open(&b.v1(&format!("/jobs/{id}/events")), None).await;
    // Step the job only when both processes have delivered its latest progress.
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    while let Some(m) = job_a.next().await {
        let mb = job_b.next().await.expect("process b delivers it too");
        assert_eq!(mb.id, m.id);
        got_b.push(mb);
        let progress = rows_done(&m).is_some();
        got_a.push(m);
        if progress {
            gate.release();
        }
    }
    assert!(
        job_b.next().await.is_none(),
        "process b ends the stream too"
    );
    let stored: Vec<String> = job_events(q, &id).await.into_iter().map(|e| e.id).collect();
    assert_eq!(stored.len(), 6, "queued, active, 3 progress, completed");
    assert_eq!(ids(&got_a), stored);
    assert_eq!(ids(&got_b), stored);
    for s in [&mut all_a, &mut all_b] {
        let got = s.until(|m| m.event == "job:completed").await;
        assert_eq!(ids(&got), stored);
    }
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_event_routes(target) {
    let api = sse::start_at(target, &[]).await;
    let spec: serde_json::Value = client()
        .get(format!("http://{}/openapi.json", api.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = &spec["paths"];
    let job = &paths["/api/v1/jobs/{id}/events"]["get"];
    assert_eq!(job["operationId"], "get_job_events");
    assert!(
        job["responses"]["200"]["content"]["text/event-stream"].is_object(),
        "{job}"
    );
    assert!(job["responses"]["204"].is_object(), "{job}");
    let params: Vec<&str> = job["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        params.contains(&"Last-Event-ID") && params.contains(&"last_event_id"),
        "{params:?}"
    );
    for (path, op) in [
        ("/api/v1/sse/events", "get"),
        ("/api/v1/sse/status", "get"),
        ("/api/v1/sse/test-event", "post"),
    ] {
        assert_eq!(paths[path][op]["tags"][0], "Events", "{path}");
    }
    assert!(spec["components"]["schemas"]["Event"]["properties"]["type"].is_object());
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_event_streams_at_once() {
    let url = drover_tests::shared_redis_url();
    let ns = drover_tests::namespace();
    let mut api = ApiProc::start(&url, &ns).await;
    let mut s = Sse::open(&api.v1("/sse/events"), None).await;
    assert_eq!(s.status, 200);
    // The drain would wait 10 s for a stream that never ends; it must not.
    let code = tokio::task::spawn_blocking(move || {
        let code = api.terminate(Duration::from_secs(5));
        (api, code)
    })
    .await
    .unwrap()
    .1;
    assert_eq!(code, Some(0));
    assert!(s.next().await.is_none(), "the stream ended");
}

each_target! {
#[tokio::test]
async fn event_streams_need_a_key_and_the_relay_status_an_admin_key(target) {
    let api = sse::start_at(target, &[]).await;
    let anonymous = reqwest::Client::new();
    for path in ["/sse/events", "/jobs/01JNOSUCHJOB/events", "/sse/status"] {
        let r = anonymous.get(api.v1(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a key");
    }
    let r = anonymous
        .post(api.v1("/sse/test-event"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A submitter follows its own jobs' events (tenants.rs), not whole queues; it may
    // not look at the relay or publish.
    let r = reqwest::Client::new()
        .get(api.v1("/sse/events?queue=export"))
        .bearer_auth(SUBMITTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let sub = reqwest::Client::new();
    let r = sub
        .get(api.v1("/sse/events?queue=export"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    drop(r);
    let r = sub
        .get(api.v1("/sse/status"))
        .bearer_auth(SUBMITTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = sub
        .post(api.v1("/sse/test-event"))
        .bearer_auth(SUBMITTER)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
}
}

// ---- hardening: per-key caps, gaps, bounded replays, test events ---------------------

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_cannot_hold_more_streams_than_its_cap(target) {
    // A closed connection is noticed at the next write: keep-alives come often here.
    let api = sse::start_at(target, &[
        ("DROVER_SSE_MAX_STREAMS_PER_KEY", "2"),
        ("DROVER_SSE_KEEP_ALIVE_MS", "100"),
    ])
    .await;
    let url = api.v1("/sse/events?queue=export");
    let first = Sse::open_with(&url, ADMIN, None).await;
    let second = Sse::open_with(&api.v1("/jobs/01JNOSUCHJOB/events"), ADMIN, None).await;
    // A job that does not exist takes no slot.
    assert_eq!(second.status, 404);
    let second = Sse::open_with(&url, ADMIN, None).await;
    assert_eq!((first.status, second.status), (200, 200));

    let r = client().get(&url).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum of 2 open event streams"),
        "{body}"
    );

    // Another key is not held back by this one.
    let (_, other) = drover_api::auth::keys::create_key(
        &api.dbc,
        "another admin",
        drover_api::auth::Role::Admin,
        "cli",
    )
    .await
    .unwrap();
    let another = Sse::open_with(&url, &other, None).await;
    assert_eq!(another.status, 200);
    // A stream that closes gives its slot back.
    drop(first);
    eventually_async(WAIT, "a slot to free up", || async {
        let r = client().get(&url).bearer_auth(ADMIN).send().await.unwrap();
        (r.status() == 200).then_some(())
    })
    .await;
}
}

/// Trims queue `q`'s stream to its last `keep` entries, as `MAXLEN` would.
async fn trim(api: &TestApi, q: QueueName, keep: usize) {
    let _: u64 = api
        .redis
        .query(
            redis::cmd("XTRIM")
                .arg(&api.queue(q).keys().events)
                .arg("MAXLEN")
                .arg(keep),
        )
        .await
        .unwrap();
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_from_before_the_trimmed_history_gets_a_gap_first(target) {
    let api = sse::start_at(target, &[]).await;
    let q = QueueName::Export;
    let queue = api.queue(q).clone();
    let publish = |n: u64| {
        let queue = queue.clone();
        async move {
            queue
                .append_event(
                    EventType::JobProgress,
                    "test-gap",
                    &n.to_string(),
                    &json!({}),
                )
                .await
                .unwrap()
        }
    };
    let url = api.v1("/sse/events?queue=export");
    let mut s = Sse::open(&url, None).await;
    publish(0).await;
    let seen = s.next().await.unwrap();
    let cursor = seen.id.clone().unwrap();
    drop(s);
    let mut ids = Vec::new();
    for n in 1..=10 {
        ids.push(publish(n).await);
    }
    // Events 1 to 7 are trimmed away before the client comes back.
    trim(&api, q, 3).await;

    let mut s = Sse::open(&url, Some(&cursor)).await;
    let gap = s.next().await.unwrap();
    assert_eq!(gap.event, "stream:gap", "{gap:?}");
    assert_eq!(gap.id, None, "a gap does not move the client's position");
    let d = gap.json();
    assert_eq!(d["queue"], "export");
    assert_eq!(d["first_available_id"], ids[7].as_str());
    assert_eq!(d["last_event_id"], seen.parsed().id.as_str());
    let rest: Vec<String> = s
        .until(|m| m.parsed().message == "10")
        .await
        .iter()
        .map(|m| m.parsed().id)
        .collect();
    assert_eq!(rest, ids[7..].to_vec());

    // A client whose position is still held gets no gap.
    let held = format!("export:{}", ids[8]);
    let mut s = Sse::open(&url, Some(&held)).await;
    let m = s.next().await.unwrap();
    assert_eq!(m.event, "job:progress");
    assert_eq!(m.parsed().id, ids[9]);

    // The same on a job's stream, resumed with a stream id.
    let id = enqueue(&queue, 1).await;
    let first = queue
        .append_event(EventType::JobProgress, &id, "a", &json!({}))
        .await
        .unwrap();
    for n in 11..=20 {
        publish(n).await;
    }
    let last = queue
        .append_event(EventType::JobProgress, &id, "b", &json!({}))
        .await
        .unwrap();
    trim(&api, q, 3).await;
    let mut s = Sse::open(&api.v1(&format!("/jobs/{id}/events")), Some(&first)).await;
    let gap = s.next().await.unwrap();
    assert_eq!(gap.event, "stream:gap", "{gap:?}");
    assert_eq!(gap.json()["last_event_id"], first.as_str());
    let first_held = queue.events_after("0", 1).await.unwrap()[0].id.clone();
    assert_eq!(gap.json()["first_available_id"], first_held.as_str());
    let m = s.next().await.unwrap();
    assert_eq!(m.parsed().id, last);
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_of_a_finished_job_is_bounded(target) {
    let api = sse::start_at(target, &[("DROVER_SSE_REPLAY_MAX", "3")]).await;
    let q = QueueName::Cleanup;
    let id = enqueue(api.queue(q), 1).await;
    // Many progress events (a worker's own are throttled), then the job runs.
    for n in 0..8 {
        api.queue(q)
            .append_event(EventType::JobProgress, &id, &n.to_string(), &json!({}))
            .await
            .unwrap();
    }
    let gate = StepGate::open();
    let _w = worker(&api.redis, &api.namespace, api.queue(q), &gate);
    wait_event(&api, q, &id, "the job to complete", |e| {
        e.kind == EventType::JobCompleted
    })
    .await;
    let stored = job_events(api.queue(q), &id).await;
    assert!(stored.len() > 8, "{stored:?}");
    let url = api.v1(&format!("/jobs/{id}/events"));

    let mut s = Sse::open(&url, Some(&stored[0].id)).await;
    let got = s.rest().await;
    assert_eq!(got.len(), 4, "a gap and the last 3 events: {got:?}");
    assert_eq!(got[0].event, "stream:gap");
    let left_out = stored.len() - 1 - 3;
    assert_eq!(
        got[0].json()["first_available_id"],
        stored[stored.len() - 3].id.as_str()
    );
    assert!(
        got[0].json()["message"]
            .as_str()
            .unwrap()
            .contains(&format!("({left_out} of this job's)")),
        "{:?}",
        got[0]
    );
    let sent: Vec<String> = got[1..].iter().map(|m| m.parsed().id).collect();
    let last3: Vec<String> = stored[stored.len() - 3..]
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(sent, last3);
    assert_eq!(got[3].event, "job:completed");

    // Within the bound, the replay is whole and has no gap.
    let mut s = Sse::open(&url, Some(&stored[stored.len() - 3].id)).await;
    let got = s.rest().await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|m| m.event.starts_with("job:")));
}
}

each_target! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_event_cannot_carry_a_real_jobs_identity(target) {
    let api = sse::start_at(target, &[]).await;
    let q = QueueName::Export;
    let id = enqueue(api.queue(q), 1).await;
    for job_id in [id.as_str(), "01JNOSUCHJOB", "x"] {
        let r = client()
            .post(api.v1("/sse/test-event"))
            .json(&json!({ "queue": "export", "type": "job:completed", "job_id": job_id }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{job_id}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("job_id"),
            "{body}"
        );
    }
    assert!(
        job_events(api.queue(q), &id)
            .await
            .iter()
            .all(|e| e.kind != EventType::JobCompleted),
        "no job:completed was forged"
    );
    // A test id is fine, whatever the type.
    let r = client()
        .post(api.v1("/sse/test-event"))
        .json(&json!({ "queue": "export", "type": "job:completed", "job_id": "test-mine" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["job_id"], "test-mine");
}
}
