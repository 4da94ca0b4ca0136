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
    let limits = Resources {
        cpu_shares: 512,
        cpu_quota: 50_000,
        cpu_period: 100_000,
        memory_limit_in_bytes: 64 << 20,
        ..Resources::default()
    };
    // Per step: create, apply, attach, detach, remove.
    let mut steps: [Vec<Duration>; 5] = Default::default();
    for i in 0..ROUNDS {
        let ctr = pod.join(&format!("c{i}")).unwrap();
        let mut t = Instant::now();
        let mut lap = |step: usize| {
            steps[step].push(t.elapsed());
            t = Instant::now();
        };
        m.create(&ctr).unwrap();
        lap(0);
        m.apply(&ctr, &limits).unwrap();
        lap(1);
        m.add_task(&ctr, Task::Process(child.pid())).unwrap();
        lap(2);
        m.add_task(&park, Task::Process(child.pid())).unwrap();
        lap(3);
        m.remove(&ctr).unwrap();
        lap(4);
    }
    let sum = |range: std::ops::Range<usize>| -> Vec<Duration> {
        (0..ROUNDS)
            .map(|i| range.clone().map(|s| steps[s][i]).sum())
            .collect()
    };
    let (up, down) = (sum(0..3), sum(3..5));
    let each: Vec<String> = ["create", "apply", "attach", "detach", "remove"]
        .iter()
        .zip(steps.iter())
        .map(|(name, v)| format!("{name} {:.0}", median(v.clone())))
        .collect();
    let hierarchies = m
        .controllers()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",");
    eprintln!(
        "v1 [{hierarchies}] median of {ROUNDS}: create+apply+attach {:.0} µs, detach+remove {:.0} µs ({} µs)",
        median(up),
        median(down),
        each.join(", ")
    );
}
