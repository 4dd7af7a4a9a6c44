//! Export files: list, read and download them (submitter keys).
//!
//! A download never builds a path from the request: the `{id}` must be a ULID (or the
//! request is refused with a 400), the file's name comes from the export's row, must be
//! a bare name of ours, and the file it names must resolve (symlinks followed) to a
//! file directly inside `<data dir>/exports/`. Anything else answers 404.
//!
//! Downloads are streamed from the file, with `Content-Length`, an `ETag` (the file's
//! sha256, so `If-None-Match` answers 304), and a single `Range` (206 with
//! `Content-Range`; 416 when it starts past the end), so a cut download resumes.
//! A `Range` with several ranges, or one that does not parse, is ignored and the whole
//! file is sent, as RFC 9110 allows.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use drover_entities::export;
use drover_jobs::data_dir;
use poem::Body;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::views::PageLinks;
use crate::auth::SubmitterKey;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::openapi::ApiTags;
use crate::state::AppState;

/// A ULID, as job (and export) ids are.
pub const ULID_PATTERN: &str = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$";

/// Links of an export.
#[derive(Debug, Clone, Object)]
pub struct ExportLinks {
    /// This export.
    #[oai(rename = "self")]
    pub self_: String,
    /// Its file.
    pub download: String,
    /// The job that made it.
    pub job: String,
}

/// An export file.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Export")]
pub struct ExportView {
    /// The export's id: the id of the export job that made it.
    pub id: String,
    /// `job_history`, `aggregates` or `analysis_results`.
    pub source: String,
    /// `csv` or `jsonl`.
    pub format: String,
    pub gzip: bool,
    /// The filters of the job's payload.
    pub filters: serde_json::Value,
    /// Data rows in the file.
    pub rows: i64,
    /// The file's size.
    pub bytes: i64,
    /// Hex SHA-256 of the file (the download's `ETag`).
    pub sha256: String,
    /// The name a download is saved as.
    pub file_name: String,
    pub created_at: DateTime<Utc>,
    /// The file is deleted after this.
    pub expires_at: DateTime<Utc>,
    pub links: ExportLinks,
}

/// The extension of an export's file.
fn extension(m: &export::Model) -> String {
    data_dir::export_extension(&m.format, m.gzip)
}

impl From<export::Model> for ExportView {
    fn from(m: export::Model) -> Self {
        let file_name = format!("export-{}.{}", m.id, extension(&m));
        Self {
            links: ExportLinks {
                self_: format!("/api/v1/exports/{}", m.id),
                download: format!("/api/v1/exports/{}/download", m.id),
                job: format!("/api/v1/jobs/{}", m.id),
            },
            filters: serde_json::from_str(&m.filters).unwrap_or(serde_json::Value::Null),
            id: m.id,
            source: m.source,
            format: m.format,
            gzip: m.gzip,
            rows: m.rows,
            bytes: m.bytes,
            sha256: m.sha256,
            file_name,
            created_at: m.created_at,
            expires_at: m.expires_at,
        }
    }
}

/// A page of exports.
#[derive(Debug, Clone, Object)]
pub struct ExportPage {
    /// Newest first.
    pub exports: Vec<ExportView>,
    /// Pass it back as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
    pub links: PageLinks,
}

#[derive(ApiResponse)]
enum ListExportsResponse {
    /// A page of exports.
    #[oai(status = 200)]
    Ok(Json<ExportPage>),
}

#[derive(ApiResponse)]
enum GetExportResponse {
    /// The export.
    #[oai(status = 200)]
    Ok(Json<ExportView>),
}

