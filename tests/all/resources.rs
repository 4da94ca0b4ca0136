//! Resource limits: a guest that outgrows `memory_limit_in_bytes` is OOMKilled; other pods carry on.

use std::time::Duration;

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

const MIB: i64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_ooms_the_guest_only() {
    let d = Daemon::start("oom", &[MEM_GROWER_P1, LOGGER_P1]).await;
    let bystander_pod = d.run_pod("bystander").await;
    let bystander = d.create(&bystander_pod, "logger", LOGGER_P1.image, &["50"], &[], vec![]).await;
    d.start_container(&bystander).await;

    let pod = d.run_pod("grower").await;
    let mut config = container_config("grower", MEM_GROWER_P1.image, &["4", "10"], &[], vec![]);
    config.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources { memory_limit_in_bytes: 32 * MIB, ..Default::default() }),
        ..Default::default()
    });
    let grower = d.create_config(&pod, config).await;
    d.start_container(&grower).await;

    let s = d.wait_exited(&grower, Duration::from_secs(15)).await;
    let log = d.log_of(&pod, "grower");
    assert_eq!((s.exit_code, s.reason.as_str()), (137, "OOMKilled"), "message {:?}; log {:?}", s.message, read_log(&log));
    let grown: Vec<u64> = stdout_lines(&log)
        .iter()
        .map(|l| {
            l.strip_prefix("allocated ")
                .and_then(|r| r.strip_suffix(" MiB"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("odd line {l:?}"))
        })
        .collect();
    let most = grown.last().copied().unwrap_or(0);
    assert!((8..=32).contains(&most), "the guest allocated {most} MiB under a 32 MiB limit: {grown:?}");
    let limit = s.resources.and_then(|r| r.linux).map(|l| l.memory_limit_in_bytes);
    assert_eq!(limit, Some(32 * MIB), "ContainerStatus reports the limit");

    let b = d.status(&bystander).await;
    assert_eq!(state_name(b.state), "CONTAINER_RUNNING", "the other pod's logger: {b:?}");
    let blog = d.log_of(&bystander_pod, "logger");
    let n = stdout_lines(&blog).len();
    eventually(Duration::from_secs(5), "the other pod to keep logging", || async {
        let now = stdout_lines(&blog).len();
        if now > n { Ok(()) } else { Err(format!("{now} ticks")) }
    })
    .await;
}
