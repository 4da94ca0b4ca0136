//! Container and pod cold starts against an in-process daemon (see `common`), hello as the guest.
//!
//! - `cold_start/in-process/{zygote,exec}`: in a pod made once, CreateContainer + StartContainer
//!   through the `Runtime`'s inner methods (no gRPC), then `ContainerStatus` polled (every ~20 µs)
//!   until the container is `EXITED`; RemoveContainer after the clock stops.
//! - `cold_start/pod/{zygote,exec}`: a whole pod through the socket, as `wasmlet bench cold-start`:
//!   RunPodSandbox → CreateContainer → StartContainer → the first byte of the container's log (the
//!   file's size polled every ~20 µs); StopPodSandbox + RemovePodSandbox after the clock stops.
//!
//! - `cold_start/parts/*`: pieces of those paths on their own, to see where the time goes:
//!   `image-resolve` (`ImageStore::resolve` + `compiled_path` of hello, as CreateContainer does on a
//!   blocking thread), `shim-ping` (one request to a live shim: a new connection, a thread in the
//!   shim, one reply; every shim call of CreateContainer and StartContainer pays it),
//!   `record-write` (one atomic 1.5 KB write replacing an existing file, as each record update
//!   does: on ext4 a rename over an existing file also starts the new file's writeback).
//!
//! `zygote`: shims forked by a `Zygote` (what `wasmlet daemon` does; it is forked here first thing,
//! while the bench is single-threaded); `exec`: no zygote, shims exec'd from the `wasmlet` binary.
//! After each bench its phases are printed (median and p10–p90 over every run, warm-up included).
//! Set `WASMLET_LOG` (e.g. `wasmlet_cri=debug`) to see the runtime's logs on stderr.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Client, Daemon, Flavor, Phases, create_hello, log_file, pod_config, wait_until};
use criterion::Criterion;
use wasmlet_cri::k8s_cri::v1 as cri;
use wasmlet_shim::zygote::Zygote;

const TIMEOUT: Duration = Duration::from_secs(30);

/// CreateContainer + StartContainer + the exit seen in ContainerStatus, in one pod, in-process.
fn in_process(c: &mut Criterion, daemons: &[(&str, &Daemon)]) {
    let mut group = c.benchmark_group("cold_start/in-process");
    for &(name, daemon) in daemons {
        let runtime = &daemon.runtime;
        let on = &daemon.handle;
        let config = pod_config(&daemon.logs, &format!("in-process-{name}"));
        let sandbox = on.block_on(runtime.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() }))
            .expect("RunPodSandbox")
            .pod_sandbox_id;
        let mut phases = Phases::new(&["CreateContainer", "StartContainer", "exit in ContainerStatus"]);
        let mut attempt = 0u32;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    attempt += 1;
                    let t0 = Instant::now();
                    let id = on.block_on(runtime.create_container(create_hello(&sandbox, &config, "hello", attempt)))
                        .expect("CreateContainer")
                        .container_id;
                    let t1 = Instant::now();
                    on.block_on(runtime.start_container(cri::StartContainerRequest { container_id: id.clone() })).expect("StartContainer");
                    let t2 = Instant::now();
                    let mut exit_code = None;
                    wait_until("hello's exit in ContainerStatus", TIMEOUT, || {
                        let status = on.block_on(runtime.container_status(cri::ContainerStatusRequest { container_id: id.clone(), verbose: false }))
                            .expect("ContainerStatus")
                            .status
                            .expect("a status");
                        if status.state == cri::ContainerState::ContainerExited as i32 {
                            exit_code = Some(status.exit_code);
                        }
                        exit_code.is_some()
                    });
                    let t3 = Instant::now();
                    timed += t3 - t0;
                    phases.record(&[t0, t1, t2, t3]);
                    assert_eq!(exit_code, Some(0), "hello failed");
                    on.block_on(runtime.remove_container(cri::RemoveContainerRequest { container_id: id })).expect("RemoveContainer");
                }
                timed
            })
        });
        phases.print(&format!("cold_start/in-process/{name}"));
        on.block_on(runtime.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).expect("StopPodSandbox");
        on.block_on(runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox })).expect("RemovePodSandbox");
    }
    group.finish();
}

