//! REAL kernel timing (prints, asserts nothing about speed): median µs of creating + limiting +
//! attaching a container cgroup, and of detaching + removing it, on v1, over 200 rounds. Run with
//! `cargo test -p wasmlet-cgroups --release --test all timing -- --nocapture --test-threads=1`.

use std::time::{Duration, Instant};

use wasmlet_cgroups::{CgroupManager, Resources, Task};

use crate::common::{CgroupGuard, spawn_sleep, v1_manager};

const ROUNDS: usize = 200;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

#[test]
fn v1_container_cgroup_create_and_remove_timing() {
    let m = v1_manager();
    let guard = CgroupGuard::new(m.clone());
    let pod = guard.path("kubepods/burstable/podtiming");
    let park = guard.path("park");
    m.create(&pod).unwrap();
    m.create(&park).unwrap();
    let child = spawn_sleep();
    let limits = Resources { cpu_shares: 512, cpu_quota: 50_000, cpu_period: 100_000, memory_limit_in_bytes: 64 << 20, ..Resources::default() };
    let (mut up, mut down) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for i in 0..ROUNDS {
        let ctr = pod.join(&format!("c{i}")).unwrap();
        let t = Instant::now();
        m.create(&ctr).unwrap();
        m.apply(&ctr, &limits).unwrap();
        m.add_task(&ctr, Task::Process(child.pid())).unwrap();
        up.push(t.elapsed());
        let t = Instant::now();
        m.add_task(&park, Task::Process(child.pid())).unwrap();
        m.remove(&ctr).unwrap();
        down.push(t.elapsed());
    }
    let hierarchies = m.controllers().map(|c| c.as_str()).collect::<Vec<_>>().join(",");
    eprintln!(
        "v1 [{hierarchies}] median of {ROUNDS}: create+apply+attach {:.0} µs, detach+remove {:.0} µs",
        median(up),
        median(down)
    );
}
