#![allow(clippy::unwrap_used)] // Tests fail by panicking.
//! The OpenAPI document is the API's contract: it is committed in
//! `tests/snapshots/openapi.json`, and this test fails when the code's document differs,
//! so a contract change shows up in review. After a deliberate change, rewrite the
//! snapshot with `UPDATE_SNAPSHOTS=1 cargo test -p drover-api --test openapi` and commit it.

use std::path::PathBuf;

use serde_json::Value;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json")
}

fn document() -> String {
    drover_api::openapi::spec_json(&drover_api::openapi::service()) + "\n"
}

#[test]
fn the_document_matches_the_snapshot() {
    let doc = document();
    let path = snapshot_path();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &doc).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == doc,
        "the OpenAPI document changed; if that is intended, run \
         `UPDATE_SNAPSHOTS=1 cargo test -p drover-api --test openapi` and commit {}",
        path.display()
    );
}

#[test]
fn every_operation_is_documented_and_secured() {
    let doc: Value = serde_json::from_str(&document()).unwrap();
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            ids.push(op["operationId"].as_str().unwrap().to_owned());
            assert!(op["summary"].is_string(), "{what}: no summary");
            let responses = op["responses"].as_object().unwrap();
            for status in ["400", "401", "403", "429", "500", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{what}: {status} undocumented"
                );
            }
            for (status, r) in responses {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{what} {status}: no description"
                );
            }
            let scheme = op["security"][0]
                .as_object()
                .and_then(|s| s.keys().next().cloned())
                .unwrap_or_else(|| panic!("{what}: no security"));
            assert!(
                ["SubmitterKey", "AdminKey"].contains(&scheme.as_str()),
                "{what}"
            );
        }
    }
    ids.sort();
    assert_eq!(
        ids,
        [
            "add_aggregation_job",
            "add_analysis_job",
            "add_cleanup_job",
            "add_export_job",
            "bulk_jobs",
            "clean_queue",
            "create_schedule",
            "delete_dataset",
            "delete_job",
            "delete_schedule",
            "download_export",
            "estimate_analysis",
            "find_job",
            "get_all_queue_metrics",
            "get_analysis",
            "get_analysis_results",
            "get_dataset",
            "get_events",
            "get_export",
            "get_job",
            "get_job_events",
            "get_queue_metrics",
            "get_schedule",
            "get_sse_status",
            "list_aggregates",
            "list_aggregation_jobs",
            "list_analysis_jobs",
            "list_cleanup_jobs",
            "list_datasets",
            "list_export_jobs",
            "list_exports",
            "list_history",
            "list_queues",
            "list_schedules",
            "list_workers",
            "patch_queue",
            "pause_queue",
            "promote_job",
            "publish_test_event",
            "resume_queue",
            "retry_job",
            "search_jobs",
            "trigger_schedule",
            "update_schedule",
            "upload_dataset",
        ],
        "every operation, once"
    );
    // Request bodies refuse unknown fields, and say so.
    let schemas = &doc["components"]["schemas"];
    for name in [
        "AddExportJobRequest",
        "AddAnalysisJobRequest",
        "AddAggregationJobRequest",
        "AddCleanupJobRequest",
        "JobOptions",
        "Backoff",
        "CleanRequest",
        "JobHistoryExport",
        "JobHistoryFilters",
        "AggregatesExport",
        "AggregatesFilters",
        "AnalysisResultsExport",
        "AnalysisResultsFilters",
        "HourAggregation",
        "DayAggregation",
        "AnalysisPayload",
        "CleanupPayload",
    ] {
        assert_eq!(schemas[name]["additionalProperties"], false, "{name}");
    }
    assert!(
        schemas["Job"]["additionalProperties"].is_null(),
        "responses stay open"
    );
    // One typed submit operation per queue, whose body is that queue's payload: no
    // union of every queue's payloads that the server would then refuse.
    assert!(schemas.get("QueuePayload").is_none());
    assert!(schemas.get("AddJobRequest").is_none());
    for (queue, request, payload) in [
        ("export", "AddExportJobRequest", "ExportPayload"),
        ("analysis", "AddAnalysisJobRequest", "AnalysisPayload"),
        (
            "aggregation",
            "AddAggregationJobRequest",
            "AggregationPayload",
        ),
        ("cleanup", "AddCleanupJobRequest", "CleanupPayload"),
    ] {
        let op = &doc["paths"][format!("/api/v1/queues/{queue}/jobs")]["post"];
        assert_eq!(op["operationId"], format!("add_{queue}_job"));
        assert_eq!(
            op["requestBody"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"],
            format!("#/components/schemas/{request}")
        );
        assert_eq!(
            schemas[request]["properties"]["payload"]["$ref"],
            format!("#/components/schemas/{payload}")
        );
        assert!(
            op["responses"]["201"]["links"]["GetJob"]["parameters"]["queue"] == queue,
            "{queue}: the created job links to get_job"
        );
    }
    assert!(
        doc["paths"]["/api/v1/queues/{queue}/jobs"]["post"].is_null(),
        "the generic submit path still works, and is not in the document"
    );
    assert_eq!(
        schemas["ExportPayload"]["oneOf"].as_array().unwrap().len(),
        3
    );
    assert_eq!(
        schemas["AggregationPayload"]["oneOf"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
