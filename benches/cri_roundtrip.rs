//! The fixed cost of one CRI call: `Version`, the cheapest RPC, over a real unix socket to an
//! in-process `wasmlet_cri::serve`, the client on its own current-thread runtime in the bench
//! thread (the kubelet's side).
//!
//! - `version/inner`: `Runtime::version` called directly (no transport), the floor.
//! - `version/socket/multi-thread`: the daemon on a 2-worker multi-thread runtime, as `wasmlet daemon`.
//! - `version/socket/current-thread`: the daemon on a current-thread runtime, for comparison.
//!
//! The two daemons are separate runtimes on separate sockets; both exist during the whole run.

mod common;

use std::time::Duration;

use common::{Client, Daemon, Flavor};
use criterion::{Criterion, criterion_group, criterion_main};
use wasmlet_cri::k8s_cri::v1 as cri;

fn cri_roundtrip(c: &mut Criterion) {
    let multi = Daemon::start(Flavor::MultiThread, None);
    let current = Daemon::start(Flavor::CurrentThread, None);
    let mut to_multi = Client::connect(&multi.socket);
    let mut to_current = Client::connect(&current.socket);

    let mut group = c.benchmark_group("cri_roundtrip");
    {
        let runtime = &multi.runtime;
        let rt = &to_multi.rt;
        group.bench_function("version/inner", |b| {
            b.iter(|| rt.block_on(runtime.version(cri::VersionRequest::default())).expect("Version"))
        });
    }
    for (name, client) in [("version/socket/multi-thread", &mut to_multi), ("version/socket/current-thread", &mut to_current)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let reply = client.rt.block_on(client.cri.runtime.version(cri::VersionRequest::default())).expect("Version");
                assert_eq!(reply.get_ref().runtime_name, "wasmlet");
                reply
            })
        });
    }
    group.finish();

    // Clients first: a graceful shutdown waits for their connections.
    drop((to_multi, to_current));
    drop((multi, current));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = cri_roundtrip
}
criterion_main!(benches);
