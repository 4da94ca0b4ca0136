//! Tests of `path.rs`: the path type, kubelet's pod layout, `cgroup_parent` parsing, slices.

use super::*;

const UID: &str = "0e3a7b8c-1d2e-4f5a-9b6c-7d8e9f0a1b2c";
const UID_: &str = "0e3a7b8c_1d2e_4f5a_9b6c_7d8e9f0a1b2c";

#[test]
fn cgroup_path_rules() {
    assert!(CgroupPath::new("").unwrap().is_root());
    assert_eq!(
        CgroupPath::new("a/b").unwrap().parent().unwrap().as_str(),
        "a"
    );
    assert_eq!(
        CgroupPath::new("a").unwrap().parent(),
        Some(CgroupPath::root())
    );
    assert_eq!(CgroupPath::root().parent(), None);
    assert_eq!(CgroupPath::root().join("x").unwrap().as_str(), "x");
    assert_eq!(
        CgroupPath::new("a/b").unwrap().under(Path::new("/r")),
        Path::new("/r/a/b")
    );
    for bad in ["/a", "a/", "a//b", "a/../b", "..", ".", "a/\n", "a/./b"] {
        assert!(CgroupPath::new(bad).is_err(), "{bad:?}");
    }
    assert!(CgroupPath::root().join("a/b").is_err());
    assert!(CgroupPath::root().join("..").is_err());
}

#[test]
fn pod_cgroup_layout_table() {
    use CgroupDriver::*;
    use QosClass::*;
    for (qos, driver, want) in [
        (Guaranteed, Cgroupfs, format!("kubepods/pod{UID}")),
        (Burstable, Cgroupfs, format!("kubepods/burstable/pod{UID}")),
        (
            BestEffort,
            Cgroupfs,
            format!("kubepods/besteffort/pod{UID}"),
        ),
        (
            Guaranteed,
            Systemd,
            format!("kubepods.slice/kubepods-pod{UID_}.slice"),
        ),
        (
            Burstable,
            Systemd,
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"),
        ),
        (
            BestEffort,
            Systemd,
            format!("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice"),
        ),
    ] {
        let pod = PodCgroup::new(qos, UID, driver).unwrap();
        assert_eq!(pod.path.as_str(), want);
    }
}

#[test]
fn parse_parent_accepts_kubelet_forms() {
    use QosClass::*;
    for (value, qos, driver, path) in [
        (
            format!("/kubepods/burstable/pod{UID}"),
            Burstable,
            CgroupDriver::Cgroupfs,
            format!("kubepods/burstable/pod{UID}"),
        ),
        (
            format!("/kubepods/pod{UID}"),
            Guaranteed,
            CgroupDriver::Cgroupfs,
            format!("kubepods/pod{UID}"),
        ),
        (
            format!("kubepods/besteffort/pod{UID}"),
            BestEffort,
            CgroupDriver::Cgroupfs,
            format!("kubepods/besteffort/pod{UID}"),
        ),
        (
            format!("kubepods-burstable-pod{UID_}.slice"),
            Burstable,
            CgroupDriver::Systemd,
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"),
        ),
        (
            format!("kubepods-pod{UID_}.slice"),
            Guaranteed,
            CgroupDriver::Systemd,
            format!("kubepods.slice/kubepods-pod{UID_}.slice"),
        ),
    ] {
        let pod = PodCgroup::parse_parent(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(
            (pod.qos, pod.driver, pod.path.as_str(), pod.pod_uid.as_str()),
            (qos, driver, path.as_str(), UID)
        );
    }
}

#[test]
fn parse_parent_rejects_and_names_the_value() {
    for value in [
        "",
        "/",
        "/kubepods",
        "/kubepods/",
        "/kubepods/burstable/",
        "/kubepods//podabc",
        "//kubepods/podabc",
        "/kubepods/../etc",
        "/kubepods/burstable/../../etc/podabc",
        "/kubepods/burstable/pod..",
        "/system.slice/podabc",
        "/kubelet/kubepods/podabc",
        "/kubepods/guaranteed/podabc",
        "/kubepods/burstable/abc",
        "/kubepods/burstable/pod",
        "/kubepods/burstable/podabc/extra",
        "/kubepods/burstable/pod_abc",
        "kubepods-burstable-pod-abc.slice",
        "kubepods--podabc.slice",
        "-kubepods-podabc.slice",
        "system-podabc.slice",
        "kubepods.slice",
        "-.slice",
        "kubepods-burstable-pod../x.slice",
        "/sys/fs/cgroup/kubepods/podabc",
    ] {
        let err = PodCgroup::parse_parent(value).expect_err(value);
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{value}: {err}"
        );
        assert!(
            err.to_string().contains(&format!("{value:?}")),
            "{value}: {err}"
        );
    }
}

#[test]
fn container_paths() {
    let pod = PodCgroup::new(QosClass::Burstable, UID, CgroupDriver::Cgroupfs).unwrap();
    assert_eq!(
        pod.container("abc123").unwrap().as_str(),
        format!("kubepods/burstable/pod{UID}/abc123")
    );
    let pod = PodCgroup::new(QosClass::Burstable, UID, CgroupDriver::Systemd).unwrap();
    assert!(
        pod.container("abc")
            .unwrap()
            .as_str()
            .ends_with(".slice/wasmlet-abc.scope")
    );
    for bad in ["", "..", ".x", "a/b", "a b"] {
        assert!(pod.container(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn expand_slice_table() {
    assert_eq!(expand_slice("-.slice").unwrap(), CgroupPath::root());
    assert_eq!(expand_slice("a.slice").unwrap().as_str(), "a.slice");
    assert_eq!(
        expand_slice("a-b-c.slice").unwrap().as_str(),
        "a.slice/a-b.slice/a-b-c.slice"
    );
    for bad in [
        "a",
        "a-.slice",
        "-a.slice",
        "a--b.slice",
        ".slice",
        "a/b.slice",
    ] {
        assert!(expand_slice(bad).is_err(), "{bad}");
    }
}
