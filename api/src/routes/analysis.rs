//! Analyses: the checks a submission gets, the result of a run, its results file, and
//! estimates.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use drover_analysis::estimate::Model;
use drover_analysis::profile::{ColumnProfile, expected_scored_bytes};
use drover_analysis::store;
use drover_analysis::summary::BINS;
use drover_analysis::vader::Scorer;
use drover_jobs::kinds::AnalysisPayload;
use poem::Body;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::Deserialize;

use super::payload_docs::ColumnNameDoc;
use crate::auth::{Principal, SubmitterKey};
use crate::error::ApiError;
use crate::openapi::ApiTags;
use crate::payload::JsonBody;
use crate::state::AppState;

/// Checks an analysis payload against the datasets: the dataset must exist (else 404)
/// and have every column (else 422 naming the column), before anything is enqueued.
pub async fn check_payload(
    state: &AppState,
    payload: &serde_json::Value,
) -> Result<AnalysisPayload, ApiError> {
    let p: AnalysisPayload = serde_json::from_value(payload.clone())
        .map_err(|e| ApiError::validation("payload", e.to_string()))?;
    let ds = store::get_dataset(state.db(), &p.dataset_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no dataset {:?}: upload it first (POST /api/v1/datasets)",
                p.dataset_id
            ))
        })?;
    let header: Vec<String> = serde_json::from_str(&ds.header).unwrap_or_default();
    for (i, c) in p.columns.iter().enumerate() {
        if !header.contains(c) {
            return Err(ApiError::unprocessable(
                &format!("payload.columns[{i}]"),
                format!(
                    "dataset {:?} has no column {c:?}; its columns: {}",
                    ds.id,
                    header.join(", ")
                ),
            ));
        }
    }
    Ok(p)
}

/// Records a submitted analysis, so its dataset cannot be deleted under it.
pub async fn record_submitted(
    state: &AppState,
    job_id: &str,
    p: &AnalysisPayload,
) -> Result<(), ApiError> {
    let bytes = store::get_dataset(state.db(), &p.dataset_id)
        .await?
        .map_or(0, |d| d.bytes);
    store::record_run(state.db(), job_id, &p.dataset_id, &p.columns, bytes).await?;
    Ok(())
}

/// The sentiment summary of one column.
#[derive(Debug, Clone, Object)]
pub struct SummaryView {
    pub column: String,
    pub rows: u64,
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
    pub mean_compound: f64,
    /// 20 counts: compound bins of 0.1 from -1 to 1.
    pub histogram: Vec<u64>,
}

/// A malformed row.
#[derive(Debug, Clone, Object, Deserialize)]
pub struct MalformedView {
    pub row: u64,
    pub reason: String,
}

/// Where a run resumed from.
#[derive(Debug, Clone, Object)]
pub struct ResumedView {
    pub offset: u64,
    pub rows: u64,
}

/// An analysis run.
#[derive(Debug, Clone, Object)]
pub struct AnalysisView {
    pub job_id: String,
    pub dataset_id: String,
    pub columns: Vec<String>,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    pub attempt: i32,
    pub rows: u64,
    pub malformed_rows: u64,
    /// The first 100 malformed rows.
    pub malformed_examples: Vec<MalformedView>,
    pub summaries: Vec<SummaryView>,
    #[oai(skip_serializing_if_is_none)]
    pub elapsed_ms: Option<i64>,
    /// MB of CSV per second.
    #[oai(skip_serializing_if_is_none)]
    pub mb_per_sec: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub rows_per_sec: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub resumed_from: Option<ResumedView>,
    #[oai(skip_serializing_if_is_none)]
    pub results_bytes: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// What to estimate.
#[derive(Debug, Clone, Object, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateRequest {
    /// The uploaded dataset (404 if there is none).
    #[oai(validator(pattern = "^[A-Za-z0-9_-]{1,64}$"))]
    pub dataset_id: String,
    /// The columns to score, each once (422 for a column the dataset lacks).
    #[oai(validator(min_items = 1, max_items = 64, unique_items))]
    pub columns: Vec<ColumnNameDoc>,
}

/// How long an analysis should take.
#[derive(Debug, Clone, Object)]
pub struct EstimateView {
    pub rows: u64,
    /// Cells to score: rows × columns.
    pub cells: u64,
    pub seconds: f64,
    pub lower_seconds: f64,
    pub upper_seconds: f64,
    /// Bytes of the file per second of reading the estimate assumes (of the time not
    /// spent scoring, when `scoring_seconds` is known): `seconds` is `fixed_seconds`
    /// plus the file's bytes over this rate plus `scoring_seconds`.
    pub bytes_per_sec: f64,
    /// Bytes of the chosen columns' cells to score, from the dataset's column profile
    /// (good rows × non-empty share × average length).
    pub scored_bytes: u64,
    /// The part of `seconds` spent scoring: the chosen cells at what a cell and a byte
    /// of it cost in the last runs (timed on a sample of their rows); 0 when that is not
    /// known (every byte of the file then counts the same, whichever columns are
    /// chosen).
    pub scoring_seconds: f64,
    /// Seconds the estimate adds whatever the file's size (a run's setup and its
    /// rename): the least the last completed runs here spent so (more was a one-off,
    /// such as a worker's first run opening its database connections).
    pub fixed_seconds: f64,
    /// `measured` (the medians of the last completed runs here), `calibration` (what a
    /// worker measured at its start, before any run completed) or `api_sample` (no
    /// worker has calibrated yet: a rough figure from a sample this process scored).
    pub basis: String,
}

