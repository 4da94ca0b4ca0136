//! Container logs: exactly what the guest wrote, in the CRI format kubelet reads, with the argv and
//! environment the CRI config asked for.

use std::time::Duration;

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

/// What `hello` prints for `argv` and `env` (env sorted by key, as the guest sorts it).
fn hello_output(argv: &[&str], env: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut lines = vec![("stdout".to_string(), "hello from wasm".to_string())];
    for (i, a) in argv.iter().enumerate() {
        lines.push(("stdout".into(), format!("argv[{i}]={a}")));
    }
    let mut env = env.to_vec();
    env.sort();
    for (k, v) in env {
        lines.push(("stdout".into(), format!("env {k}={v}")));
    }
    lines.push(("stderr".into(), "hello stderr".into()));
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_exactly_what_the_guest_wrote() {
    let d = Daemon::start("logs", &[HELLO_P1, HELLO_P2]).await;
    let t0 = now_nanos();
    let sandbox = d.run_pod("logs").await;
    let env = [("GREETING", "hi there"), ("EMPTY", ""), ("EQUALS", "a=b"), ("UNICODE", "grüße")];

    // command + args → argv, for a core module and a component.
    let mut ids = Vec::new();
    for (name, guest) in [("p1", HELLO_P1), ("p2", HELLO_P2)] {
        let mut config = container_config(name, guest.image, &["with space", "", "--flag=x"], &env, vec![]);
        config.command = vec!["hello".into(), "first".into()];
        ids.push((name, d.create_config(&sandbox, config).await));
    }
    // Only args: the image's entrypoint (`/<file name>` for an imported .wasm) stays argv[0].
    ids.push(("args-only", d.create(&sandbox, "args-only", HELLO_P1.image, &["x", "y"], &[], vec![]).await));
    for (_, id) in &ids {
        d.start_container(id).await;
    }

    let argv: &[&str] = &["hello", "first", "with space", "", "--flag=x"];
    let expected =
        [("p1", hello_output(argv, &env)), ("p2", hello_output(argv, &env)), ("args-only", hello_output(&["/hello.wasm", "x", "y"], &[]))];
    for ((name, id), (_, want)) in ids.iter().zip(expected) {
        let s = d.wait_exited(id, Duration::from_secs(10)).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{name}: {:?}", s.message);
        let t1 = now_nanos();
        let records = read_log(&d.log_of(&sandbox, name));
        let got: Vec<(String, String)> = records.iter().map(|r| (r.stream.clone(), r.text.clone())).collect();
        assert_eq!(got, want, "{name}: log lines (stream, text)");
        for r in &records {
            assert_eq!(r.tag, "F", "{name}: every line the guest ended is a full record: {r:?}");
            assert!(t0 <= r.time && r.time <= t1, "{name}: timestamp {} outside the test ({t0}..{t1}): {r:?}", r.time);
            assert!(
                s.started_at <= r.time && r.time <= s.finished_at,
                "{name}: record {r:?} written outside the run ({}..{})",
                s.started_at,
                s.finished_at
            );
        }
        assert!(records.windows(2).all(|w| w[0].time <= w[1].time), "{name}: timestamps go backwards: {records:?}");
    }

    let raw = std::fs::read_to_string(d.log_of(&sandbox, "p1")).unwrap();
    let first = raw.lines().next().unwrap();
    assert!(first.split(' ').next().unwrap().ends_with('Z'), "timestamps are UTC with a 'Z': {first:?}");
    assert!(raw.ends_with('\n'), "every record ends with a newline");

    // ContainerStatus names the same file.
    let s = d.rt().container_status(cri::ContainerStatusRequest { container_id: ids[0].1.clone(), verbose: false }).await.unwrap();
    assert_eq!(s.into_inner().status.unwrap().log_path, d.log_of(&sandbox, "p1").display().to_string());
}
