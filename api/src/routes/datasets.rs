//! Datasets: upload a CSV (streamed to disk, profiled on the way), list, read, delete.

use drover_analysis::profile::ColumnProfile;
use drover_analysis::store;
use drover_entities::dataset;
use poem::web::{Data, Multipart};
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::auth::SubmitterKey;
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::state::AppState;
use crate::upload::{self, CsvUpload, Limits};

/// What the upload's sample says about one column.
#[derive(Debug, Clone, Object)]
pub struct ColumnView {
    pub name: String,
    /// `text`, `integer`, `float`, `boolean`, `date` or `empty`.
    #[oai(rename = "type")]
    pub kind: String,
    pub null_share: f64,
    pub avg_len: f64,
    pub max_len: u64,
    pub distinct_share: f64,
    pub letters_share: f64,
    /// 0 to 1: how much the column looks like free text worth analysing.
    pub text_score: f64,
}

/// An uploaded dataset.
#[derive(Debug, Clone, Object)]
pub struct DatasetView {
    pub id: String,
    /// The name given at upload (shown only; the file is named after the id).
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    /// The column names, in file order.
    pub header: Vec<String>,
    /// Data rows, malformed ones included.
    pub rows: u64,
    /// Rows with the wrong number of fields or invalid UTF-8.
    pub malformed_rows: u64,
    /// Record-aligned byte offsets: the first data row, then about one per
    /// `DROVER_DATASET_CHUNK_BYTES`.
    pub chunk_offsets: Vec<u64>,
    /// The columns, best text candidates first.
    pub columns: Vec<ColumnView>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A page of datasets.
#[derive(Debug, Clone, Object)]
pub struct DatasetPage {
    pub items: Vec<DatasetView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

/// The view of a stored dataset.
pub fn view(m: &dataset::Model) -> DatasetView {
    let mut profile: Vec<ColumnProfile> = serde_json::from_str(&m.profile).unwrap_or_default();
    profile.sort_by(|a, b| b.text_score.total_cmp(&a.text_score));
    DatasetView {
        id: m.id.clone(),
        name: m.name.clone(),
        bytes: m.bytes as u64,
        sha256: m.sha256.clone(),
        header: serde_json::from_str(&m.header).unwrap_or_default(),
        rows: m.rows as u64,
        malformed_rows: m.malformed_rows as u64,
        chunk_offsets: serde_json::from_str(&m.chunk_offsets).unwrap_or_default(),
        columns: profile
            .into_iter()
            .map(|p| ColumnView {
                kind: serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                name: p.name,
                null_share: p.null_share,
                avg_len: p.avg_len,
                max_len: p.max_len,
                distinct_share: p.distinct_share,
                letters_share: p.letters_share,
                text_score: p.text_score,
            })
            .collect(),
        created_at: m.created_at,
    }
}

#[derive(ApiResponse)]
enum UploadResponse {
    /// The dataset was stored; `Location` is its URL.
    #[oai(status = 201)]
    Created(
        Json<DatasetView>,
        /// The dataset's URL.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(ApiResponse)]
enum GetResponse {
    /// The dataset.
    #[oai(status = 200)]
    Ok(Json<DatasetView>),
}

#[derive(ApiResponse)]
enum ListResponse {
    /// A page of datasets, oldest first.
    #[oai(status = 200)]
    Ok(Json<DatasetPage>),
}

#[derive(ApiResponse)]
enum DeleteResponse {
    /// The dataset and its file are gone.
    #[oai(status = 204)]
    Deleted,
}

fn default_limit() -> u32 {
    50
}

/// The datasets resource.
pub struct DatasetsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Datasets")]
impl DatasetsApi {
    /// Upload a dataset
    ///
    /// The CSV comes either as the raw body (`Content-Type: text/csv`, with `?name=`) or
    /// as `multipart/form-data` (its first file field; the name defaults to the file's
    /// name). It streams to disk and is parsed on the way: sha256, header, rows,
    /// malformed rows, record-aligned offsets and a profile of each column. Past
    /// `DROVER_DATASET_MAX_BYTES` the answer is 413; a file with no header, empty or
    /// duplicate column names or a header that is not UTF-8 answers 400. A refused upload
    /// leaves no file and no record.
    #[oai(path = "/datasets", method = "post", operation_id = "upload_dataset")]
    async fn upload(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        req: &Request,
        /// The dataset's name (required with a raw CSV body, else 422; a form's file name
        /// otherwise): up to 255 characters, not only spaces, no control characters.
        #[oai(validator(
            max_length = 255,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        ))]
        name: Query<Option<String>>,
        body: CsvUpload,
    ) -> Result<UploadResponse, ApiError> {
        let cfg = state.config();
        let limits = Limits {
            max_bytes: cfg.dataset_max_bytes,
            chunk_bytes: cfg.dataset_chunk_bytes,
        };
        let data_dir = cfg.common.data_dir.clone();
        let essence = req
            .content_type()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if let Some(len) = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > limits.max_bytes.saturating_add(64 * 1024)
        {
            return Err(ApiError::too_large(format!(
                "the dataset is larger than the limit of {} bytes (DROVER_DATASET_MAX_BYTES)",
                limits.max_bytes
            )));
        }
        let row = if essence == "multipart/form-data" {
            let mut mp = Multipart::from_request(req, &mut RequestBody::new(body.0))
                .await
                .map_err(|e| ApiError::bad_request(format!("multipart body: {e}")))?;
            // The form takes only its file: another field first is a malformed request.
            let found = mp
                .next_field()
                .await
                .map_err(|e| ApiError::bad_request(format!("multipart body: {e}")))?;
            if let Some(field) = &found
                && field.name() != Some("file")
            {
                return Err(ApiError::validation(
                    field.name().unwrap_or("form"),
                    "the form takes one field, `file`",
                ));
            }
            let field =
                found.ok_or_else(|| ApiError::validation("file", "the form has no file field"))?;
            let given = name
                .0
                .clone()
                .or_else(|| field.file_name().map(str::to_owned))
                .unwrap_or_else(|| "dataset.csv".to_owned());
            let name = upload::clean_name(&given)?;
            let reader = Box::pin(field.into_async_read());
            upload::receive(state.db(), &data_dir, limits, &name, reader).await?
        } else if essence == "text/csv" || essence == "application/csv" {
            let given = name.0.clone().ok_or_else(|| {
                ApiError::unprocessable("name", "is required with a raw CSV body")
            })?;
            let name = upload::clean_name(&given)?;
            upload::receive(
                state.db(),
                &data_dir,
                limits,
                &name,
                body.0.into_async_read(),
            )
            .await?
        } else {
            return Err(ApiError::validation(
                "Content-Type",
                "send the CSV as text/csv (with ?name=) or as multipart/form-data",
            ));
        };
        let location = format!("/api/v1/datasets/{}", row.id);
        Ok(UploadResponse::Created(Json(view(&row)), location))
    }