/// A whole pod through the socket, RunPodSandbox to the first log byte.
fn whole_pod(c: &mut Criterion, daemons: &[(&str, &Daemon)]) {
    let mut group = c.benchmark_group("cold_start/pod");
    for &(name, daemon) in daemons {
        let client = Client::connect(&daemon.socket);
        let on = &client.rt;
        let mut rpc = client.cri.runtime.clone();
        let mut phases = Phases::new(&["RunPodSandbox", "CreateContainer", "StartContainer", "first log byte"]);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let config = pod_config(&daemon.logs, &format!("pod-{name}"));
                    let log = log_file(&config, "hello", 0);
                    let t0 = Instant::now();
                    let sandbox = on.block_on(rpc.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() }))
                        .expect("RunPodSandbox")
                        .into_inner()
                        .pod_sandbox_id;
                    let t1 = Instant::now();
                    let id = on.block_on(rpc.create_container(create_hello(&sandbox, &config, "hello", 0)))
                        .expect("CreateContainer")
                        .into_inner()
                        .container_id;
                    let t2 = Instant::now();
                    on.block_on(rpc.start_container(cri::StartContainerRequest { container_id: id })).expect("StartContainer");
                    let t3 = Instant::now();
                    wait_until("hello's first log line", TIMEOUT, || std::fs::metadata(&log).is_ok_and(|m| m.len() > 0));
                    let t4 = Instant::now();
                    timed += t4 - t0;
                    phases.record(&[t0, t1, t2, t3, t4]);
                    on.block_on(rpc.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).expect("StopPodSandbox");
                    on.block_on(rpc.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox })).expect("RemovePodSandbox");
                    let _ = std::fs::remove_dir_all(&config.log_directory);
                }
                timed
            })
        });
        phases.print(&format!("cold_start/pod/{name}"));
    }
    group.finish();
}

/// Pieces of the start path on their own.
fn parts(c: &mut Criterion, daemon: &Daemon) {
    let mut group = c.benchmark_group("cold_start/parts");
    group.measurement_time(Duration::from_secs(2));

    let images = wasmlet_image::ImageStore::open(&daemon.opts.images).expect("opening the image store");
    group.bench_function("image-resolve", |b| {
        b.iter(|| {
            let image = images.resolve(common::HELLO).expect("resolve").expect("hello is imported");
            images.compiled_path(&image).expect("compiled_path")
        })
    });

    let on = &daemon.handle;
    let config = pod_config(&daemon.logs, "parts");
    let sandbox = on
        .block_on(daemon.runtime.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() }))
        .expect("RunPodSandbox")
        .pod_sandbox_id;
    let shim = wasmlet_shim::client::ShimClient::new(&daemon.opts.shim_dir(&sandbox));
    group.bench_function("shim-ping", |b| b.iter(|| on.block_on(shim.ping()).expect("ping")));
    on.block_on(daemon.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })).expect("StopPodSandbox");
    on.block_on(daemon.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox })).expect("RemovePodSandbox");

    let record = daemon.dir().join("record.json");
    let bytes = vec![b'x'; 1536];
    group.bench_function("record-write", |b| {
        b.iter(|| wasmlet_shim::atomic::write_atomic(&record, &bytes, wasmlet_shim::atomic::Durability::ProcessCrash).expect("write"))
    });
    group.finish();
}

fn main() {
    // Forked before anything starts a thread (criterion, tokio, the image store's compiler).
    let zygote = match Zygote::start() {
        Ok(z) => Some(Arc::new(z)),
        Err(e) => {
            eprintln!("cold_start: no zygote ({e}); only the exec variants run");
            None
        }
    };
    // `WASMLET_LOG=wasmlet_cri=debug` shows the runtime's own timings (e.g. the pod cgroup's).
    if let Ok(filter) = std::env::var("WASMLET_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();

    let with_zygote = zygote.map(|z| Daemon::start(Flavor::MultiThread, Some(z)));
    let with_exec = Daemon::start(Flavor::MultiThread, None);
    let mut daemons = Vec::new();
    if let Some(d) = &with_zygote {
        daemons.push(("zygote", d));
    }
    daemons.push(("exec", &with_exec));

    in_process(&mut c, &daemons);
    whole_pod(&mut c, &daemons);
    parts(&mut c, daemons[0].1);
    c.final_summary();
}
