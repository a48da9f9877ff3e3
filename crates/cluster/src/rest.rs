//! The coordinator's REST API (JSON), the base for a web dashboard, and its
//! Prometheus endpoint:
//!
//! - `GET /v1/jobs`: every job with its status.
//! - `GET /v1/jobs/{id}`: one job with its graph (vertices, their parallelism
//!   and input edges) and the metrics of every operator subtask.
//! - `GET /v1/jobs/{id}/checkpoints`: the job's checkpoints, oldest first:
//!   id, status (`COMPLETED` or `FAILED` with the reason, which names the
//!   subtasks that did not acknowledge), duration and bytes written, with
//!   counts (Flink's `/jobs/:jobid/checkpoints`).
//! - `GET /v1/workers`: workers, their slots, and when they last beat.
//! - `GET /metrics`: the same figures in Prometheus' text format.
//!
//! Operator metrics come from the workers' heartbeats, so they are at most
//! one 'heartbeat.interval' old. With a cluster token, every call must
//! carry `Authorization: Bearer <token>`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::ClusterError;
use crate::auth::CallCheck;
use crate::coordinator::{CoordinatorState, JobRecord};
use crate::proto;
use weir_runtime::checkpoint::CheckpointStatus;

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<CoordinatorState>,
    check: CallCheck,
) -> Result<(), ClusterError> {
    let app = Router::new()
        .route("/v1/jobs", get(jobs))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/checkpoints", get(checkpoints))
        .route("/v1/workers", get(workers))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let check = check.clone();
            async move {
                let header = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                if check.authorizes(header) {
                    next.run(request).await
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"error": "the call does not carry the cluster's token"})),
                    )
                        .into_response()
                }
            }
        }))
        .with_state(state);
    axum::serve(listener, app)
        .await
        .map_err(|e| ClusterError::Rpc(format!("REST server: {e}")))
}

fn job_json(info: &proto::JobInfo) -> Value {
    json!({
        "id": info.job_id,
        "name": info.name,
        "status": info.status,
        "message": info.message,
        "attempt": info.attempt,
        "parallelism": info.parallelism,
        "start_time": info.start_time_ms,
        "end_time": info.end_time_ms,
        "slots": info.slots,
        "progress": info.progress.as_ref().map(|p| json!({
            "source_rows": p.source_rows,
            "source_bytes": p.source_bytes,
            "records_skipped": p.records_skipped,
            "splits_finished": p.splits_finished,
            "splits_total": p.splits_total,
            "late_rows_dropped": p.late_rows_dropped,
            "watermark": p.watermark,
            "done": p.done,
        })),
    })
}

async fn jobs(State(state): State<Arc<CoordinatorState>>) -> Json<Value> {
    let jobs: Vec<Value> = state
        .job_list()
        .iter()
        .map(|j| job_json(&j.snapshot()))
        .collect();
    Json(json!({ "jobs": jobs }))
}

async fn checkpoints(
    State(state): State<Arc<CoordinatorState>>,
    Path(id): Path<String>,
) -> Response {
    let Ok(job) = state.job(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no job with id '{id}'")})),
        )
            .into_response();
    };
    let history = job
        .checkpoint_history
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();
    let completed = history
        .iter()
        .filter(|c| c.status == CheckpointStatus::Completed)
        .count();
    let entries: Vec<Value> = history
        .iter()
        .map(|c| {
            let (status, reason) = match &c.status {
                CheckpointStatus::Completed => ("COMPLETED", None),
                CheckpointStatus::Failed(reason) => ("FAILED", Some(reason.clone())),
            };
            json!({
                "id": c.id,
                "status": status,
                "failure": reason,
                "duration_ms": c.duration.as_millis() as u64,
                "size_bytes": c.size,
            })
        })
        .collect();
    Json(json!({
        "counts": {
            "completed": completed,
            "failed": history.len() - completed,
        },
        "history": entries,
    }))
    .into_response()
}