/// The answer to a download.
#[derive(ApiResponse)]
pub enum DownloadResponse {
    /// The whole file.
    #[oai(status = 200)]
    Full(
        Binary<Body>,
        /// `text/csv`, `application/x-ndjson` or `application/gzip`.
        #[oai(header = "Content-Type")]
        String,
        /// `attachment; filename="export-<id>.<ext>"`.
        #[oai(header = "Content-Disposition")]
        String,
        /// The file's size.
        #[oai(header = "Content-Length")]
        u64,
        /// The file's sha256, quoted.
        #[oai(header = "ETag")]
        String,
        /// `bytes`: ranges are supported.
        #[oai(header = "Accept-Ranges")]
        String,
    ),
    /// The bytes of the `Range` asked for.
    #[oai(status = 206)]
    Partial(
        Binary<Body>,
        /// As for 200.
        #[oai(header = "Content-Type")]
        String,
        /// As for 200.
        #[oai(header = "Content-Disposition")]
        String,
        /// The length of the range.
        #[oai(header = "Content-Length")]
        u64,
        /// The file's sha256, quoted.
        #[oai(header = "ETag")]
        String,
        /// `bytes`.
        #[oai(header = "Accept-Ranges")]
        String,
        /// `bytes <first>-<last>/<size>`.
        #[oai(header = "Content-Range")]
        String,
    ),
    /// `If-None-Match` names this file's `ETag`: the copy the client has is current.
    #[oai(status = 304)]
    NotModified(
        /// The file's sha256, quoted.
        #[oai(header = "ETag")]
        String,
    ),
    /// The `Range` starts past the end of the file.
    #[oai(status = 416)]
    RangeNotSatisfiable(
        Json<ErrorBody>,
        /// `bytes */<size>`.
        #[oai(header = "Content-Range")]
        String,
    ),
}

/// Exports per page when `limit` is not given.
fn default_limit() -> u32 {
    50
}

/// The export files.
pub struct ExportsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Exports")]
impl ExportsApi {
    /// List exports
    ///
    /// Newest first. Pass `next_cursor` back as `cursor` for the next page.
    #[oai(path = "/exports", method = "get", operation_id = "list_exports")]
    async fn list_exports(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        /// The `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"))]
        cursor: Query<Option<String>>,
        /// Exports per page, 1 to 1000 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "1000"))
        )]
        limit: Query<u32>,
    ) -> Result<ListExportsResponse, ApiError> {
        let mut q = export::Entity::find();
        if let Some(c) = &cursor.0 {
            q = q.filter(export::Column::Id.lt(c.to_ascii_uppercase()));
        }
        let mut rows = q
            .order_by_desc(export::Column::Id)
            .limit(u64::from(limit.0) + 1)
            .all(state.db())
            .await?;
        let more = rows.len() > limit.0 as usize;
        rows.truncate(limit.0 as usize);
        let next_cursor = more.then(|| rows.last().map(|r| r.id.clone())).flatten();
        let next = next_cursor
            .as_ref()
            .map(|c| format!("/api/v1/exports?limit={}&cursor={c}", limit.0));
        Ok(ListExportsResponse::Ok(Json(ExportPage {
            exports: rows.into_iter().map(Into::into).collect(),
            next_cursor,
            links: PageLinks { next },
        })))
    }

    /// Get an export
    #[oai(path = "/exports/:id", method = "get", operation_id = "get_export")]
    async fn get_export(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        /// The export's id (a ULID: the id of the job that made it).
        #[oai(validator(pattern = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"))]
        id: Path<String>,
    ) -> Result<GetExportResponse, ApiError> {
        let m = find(&state, &id.0).await?;
        Ok(GetExportResponse::Ok(Json(m.into())))
    }

    /// Download an export's file
    ///
    /// Streams the file. Send `Range: bytes=<first>-[<last>]` to resume a cut download
    /// (206), and `If-None-Match` with the `ETag` to skip an unchanged file (304).
    #[oai(
        path = "/exports/:id/download",
        method = "get",
        operation_id = "download_export"
    )]
    async fn download_export(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        /// The export's id (a ULID: the id of the job that made it).
        #[oai(validator(pattern = r"^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$"))]
        id: Path<String>,
        /// `bytes=<first>-[<last>]` or `bytes=-<suffix length>`.
        #[oai(name = "Range")]
        range: Header<Option<String>>,
        /// An `ETag` from an earlier download.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<DownloadResponse, ApiError> {
        let m = find(&state, &id.0).await?;
        let etag = format!("\"{}\"", m.sha256);
        if if_none_match
            .0
            .as_deref()
            .is_some_and(|h| etag_matches(h, &etag))
        {
            return Ok(DownloadResponse::NotModified(etag));
        }
        let path = file_path(&state, &m).await?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| gone(&m.id))?;
        let size = file.metadata().await.map_err(ApiError::internal)?.len();
        let content_type = if m.gzip {
            "application/gzip"
        } else if m.format == "csv" {
            "text/csv; charset=utf-8"
        } else {
            "application/x-ndjson"
        }
        .to_owned();
        let disposition = format!("attachment; filename=\"export-{}.{}\"", m.id, extension(&m));
        let ranges = "bytes".to_owned();
        match range.0.as_deref().map(|r| parse_range(r, size)) {
            Some(RangeAsk::Unsatisfiable) => Ok(DownloadResponse::RangeNotSatisfiable(
                Json(ErrorBody {
                    error: ErrorDetail {
                        code: "range_not_satisfiable".to_owned(),
                        message: format!(
                            "the range starts past the end of the file ({size} bytes)"
                        ),
                        details: None,
                    },
                }),
                format!("bytes */{size}"),
            )),
            Some(RangeAsk::Range(first, last)) => {
                file.seek(std::io::SeekFrom::Start(first))
                    .await
                    .map_err(ApiError::internal)?;
                let len = last - first + 1;
                Ok(DownloadResponse::Partial(
                    Binary(Body::from_async_read(file.take(len))),
                    content_type,
                    disposition,
                    len,
                    etag,
                    ranges,
                    format!("bytes {first}-{last}/{size}"),
                ))
            }
            Some(RangeAsk::Whole) | None => Ok(DownloadResponse::Full(
                Binary(Body::from_async_read(file.take(size))),
                content_type,
                disposition,
                size,
                etag,
                ranges,
            )),
        }
    }
}

