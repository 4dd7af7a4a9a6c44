//! Exports over HTTP: listing, reading, downloads with Range and ETag, and no way to
//! reach a file outside the exports directory.
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use chrono::Utc;
use common::{ADMIN, SUBMITTER, TestApi};
use drover_entities::export;
use drover_jobs::data_dir;
use sea_orm::{ActiveValue::Set, EntityTrait};
use sha2::{Digest, Sha256};

/// Ids that sort in the order they were made. `Ulid::new()` twice in one millisecond
/// gives two ids in random order, and the listing is newest id first.
fn next_id() -> String {
    static IDS: std::sync::Mutex<Option<ulid::Generator>> = std::sync::Mutex::new(None);
    let mut ids = IDS.lock().unwrap();
    ids.get_or_insert_with(ulid::Generator::new)
        .generate()
        .unwrap()
        .to_string()
}

/// Writes an export file of `bytes` and its row; returns the id.
async fn put_export(api: &TestApi, data: &Path, bytes: &[u8], file_name: Option<&str>) -> String {
    let id = next_id();
    let name = file_name
        .map(str::to_owned)
        .unwrap_or_else(|| data_dir::export_file_name(&id, 1, "csv", false));
    let dir = data_dir::exports_dir(data);
    std::fs::create_dir_all(&dir).unwrap();
    if file_name.is_none() {
        std::fs::write(dir.join(&name), bytes).unwrap();
    }
    let now = Utc::now();
    export::Entity::insert(export::ActiveModel {
        id: Set(id.clone()),
        source: Set("job_history".to_owned()),
        format: Set("csv".to_owned()),
        gzip: Set(false),
        filters: Set(r#"{"queue":"export"}"#.to_owned()),
        file_name: Set(name),
        bytes: Set(bytes.len() as i64),
        rows: Set(42),
        sha256: Set(hex::encode(Sha256::digest(bytes))),
        attempt: Set(1),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::hours(1)),
    })
    .exec_without_returning(&api.dbc)
    .await
    .unwrap();
    id
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

async fn start(data: &Path) -> TestApi {
    TestApi::builder()
        .env("DROVER_DATA_DIR", &data.display().to_string())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_listed_read_and_downloaded_whole_or_by_range() {
    let data = tempfile::tempdir().unwrap();
    let api = start(data.path()).await;
    let body = content(10_000);
    let id = put_export(&api, data.path(), &body, None).await;
    let other = put_export(&api, data.path(), b"a,b\n", None).await;

    let r = api.get("/api/v1/exports?limit=1", SUBMITTER).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["exports"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["exports"][0]["id"], other.as_str(), "newest first");
    let next = r.body["links"]["next"].as_str().unwrap().to_owned();
    let r = api.get(&next, SUBMITTER).await;
    assert_eq!(r.body["exports"][0]["id"], id.as_str());
    assert!(r.body["next_cursor"].is_null());

    let r = api.get(&format!("/api/v1/exports/{id}"), SUBMITTER).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["rows"], 42);
    assert_eq!(r.body["bytes"], 10_000);
    assert_eq!(r.body["filters"]["queue"], "export");
    let sha = r.body["sha256"].as_str().unwrap().to_owned();

    let url = api.url(&format!("/api/v1/exports/{id}/download"));
    let whole = api
        .client
        .get(&url)
        .bearer_auth(SUBMITTER)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    let h = whole.headers().clone();
    assert_eq!(h["content-type"], "text/csv; charset=utf-8");
    assert_eq!(h["content-length"], "10000");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(
        h["content-disposition"],
        format!("attachment; filename=\"export-{id}.csv\"").as_str()
    );
    assert_eq!(h["etag"], format!("\"{sha}\"").as_str());
    let got = whole.bytes().await.unwrap();
    assert_eq!(&got[..], &body[..]);
    assert_eq!(
        hex::encode(Sha256::digest(&got)),
        sha,
        "the sha256 matches the download"
    );

    // A cut download resumes where it stopped.
    for (range, first, last) in [
        ("bytes=1234-", 1234, 9999),
        ("bytes=100-199", 100, 199),
        ("bytes=-10", 9990, 9999),
        ("bytes=9000-20000", 9000, 9999),
    ] {
        let r = api
            .client
            .get(&url)
            .bearer_auth(SUBMITTER)
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes {first}-{last}/10000").as_str()
        );
        assert_eq!(
            r.headers()["content-length"],
            (last - first + 1).to_string().as_str()
        );
        assert_eq!(
            &r.bytes().await.unwrap()[..],
            &body[first..=last],
            "{range}"
        );
    }
    let r = api
        .client
        .get(&url)
        .bearer_auth(SUBMITTER)
        .header("Range", "bytes=10000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10000");
    let r = api
        .client
        .get(&url)
        .bearer_auth(SUBMITTER)
        .header("If-None-Match", format!("\"{sha}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.unwrap().is_empty());

    // A key is needed; an unknown export is a 404; a missing file too.
    let r = api.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let unknown = ulid::Ulid::new().to_string();
    api.get(&format!("/api/v1/exports/{unknown}/download"), ADMIN)
        .await
        .assert_error(404, "not_found");
    std::fs::remove_file(
        data_dir::exports_dir(data.path())
            .join(data_dir::export_file_name(&other, 1, "csv", false)),
    )
    .unwrap();
    api.get(&format!("/api/v1/exports/{other}/download"), SUBMITTER)
        .await
        .assert_error(404, "not_found");
    api.get("/api/v1/exports?cursor=nope", SUBMITTER)
        .await
        .assert_error(400, "validation_failed");
}

/// Sends a request line as it is (no client-side normalisation of `..` or `%2e`), and
/// returns the status and the whole response.
fn raw_get(base: &str, path: &[u8]) -> (u16, String) {
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(path);
    req.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    s.write_all(&req).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_exports_directory_can_be_served() {
    let data = tempfile::tempdir().unwrap();
    let api = start(data.path()).await;
    let secret = "TOP-SECRET-NOT-AN-EXPORT";
    std::fs::write(data.path().join("secret.txt"), secret).unwrap();
    std::fs::write(data.path().join("drover.db.txt"), secret).unwrap();
    // A real export, so the directory exists and the route works.
    let good = put_export(&api, data.path(), b"x\n", None).await;
    assert_eq!(
        raw_get(
            &api.base,
            format!("/api/v1/exports/{good}/download").as_bytes()
        )
        .0,
        200
    );

    let attempts: &[&[u8]] = &[
        b"/api/v1/exports/../secret.txt/download",
        b"/api/v1/exports/..%2fsecret.txt/download",
        b"/api/v1/exports/..%2Fsecret.txt/download",
        b"/api/v1/exports/%2e%2e%2fsecret.txt/download",
        b"/api/v1/exports/%252e%252e%252fsecret.txt/download",
        b"/api/v1/exports/..%252fsecret.txt/download",
        b"/api/v1/exports/....//secret.txt/download",
        b"/api/v1/exports/%2fetc%2fpasswd/download",
        b"/api/v1/exports//etc/passwd/download",
        b"/api/v1/exports/%00/download",
        b"/api/v1/exports/secret.txt%00/download",
        b"/api/v1/exports/..%5c..%5csecret.txt/download",
        b"/api/v1/exports/%2e%2e/download",
        b"/api/v1/exports/../../../../etc/passwd",
        b"/api/v1/exports/secret.txt/download",
        b"/api/v1/exports/01ARZ3NDEKTSV4RRFFQ69G5FA/download",
        b"/api/v1/exports/01ARZ3NDEKTSV4RRFFQ69G5FAVX/download",
    ];
    for path in attempts {
        let (status, text) = raw_get(&api.base, path);
        let shown = String::from_utf8_lossy(path);
        assert!(matches!(status, 400 | 404), "{shown}: {status}\n{text}");
        assert!(!text.contains(secret), "{shown} served the secret");
        assert!(!text.contains("root:"), "{shown} served /etc/passwd");
    }
    // A row that names a path (it cannot come from the worker; say a hand-edited
    // database) is refused too, and so is a symlink out of the directory.
    for name in ["../secret.txt", "/etc/passwd", "..", "%2e%2e%2fsecret.txt"] {
        let id = put_export(&api, data.path(), secret.as_bytes(), Some(name)).await;
        let (status, text) = raw_get(
            &api.base,
            format!("/api/v1/exports/{id}/download").as_bytes(),
        );
        assert_eq!(status, 404, "{name}: {text}");
        assert!(!text.contains(secret), "{name} served the secret");
    }
    let link_name = "export-link-1.csv";
    std::os::unix::fs::symlink(
        data.path().join("secret.txt"),
        data_dir::exports_dir(data.path()).join(link_name),
    )
    .unwrap();
    let id = put_export(&api, data.path(), secret.as_bytes(), Some(link_name)).await;
    let (status, text) = raw_get(
        &api.base,
        format!("/api/v1/exports/{id}/download").as_bytes(),
    );
    assert_eq!(status, 404, "symlink: {text}");
    assert!(!text.contains(secret), "the symlink served the secret");
}
