//! The cluster commands: `weir coordinator`, `weir worker` and `weir jobs`.
//! Each prints where it listens on stdout, so scripts and tests can read
//! the ports it picked, and runs until Ctrl-C.

use std::net::{SocketAddr, ToSocketAddrs};

use tokio::runtime::Runtime;
use weir_cluster::config::parse_dynamic;
use weir_cluster::coordinator::CoordinatorOptions;
use weir_cluster::worker::WorkerOptions;
use weir_cluster::{ClusterClient, ClusterConfig, ClusterError, Coordinator, Worker};

use weir_engine::ResultTable;

use crate::output::print_table;
use crate::{ClusterOptions, JobsAction};

pub fn load_config(options: &ClusterOptions) -> Result<ClusterConfig, ClusterError> {
    let dynamic = options
        .dynamic
        .iter()
        .map(|d| parse_dynamic(d))
        .collect::<Result<Vec<_>, _>>()?;
    ClusterConfig::load(options.config.as_deref(), &dynamic)
}

fn socket_address(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("'{text}' is not an address: {e}"))?
        .next()
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

/// Runs a server future until it fails or Ctrl-C.
fn serve(runtime: &Runtime, server: impl Future<Output = Result<(), ClusterError>>) -> bool {
    runtime.block_on(async {
        tokio::select! {
            served = server => match served {
                Ok(()) => true,
                Err(e) => {
                    eprintln!("[ERROR] {e}");
                    false
                }
            },
            _ = tokio::signal::ctrl_c() => true,
        }
    })
}

pub fn coordinator(runtime: &Runtime, config: ClusterConfig, listen: &str, rest: &str) -> bool {
    let addresses = socket_address(listen).and_then(|l| Ok((l, socket_address(rest)?)));
    let (listen, rest_listen) = match addresses {
        Ok(addresses) => addresses,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return false;
        }
    };
    let secured = config.token.is_some();
    let bound = runtime.block_on(Coordinator::bind(CoordinatorOptions {
        listen,
        rest_listen: Some(rest_listen),
        config,
    }));
    let coordinator = match bound {
        Ok(coordinator) => coordinator,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return false;
        }
    };
    let show = |a: Option<SocketAddr>| a.map_or_else(|| "?".to_string(), |a| a.to_string());
    println!(
        "Coordinator listening on {} (REST API on http://{}){}",
        show(coordinator.rpc_addr()),
        show(coordinator.rest_addr()),
        if secured {
            "; calls must carry the cluster token"
        } else {
            ""
        }
    );
    serve(runtime, coordinator.run())
}

pub fn worker(
    runtime: &Runtime,
    config: ClusterConfig,
    coordinator: String,
    slots: u32,
    listen: &str,
    advertise: Option<String>,
) -> bool {
    let listen = match socket_address(listen) {
        Ok(listen) => listen,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return false;
        }
    };
    if slots == 0 {
        eprintln!("[ERROR] a worker needs at least one slot");
        return false;
    }
    let bound = runtime.block_on(async {
        Worker::bind(WorkerOptions {
            coordinator,
            listen,
            advertise,
            slots,
            config,
        })
        .await
    });
    let worker = match bound {
        Ok(worker) => worker,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            return false;
        }
    };
    println!(
        "Worker {} listening on {} with {slots} slot(s)",
        worker.id(),
        worker.local_addr()
    );
    serve(runtime, worker.run())
}

pub fn jobs(runtime: &Runtime, config: &ClusterConfig, action: JobsAction) -> bool {
    let result = runtime.block_on(async {
        let text = |e: ClusterError| e.to_string();
        let (JobsAction::List { coordinator }
        | JobsAction::Status { coordinator, .. }
        | JobsAction::Cancel { coordinator, .. }) = &action;
        let client = ClusterClient::new(coordinator, config.token.as_deref()).map_err(text)?;
        let jobs = match action {
            JobsAction::List { .. } => client.list().await.map_err(text)?,
            JobsAction::Status { job_id, .. } => {
                vec![client.status(&job_id).await.map_err(text)?]
            }
            JobsAction::Cancel { job_id, .. } => {
                client.cancel(&job_id).await.map_err(text)?;
                println!("[INFO] Cancelling job {job_id}.");
                return Ok(());
            }
        };
        let rows: Vec<Vec<String>> = jobs
            .into_iter()
            .map(|j| {
                let read = j.progress.map_or(0, |p| p.source_rows);
                vec![j.job_id, j.name, j.status, read.to_string(), j.message]
            })
            .collect();
        let columns = ["job id", "job name", "status", "rows read", "message"];
        let table = ResultTable::strings(&columns, rows).map_err(|e| e.to_string())?;
        print_table(std::io::stdout().lock(), &table).map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => true,
        Err(e) => {
            eprintln!("[ERROR] {e}");
            false
        }
    }
}

/// `weir savepoint`: prints the savepoint's path, as `flink savepoint` does.
pub fn savepoint(
    runtime: &Runtime,
    config: &ClusterConfig,
    coordinator: &str,
    job_id: &str,
    dir: Option<String>,
    stop: bool,
) -> bool {
    let result = runtime.block_on(async {
        let client = ClusterClient::new(coordinator, config.token.as_deref())?;
        client.savepoint(job_id, dir, stop).await
    });
    match result {
        Ok(path) => {
            println!("Savepoint completed. Path: {path}");
            if stop {
                println!("[INFO] Job {job_id} stopped.");
            }
            true
        }
        Err(e) => {
            eprintln!("[ERROR] {e}");
            false
        }
    }
}
