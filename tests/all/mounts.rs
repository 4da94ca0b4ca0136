//! Mounts: a CRI mount is the only way a Wasm guest sees the host's files. Read-write mounts can
//! be written, read-only ones cannot, and what is not mounted does not exist for the guest.

use std::time::Duration;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_expose_exactly_the_mounted_host_dirs() {
    let d = Daemon::start("mounts", &[READER_P1]).await;
    let sandbox = d.run_pod("mounts").await;

    let rw = d.dir.join("rw");
    std::fs::create_dir_all(rw.join("sub")).unwrap();
    std::fs::write(rw.join("greeting.txt"), "hi there\n").unwrap();
    let ro = d.dir.join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("fixed.txt"), "read me").unwrap();

    let writer = d
        .create(
            &sandbox,
            "writer",
            READER_P1.image,
            &["/data", "--write", "out.txt", "written by wasm"],
            &[],
            vec![mount("/data", &rw, false)],
        )
        .await;
    let refused =
        d.create(&sandbox, "refused", READER_P1.image, &["/ro", "--write", "x.txt", "nope"], &[], vec![mount("/ro", &ro, true)]).await;
    // /etc exists on the host but is not mounted; /data is mounted, just not at /etc.
    let unmounted = d.create(&sandbox, "unmounted", READER_P1.image, &["/etc"], &[], vec![mount("/data", &rw, true)]).await;
    // Nor may a guest climb out of a mount, by `..` or by a symlink the host put there.
    let jail = d.dir.join("jail");
    std::fs::create_dir_all(&jail).unwrap();
    std::os::unix::fs::symlink("/etc", jail.join("etc-link")).unwrap();
    let dotdot = d.create(&sandbox, "dotdot", READER_P1.image, &["/data/.."], &[], vec![mount("/data", &jail, false)]).await;
    let symlink = d.create(&sandbox, "symlink", READER_P1.image, &["/data/etc-link"], &[], vec![mount("/data", &jail, false)]).await;
    for id in [&writer, &refused, &unmounted, &dotdot, &symlink] {
        d.start_container(id).await;
    }

    let s = d.wait_exited(&writer, Duration::from_secs(10)).await;
    let log = read_log(&d.log_of(&sandbox, "writer"));
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "writer: {log:?}");
    assert_eq!(
        stdout_lines(&d.log_of(&sandbox, "writer")),
        ["entry greeting.txt", "entry sub/", "file greeting.txt: hi there", "wrote out.txt"],
        "the guest lists and reads the host dir"
    );
    assert_eq!(std::fs::read_to_string(rw.join("out.txt")).unwrap(), "written by wasm", "the host sees the guest's write");

    let s = d.wait_exited(&refused, Duration::from_secs(10)).await;
    let log = read_log(&d.log_of(&sandbox, "refused"));
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"), "a write to a read-only mount must fail: {log:?}");
    assert_eq!(stdout_lines(&d.log_of(&sandbox, "refused")), ["entry fixed.txt", "file fixed.txt: read me"]);
    assert!(log.iter().any(|r| r.stream == "stderr" && r.text.starts_with("write failed:")), "{log:?}");
    assert!(!ro.join("x.txt").exists(), "the read-only mount was written to");
    let host_files: Vec<_> = std::fs::read_dir(&ro).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(host_files, ["fixed.txt"], "nothing may appear in a read-only mount");

    let s = d.wait_exited(&unmounted, Duration::from_secs(10)).await;
    let log = read_log(&d.log_of(&sandbox, "unmounted"));
    assert_eq!(s.exit_code, 2, "a host path that is not mounted must not be readable: {log:?}");
    assert!(stdout_lines(&d.log_of(&sandbox, "unmounted")).is_empty(), "the guest listed /etc: {log:?}");

    for (name, id) in [("dotdot", &dotdot), ("symlink", &symlink)] {
        let s = d.wait_exited(id, Duration::from_secs(10)).await;
        let log = read_log(&d.log_of(&sandbox, name));
        assert_eq!(s.exit_code, 2, "{name}: a guest must not leave its mount: {log:?}");
        assert!(stdout_lines(&d.log_of(&sandbox, name)).is_empty(), "{name}: the guest listed a host dir outside its mount: {log:?}");
    }
}