/// Every operator subtask's metrics for a job, from the workers' heartbeats.
fn job_metrics(state: &CoordinatorState, job: &JobRecord) -> Vec<proto::OperatorMetrics> {
    let id = job.id.to_string();
    state
        .resources
        .lock()
        .map(|r| {
            r.workers
                .values()
                .flat_map(|w| w.metrics.iter().filter(|m| m.job_id == id).cloned())
                .collect()
        })
        .unwrap_or_default()
}

async fn job(State(state): State<Arc<CoordinatorState>>, Path(id): Path<String>) -> Response {
    let Ok(job) = state.job(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no job with id '{id}'")})),
        )
            .into_response();
    };
    let mut body = job_json(&job.snapshot());
    body["vertices"] = job
        .vertices
        .iter()
        .map(|v| {
            json!({
                "id": v.id,
                "name": v.name,
                "parallelism": v.parallelism,
                "inputs": v.inputs.iter().map(|(from, partitioning)| json!({
                    "from": from,
                    "partitioning": partitioning,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    body["operators"] = job_metrics(&state, &job)
        .iter()
        .map(|m| {
            json!({
                "task": m.task,
                "operator": m.operator,
                "rows_in": m.rows_in,
                "rows_out": m.rows_out,
                "busy_ms": m.busy_nanos / 1_000_000,
                "backpressured_ms": m.backpressured_nanos / 1_000_000,
                "watermark": (m.watermark > i64::MIN).then_some(m.watermark),
                "late_rows_dropped": m.late_rows_dropped,
            })
        })
        .collect();
    Json(body).into_response()
}

async fn workers(State(state): State<Arc<CoordinatorState>>) -> Json<Value> {
    let workers: Vec<Value> = state
        .resources
        .lock()
        .map(|r| {
            r.workers
                .values()
                .map(|w| {
                    json!({
                        "id": w.id,
                        "address": w.address,
                        "slots": w.slots,
                        "free_slots": w.slots.saturating_sub(r.used(&w.id)),
                        "last_heartbeat_ms_ago": w.last_heartbeat.elapsed().as_millis() as u64,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Json(json!({ "workers": workers }))
}

/// Prometheus label values escape `\`, `"` and newlines.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(state): State<Arc<CoordinatorState>>) -> impl IntoResponse {
    let mut text = String::new();
    let (workers, slots, free) = state
        .resources
        .lock()
        .map(|r| {
            let slots: u32 = r.workers.values().map(|w| w.slots).sum();
            (r.workers.len(), slots, r.free())
        })
        .unwrap_or_default();
    let _ = writeln!(text, "# TYPE weir_workers gauge\nweir_workers {workers}");
    let _ = writeln!(
        text,
        "# TYPE weir_slots_total gauge\nweir_slots_total {slots}"
    );
    let _ = writeln!(text, "# TYPE weir_slots_free gauge\nweir_slots_free {free}");
    let jobs = state.job_list();
    let _ = writeln!(text, "# TYPE weir_job_running gauge");
    for job in &jobs {
        let info = job.snapshot();
        let _ = writeln!(
            text,
            "weir_job_running{{job_id=\"{}\",job_name=\"{}\"}} {}",
            info.job_id,
            label(&info.name),
            u8::from(info.status == "RUNNING")
        );
    }
    let counters = [
        ("weir_operator_rows_in_total", "counter"),
        ("weir_operator_rows_out_total", "counter"),
        ("weir_operator_busy_seconds_total", "counter"),
        ("weir_operator_backpressured_seconds_total", "counter"),
    ];
    for (name, kind) in counters {
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for job in &jobs {
            for m in job_metrics(&state, job) {
                let value = match name {
                    "weir_operator_rows_in_total" => m.rows_in as f64,
                    "weir_operator_rows_out_total" => m.rows_out as f64,
                    "weir_operator_busy_seconds_total" => m.busy_nanos as f64 / 1e9,
                    _ => m.backpressured_nanos as f64 / 1e9,
                };
                let _ = writeln!(
                    text,
                    "{name}{{job_id=\"{}\",task=\"{}\",operator=\"{}\"}} {value}",
                    m.job_id,
                    label(&m.task),
                    label(&m.operator)
                );
            }
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