async fn find(state: &AppState, id: &str) -> Result<export::Model, ApiError> {
    export::Entity::find_by_id(id.to_ascii_uppercase())
        .one(state.db())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no export {id:?}")))
}

fn gone(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "the file of export {id:?} is gone (it may have expired); run the export again"
    ))
}

/// The file of export `m`, checked to be a file directly inside the exports directory.
async fn file_path(state: &AppState, m: &export::Model) -> Result<PathBuf, ApiError> {
    if !data_dir::is_plain_file_name(&m.file_name) {
        tracing::error!(export = %m.id, file_name = %m.file_name, "export row names an unsafe file; refused");
        return Err(gone(&m.id));
    }
    let dir = data_dir::exports_dir(&state.config().common.data_dir);
    let dir = tokio::fs::canonicalize(&dir)
        .await
        .map_err(|_| gone(&m.id))?;
    let path = tokio::fs::canonicalize(dir.join(&m.file_name))
        .await
        .map_err(|_| gone(&m.id))?;
    let inside = path.parent() == Some(dir.as_path());
    let is_file = tokio::fs::metadata(&path)
        .await
        .is_ok_and(|md| md.is_file());
    if !inside || !is_file {
        tracing::error!(export = %m.id, path = %path.display(), "export file resolves outside the exports directory; refused");
        return Err(gone(&m.id));
    }
    Ok(path)
}

/// Whether an `If-None-Match` value names `etag` (or is `*`).
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeAsk {
    /// Send it all (no usable range: several ranges, or a malformed one).
    Whole,
    /// Bytes `first..=last`.
    Range(u64, u64),
    /// A range that starts past the end.
    Unsatisfiable,
}

fn parse_range(header: &str, size: u64) -> RangeAsk {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (num(a), num(b)) {
        // bytes=-n: the last n bytes.
        (None, Some(n)) if a.is_empty() => {
            if n == 0 || size == 0 {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Range(size.saturating_sub(n), size - 1)
            }
        }
        (Some(first), None) if b.is_empty() => {
            if first >= size {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Range(first, size - 1)
            }
        }
        (Some(first), Some(last)) if first <= last => {
            if first >= size {
                RangeAsk::Unsatisfiable
            } else {
                RangeAsk::Range(first, last.min(size - 1))
            }
        }
        _ => RangeAsk::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAsk::Range(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), RangeAsk::Range(90, 99));
        assert_eq!(parse_range("bytes=90-1000", 100), RangeAsk::Range(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeAsk::Range(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeAsk::Range(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=9-1", 100), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=x-1", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), RangeAsk::Whole);
    }

    #[test]
    fn etags_match_lists_weak_tags_and_star() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
