//! The analysis calibration a worker measures when it starts (see
//! `drover_analysis::calibrate`): a fresh install's estimates rest on it until real
//! runs have recorded their throughput.

use std::path::Path;

use sea_orm::DatabaseConnection;

/// Measures the analysis loop on this machine and stores its rates; a failure is
/// logged, never fatal (estimates then fall back to the API's own rough figure).
pub async fn measure_and_store(db: &DatabaseConnection, data_dir: &Path) {
    let scratch = drover_jobs::data_dir::tmp_dir(data_dir);
    let c = match tokio::task::spawn_blocking(move || drover_analysis::calibrate::measure(&scratch))
        .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "analysis calibration failed");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "analysis calibration task failed");
            return;
        }
    };
    let host = drover_queue::worker::hostname();
    match drover_analysis::store::save_calibration(db, &host, &c).await {
        Ok(()) => tracing::info!(
            bytes_per_sec = c.bytes_per_sec.round(),
            read_bytes_per_sec = c.split.map(|(read, _)| read.round()),
            ns_per_cell = c.split.map(|(_, cost)| cost.ns_per_cell.round()),
            ns_per_scored_byte = c.split.map(|(_, cost)| cost.ns_per_byte),
            "analysis calibration"
        ),
        Err(e) => tracing::warn!(error = %e, "could not store the analysis calibration"),
    }
}