#[derive(ApiResponse)]
enum GetResponse {
    /// The analysis.
    #[oai(status = 200)]
    Ok(Json<AnalysisView>),
}

#[derive(ApiResponse)]
enum ResultsResponse {
    /// The results file: `row,<column>_compound,<column>_label,…`.
    #[oai(status = 200, content_type = "text/csv")]
    Ok(
        Binary<Body>,
        #[oai(header = "Content-Length")] u64,
        #[oai(header = "Content-Disposition")] String,
    ),
}

#[derive(ApiResponse)]
enum EstimateResponse {
    /// The estimate.
    #[oai(status = 200)]
    Ok(Json<EstimateView>),
}

/// Bytes per second of one core on review-like text, measured once per process: the
/// last resort, when no run has completed and no worker has calibrated (it scores
/// text only, without the CSV parsing and results a run does, so it runs high).
fn calibration() -> f64 {
    static RATE: OnceLock<f64> = OnceLock::new();
    *RATE.get_or_init(|| {
        let lines = [
            "The food was great and the staff were very friendly!",
            "Terrible service, we waited an hour for cold soup.",
            "Not bad at all, but the rooms were small and noisy.",
            "It was OK I guess, nothing special about the place",
        ];
        let mut s = Scorer::new();
        let started = Instant::now();
        let mut bytes = 0u64;
        while started.elapsed() < Duration::from_millis(50) {
            for l in lines {
                std::hint::black_box(s.compound(l));
                bytes += l.len() as u64;
            }
        }
        bytes as f64 / started.elapsed().as_secs_f64().max(1e-6)
    })
}