    /// List datasets
    #[oai(path = "/datasets", method = "get", operation_id = "list_datasets")]
    async fn list(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        /// The `next_cursor` of the previous page.
        #[oai(validator(max_length = 64, pattern = r"^[0-9A-Za-z]{1,64}$"))]
        cursor: Query<Option<String>>,
        /// Datasets per page, 1 to 500 (default 50).
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u32>,
    ) -> Result<ListResponse, ApiError> {
        let limit = u64::from(limit.0.clamp(1, 500));
        let mut rows = store::list_datasets(state.db(), cursor.0.as_deref(), limit + 1).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| r.id.clone())
        } else {
            None
        };
        Ok(ListResponse::Ok(Json(DatasetPage {
            items: rows.iter().map(view).collect(),
            next_cursor,
        })))
    }

    /// Get a dataset
    ///
    /// With its profile: the columns are listed best text candidates first.
    #[oai(path = "/datasets/:id", method = "get", operation_id = "get_dataset")]
    async fn get(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> Result<GetResponse, ApiError> {
        let row = store::get_dataset(state.db(), &id.0)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no dataset {:?}", id.0)))?;
        Ok(GetResponse::Ok(Json(view(&row))))
    }

    /// Delete a dataset
    ///
    /// Refused with 409 while an analysis of it is waiting, delayed or running.
    #[oai(
        path = "/datasets/:id",
        method = "delete",
        operation_id = "delete_dataset"
    )]
    async fn delete(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> Result<DeleteResponse, ApiError> {
        let row = store::get_dataset(state.db(), &id.0)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no dataset {:?}", id.0)))?;
        let live = store::live_runs(state.db(), &row.id).await?;
        if let Some(run) = live.first() {
            return Err(ApiError::conflict(format!(
                "analysis {} of this dataset is {}; delete it once the analysis has finished",
                run.job_id, run.status
            )));
        }
        store::delete_dataset(state.db(), &row.id).await?;
        let path = state
            .config()
            .common
            .data_dir
            .join("datasets")
            .join(&row.file_name);
        if let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a dataset file");
        }
        Ok(DeleteResponse::Deleted)
    }
}
