//! The `export` job: unpacks the job and runs [`crate::export::run`].
//!
//! The payload was checked when it was submitted; it is checked again here because
//! the queue may hold jobs submitted by an older version or written by hand.

use apalis::prelude::Data;
use drover_jobs::kinds::{ExportPayload, JobKind};
use drover_queue::worker::{JobContext, JobError};
use serde_json::{Value, json};

use crate::deps::Deps;
use crate::export::{self, ExportJob, ExportSettings, Progress};

/// Progress by rows, as job progress events.
struct Rows<'a>(&'a JobContext);

impl Progress for Rows<'_> {
    fn rows(&self, done: u64, total: u64, rows_per_s: f64) {
        let percent = done
            .saturating_mul(100)
            .checked_div(total)
            .map_or(100, |p| u8::try_from(p).unwrap_or(100));
        let eta_s = (rows_per_s > 0.0).then(|| total.saturating_sub(done) as f64 / rows_per_s);
        self.0.progress(
            percent,
            format!("{done} of {total} rows"),
            json!({ "rows": done, "total": total, "rows_per_s": rows_per_s.round(), "eta_s": eta_s }),
        );
    }
}

/// Runs one `export` job.
pub async fn handle(
    payload: ExportPayload,
    ctx: JobContext,
    deps: Data<Deps>,
) -> Result<Value, JobError> {
    payload.validate().map_err(JobError::permanent)?;
    let settings = ExportSettings {
        data_dir: deps.data_dir.clone(),
        ttl: deps.export_ttl,
        page_rows: export::PAGE_ROWS,
    };
    let job = ExportJob {
        id: ctx.id(),
        attempt: ctx.attempt(),
        payload: &payload,
    };
    let m = export::run(&deps.db, &settings, job, &Rows(&ctx), ctx.lease_lost())
        .await
        .map_err(|e| {
            if e.is_permanent() {
                JobError::permanent(e)
            } else {
                JobError::retryable(e)
            }
        })?;
    Ok(json!({
        "export_id": m.id,
        "file_name": m.file_name,
        "rows": m.rows,
        "bytes": m.bytes,
        "sha256": m.sha256,
        "expires_at": export::ts(&m.expires_at),
        "download": format!("/api/v1/exports/{}/download", m.id),
    }))
}