/// The analysis resource.
pub struct AnalysisApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Datasets")]
impl AnalysisApi {
    /// Get an analysis
    ///
    /// Status, per-column summaries, rows, malformed rows with examples, elapsed time,
    /// throughput, and the checkpoint the run resumed from, if any.
    #[oai(
        path = "/analysis/:job_id",
        method = "get",
        operation_id = "get_analysis"
    )]
    async fn get(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        job_id: Path<String>,
    ) -> Result<GetResponse, ApiError> {
        readable(&state, &key.0, &job_id.0).await?;
        let run = store::get_run(state.db(), &job_id.0)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no analysis {:?}", job_id.0)))?;
        let columns: Vec<String> = serde_json::from_str(&run.columns).unwrap_or_default();
        let mut sums = store::summaries(state.db(), &run.job_id).await?;
        sums.sort_by_key(|s| columns.iter().position(|c| *c == s.column_name));
        let secs = run.elapsed_ms.map(|ms| ms as f64 / 1000.0);
        let view = AnalysisView {
            dataset_id: run.dataset_id.clone(),
            status: run.status.clone(),
            attempt: run.attempt,
            rows: run.rows as u64,
            malformed_rows: run.malformed_rows as u64,
            malformed_examples: serde_json::from_str(&run.malformed_examples).unwrap_or_default(),
            summaries: sums
                .into_iter()
                .map(|s| SummaryView {
                    histogram: serde_json::from_str(&s.histogram).unwrap_or_else(|_| vec![0; BINS]),
                    column: s.column_name,
                    rows: s.rows as u64,
                    positive: s.positive as u64,
                    neutral: s.neutral as u64,
                    negative: s.negative as u64,
                    mean_compound: s.mean_compound,
                })
                .collect(),
            elapsed_ms: run.elapsed_ms,
            mb_per_sec: run.bytes_per_sec.map(|b| (b / 1e4).round() / 100.0),
            rows_per_sec: secs.filter(|s| *s > 0.0).map(|s| {
                (run.rows.saturating_sub(run.resumed_from_rows.unwrap_or(0)) as f64 / s).round()
            }),
            resumed_from: run.resumed_from_offset.map(|o| ResumedView {
                offset: o as u64,
                rows: run.resumed_from_rows.unwrap_or(0) as u64,
            }),
            results_bytes: run.results_bytes,
            error: run.error.clone(),
            columns,
            job_id: run.job_id,
        };
        Ok(GetResponse::Ok(Json(view)))
    }

    /// Download an analysis's results
    ///
    /// The per-row results file, streamed: `row,<column>_compound,<column>_label,…`.
    /// 404 until the analysis has completed.
    #[oai(
        path = "/analysis/:job_id/results",
        method = "get",
        operation_id = "get_analysis_results"
    )]
    async fn results(
        &self,
        key: SubmitterKey,
        state: Data<&AppState>,
        job_id: Path<String>,
    ) -> Result<ResultsResponse, ApiError> {
        readable(&state, &key.0, &job_id.0).await?;
        let run = store::get_run(state.db(), &job_id.0)
            .await?
            .filter(|r| r.status == "completed")
            .ok_or_else(|| ApiError::not_found(format!("no completed analysis {:?}", job_id.0)))?;
        let path = drover_analysis::job::results_path(&state.config().common.data_dir, &run.job_id);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| ApiError::not_found("the results file is gone"))?;
        let len = file.metadata().await.map_err(ApiError::internal)?.len();
        Ok(ResultsResponse::Ok(
            Binary(Body::from_async_read(file)),
            len,
            format!("attachment; filename=\"{}.results.csv\"", run.job_id),
        ))
    }

    /// Estimate an analysis
    ///
    /// Expected rows, cells and seconds for an analysis of the dataset, from its size and
    /// the throughput of the last completed runs here (or, on a fresh install, the
    /// calibration a worker measured when it started).
    #[oai(
        path = "/analysis/estimate",
        method = "post",
        operation_id = "estimate_analysis"
    )]
    async fn estimate(
        &self,
        _key: SubmitterKey,
        state: Data<&AppState>,
        body: JsonBody<EstimateRequest>,
    ) -> Result<EstimateResponse, ApiError> {
        let req = body.0;
        let payload = serde_json::json!({
            "dataset_id": req.dataset_id,
            "columns": req.columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            "chain_type": "sentiment",
        });
        drover_jobs::kinds::validate_payload(drover_jobs::QueueName::Analysis, &payload)
            .map_err(|e| ApiError::validation(&e.field, e.message))?;
        let p = check_payload(&state, &payload)
            .await
            .map_err(rename_field)?;
        let ds = store::get_dataset(state.db(), &p.dataset_id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such dataset"))?;
        let runs = store::recent_speeds(state.db(), 5).await?;
        let (model, basis) = match Model::from_runs(&runs) {
            Some(m) => (m, "measured"),
            None => match store::latest_calibration(state.db()).await? {
                Some(c) => (
                    Model::from_calibration(c.bytes_per_sec, c.split),
                    "calibration",
                ),
                None => (Model::from_rate(calibration()), "api_sample"),
            },
        };
        let profile: Vec<ColumnProfile> = serde_json::from_str(&ds.profile).unwrap_or_default();
        // Malformed rows are counted, not scored.
        let good_rows = u64::try_from(ds.rows - ds.malformed_rows).unwrap_or(0);
        let cells = good_rows * p.columns.len() as u64;
        let scored = expected_scored_bytes(&profile, &p.columns, good_rows);
        let bytes = u64::try_from(ds.bytes).unwrap_or(0);
        let seconds = model.seconds(bytes, cells, scored);
        let round = |x: f64| (x * 100.0).round() / 100.0;
        Ok(EstimateResponse::Ok(Json(EstimateView {
            rows: ds.rows as u64,
            cells: ds.rows as u64 * p.columns.len() as u64,
            seconds: round(seconds),
            lower_seconds: round(seconds * 0.85),
            upper_seconds: round(seconds * 1.15),
            bytes_per_sec: model.bytes_per_sec.round(),
            scored_bytes: scored,
            scoring_seconds: round(model.scoring_secs(cells, scored)),
            fixed_seconds: round(model.overhead_secs),
            basis: basis.to_owned(),
        })))
    }
}

/// The estimate's body has no `payload` level: drop that prefix from field names.
fn rename_field(e: ApiError) -> ApiError {
    match e {
        ApiError::Unprocessable(b) => {
            let details = b.0.error.details.clone().unwrap_or_default();
            let field = details["field"].as_str().unwrap_or("");
            let reason = details["reason"].as_str().unwrap_or("");
            ApiError::unprocessable(field.trim_start_matches("payload."), reason)
        }
        ApiError::BadRequest(b) => {
            let field =
                b.0.error
                    .details
                    .as_ref()
                    .and_then(|d| d["field"].as_str())
                    .map(|f| f.trim_start_matches("payload.").to_owned());
            match field {
                Some(f) => {
                    let reason =
                        b.0.error
                            .details
                            .as_ref()
                            .and_then(|d| d["reason"].as_str())
                            .unwrap_or("")
                            .to_owned();
                    ApiError::validation(&f, reason)
                }
                None => ApiError::BadRequest(b),
            }
        }
        other => other,
    }
}

/// A submitter key reads only the analyses of jobs it submitted: any other is a 404,
/// as if it did not exist.
async fn readable(state: &AppState, key: &Principal, job_id: &str) -> Result<(), ApiError> {
    if key.is_admin()
        || super::lookup::find_anywhere(state, key, job_id)
            .await?
            .is_some()
    {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no analysis {job_id:?}")))
    }
}
