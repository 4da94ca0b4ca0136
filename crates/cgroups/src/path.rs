//! Cgroup paths: a validated relative path type, kubelet's pod cgroup layout
//! (`kubepods[/burstable|/besteffort]/pod<uid>`) and parsing of the `cgroup_parent` kubelet sends,
//! in cgroupfs form (`/kubepods/burstable/pod<uid>`) or systemd form
//! (`kubepods-burstable-pod<uid>.slice`, expanded like systemd and kubelet's systemd driver do).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Error, QosClass, Result};

/// A cgroup path relative to a hierarchy root. Every component is non-empty, not `.` or `..`,
/// and free of `/`, NUL and control characters, so joining it to a root can never escape.
/// The empty path is the root cgroup itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CgroupPath(String);

impl CgroupPath {
    /// The root cgroup of the hierarchy.
    pub fn root() -> CgroupPath {
        CgroupPath(String::new())
    }

    /// Parses `a/b/c` (no leading `/`).
    pub fn new(path: &str) -> Result<CgroupPath> {
        if path.is_empty() {
            return Ok(CgroupPath::root());
        }
        for c in path.split('/') {
            check_component("cgroup path", path, c)?;
        }
        Ok(CgroupPath(path.to_owned()))
    }

    /// This path with one more component.
    pub fn join(&self, name: &str) -> Result<CgroupPath> {
        check_component("cgroup name", name, name)?;
        Ok(CgroupPath(if self.0.is_empty() { name.to_owned() } else { format!("{}/{name}", self.0) }))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The parent; `None` for the root.
    pub fn parent(&self) -> Option<CgroupPath> {
        match self.0.rsplit_once('/') {
            Some((p, _)) => Some(CgroupPath(p.to_owned())),
            None if self.0.is_empty() => None,
            None => Some(CgroupPath::root()),
        }
    }

    /// The directory of this cgroup under a hierarchy mounted at `root`.
    pub fn under(&self, root: &Path) -> PathBuf {
        if self.0.is_empty() { root.to_path_buf() } else { root.join(&self.0) }
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

fn check_component(field: &'static str, whole: &str, c: &str) -> Result<()> {
    let reason = if c.is_empty() {
        "empty path component (leading, trailing or double `/`)"
    } else if c == "." || c == ".." {
        "`.` and `..` are not allowed"
    } else if c.contains('/') {
        "a name cannot contain `/`"
    } else if c.chars().any(char::is_control) {
        "control characters are not allowed"
    } else if c.len() > 255 {
        "component longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::invalid(field, whole, reason))
}

/// Which naming convention kubelet's cgroup driver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

/// A pod's cgroup, as kubelet lays it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    pub path: CgroupPath,
    pub driver: CgroupDriver,
    pub qos: QosClass,
    /// The pod UID with dashes (systemd's `_` escaping undone).
    pub pod_uid: String,
}

impl PodCgroup {
    /// The pod cgroup for a QoS class and UID: `kubepods/burstable/pod<uid>` (cgroupfs) or
    /// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice` (systemd).
    pub fn new(qos: QosClass, pod_uid: &str, driver: CgroupDriver) -> Result<PodCgroup> {
        check_uid(pod_uid, pod_uid, '-')?;
        let tier = match qos {
            QosClass::Guaranteed => None,
            QosClass::Burstable => Some("burstable"),
            QosClass::BestEffort => Some("besteffort"),
        };
        let path = match driver {
            CgroupDriver::Cgroupfs => CgroupPath::new(&match tier {
                Some(t) => format!("kubepods/{t}/pod{pod_uid}"),
                None => format!("kubepods/pod{pod_uid}"),
            })?,
            CgroupDriver::Systemd => {
                let uid = pod_uid.replace('-', "_");
                expand_slice(&match tier {
                    Some(t) => format!("kubepods-{t}-pod{uid}.slice"),
                    None => format!("kubepods-pod{uid}.slice"),
                })?
            }
        };
        Ok(PodCgroup { path, driver, qos, pod_uid: pod_uid.to_owned() })
    }

    /// Parses the `cgroup_parent` of a `PodSandboxConfig`. Anything that is not exactly a pod
    /// cgroup under `kubepods` is rejected, naming the value: `..`, empty components, paths
    /// outside `kubepods`, a custom `--cgroup-root` prefix (not supported yet), trailing `/`.
    pub fn parse_parent(value: &str) -> Result<PodCgroup> {
        let bad = |reason: &str| Error::invalid("cgroup_parent", value, reason);
        let (driver, parts): (CgroupDriver, Vec<String>) = if value.ends_with(".slice") && !value.contains('/') {
            let name = value.trim_end_matches(".slice");
            expand_slice(value)?;
            (CgroupDriver::Systemd, name.split('-').map(str::to_owned).collect())
        } else {
            let rel = value.strip_prefix('/').unwrap_or(value);
            CgroupPath::new(rel).map_err(|e| match e {
                Error::InvalidArgument { reason, .. } => bad(&reason),
                other => other,
            })?;
            (CgroupDriver::Cgroupfs, rel.split('/').map(str::to_owned).collect())
        };
        let (tier, pod) = match parts.as_slice() {
            [root, pod] if root == "kubepods" => (None, pod),
            [root, tier, pod] if root == "kubepods" => (Some(tier.as_str()), pod),
            _ => return Err(bad("not a pod cgroup under kubepods (want kubepods[/burstable|/besteffort]/pod<uid>)")),
        };
        let qos = match tier {
            None => QosClass::Guaranteed,
            Some("burstable") => QosClass::Burstable,
            Some("besteffort") => QosClass::BestEffort,
            Some(_) => return Err(bad("the QoS level must be burstable or besteffort")),
        };
        let uid = pod.strip_prefix("pod").ok_or_else(|| bad("the last component must be pod<uid>"))?;
        let sep = if driver == CgroupDriver::Systemd { '_' } else { '-' };
        check_uid(value, uid, sep)?;
        let pod_cgroup = PodCgroup::new(qos, &uid.replace('_', "-"), driver)?;
        Ok(pod_cgroup)
    }

    /// A container's cgroup inside the pod: `<pod>/<id>` (cgroupfs) or `<pod>/wasmlet-<id>.scope`
    /// (systemd, like containerd's `cri-containerd-<id>.scope`).
    pub fn container(&self, container_id: &str) -> Result<CgroupPath> {
        let ok = !container_id.is_empty()
            && container_id.len() <= 128
            && !container_id.starts_with('.')
            && container_id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(Error::invalid("container id", container_id, "want 1-128 of [A-Za-z0-9_.-], not starting with `.`"));
        }
        match self.driver {
            CgroupDriver::Cgroupfs => self.path.join(container_id),
            CgroupDriver::Systemd => self.path.join(&format!("wasmlet-{container_id}.scope")),
        }
    }
}

fn check_uid(whole: &str, uid: &str, sep: char) -> Result<()> {
    if uid.is_empty() || uid.len() > 128 || !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == sep) {
        return Err(Error::invalid("pod uid", whole, format!("want 1-128 of [A-Za-z0-9{sep}]")));
    }
    Ok(())
}

/// systemd's slice expansion (runc `ExpandSlice`): `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`;
/// `-.slice` is the root. Rejects `/`, a leading or trailing `-` and `--`.
pub fn expand_slice(slice: &str) -> Result<CgroupPath> {
    let bad = |reason: &str| Error::invalid("systemd slice", slice, reason);
    let name = slice.strip_suffix(".slice").ok_or_else(|| bad("must end in .slice"))?;
    if name == "-" {
        return Ok(CgroupPath::root());
    }
    if name.is_empty() || name.contains('/') || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(bad("empty, contains `/`, `--`, or starts or ends with `-`"));
    }
    let mut path = CgroupPath::root();
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path = path.join(&format!("{prefix}.slice")).map_err(|_| bad("invalid component"))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0e3a7b8c-1d2e-4f5a-9b6c-7d8e9f0a1b2c";
    const UID_: &str = "0e3a7b8c_1d2e_4f5a_9b6c_7d8e9f0a1b2c";

    #[test]
    fn cgroup_path_rules() {
        assert!(CgroupPath::new("").unwrap().is_root());
        assert_eq!(CgroupPath::new("a/b").unwrap().parent().unwrap().as_str(), "a");
        assert_eq!(CgroupPath::new("a").unwrap().parent(), Some(CgroupPath::root()));
        assert_eq!(CgroupPath::root().parent(), None);
        assert_eq!(CgroupPath::root().join("x").unwrap().as_str(), "x");
        assert_eq!(CgroupPath::new("a/b").unwrap().under(Path::new("/r")), Path::new("/r/a/b"));
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
            (BestEffort, Cgroupfs, format!("kubepods/besteffort/pod{UID}")),
            (Guaranteed, Systemd, format!("kubepods.slice/kubepods-pod{UID_}.slice")),
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
            (format!("/kubepods/burstable/pod{UID}"), Burstable, CgroupDriver::Cgroupfs, format!("kubepods/burstable/pod{UID}")),
            (format!("/kubepods/pod{UID}"), Guaranteed, CgroupDriver::Cgroupfs, format!("kubepods/pod{UID}")),
            (format!("kubepods/besteffort/pod{UID}"), BestEffort, CgroupDriver::Cgroupfs, format!("kubepods/besteffort/pod{UID}")),
            (
                format!("kubepods-burstable-pod{UID_}.slice"),
                Burstable,
                CgroupDriver::Systemd,
                format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice"),
            ),
            (format!("kubepods-pod{UID_}.slice"), Guaranteed, CgroupDriver::Systemd, format!("kubepods.slice/kubepods-pod{UID_}.slice")),
        ] {
            let pod = PodCgroup::parse_parent(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!((pod.qos, pod.driver, pod.path.as_str(), pod.pod_uid.as_str()), (qos, driver, path.as_str(), UID));
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
            assert!(matches!(err, Error::InvalidArgument { .. }), "{value}: {err}");
            assert!(err.to_string().contains(&format!("{value:?}")), "{value}: {err}");
        }
    }

    #[test]
    fn container_paths() {
        let pod = PodCgroup::new(QosClass::Burstable, UID, CgroupDriver::Cgroupfs).unwrap();
        assert_eq!(pod.container("abc123").unwrap().as_str(), format!("kubepods/burstable/pod{UID}/abc123"));
        let pod = PodCgroup::new(QosClass::Burstable, UID, CgroupDriver::Systemd).unwrap();
        assert!(pod.container("abc").unwrap().as_str().ends_with(".slice/wasmlet-abc.scope"));
        for bad in ["", "..", ".x", "a/b", "a b"] {
            assert!(pod.container(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expand_slice_table() {
        assert_eq!(expand_slice("-.slice").unwrap(), CgroupPath::root());
        assert_eq!(expand_slice("a.slice").unwrap().as_str(), "a.slice");
        assert_eq!(expand_slice("a-b-c.slice").unwrap().as_str(), "a.slice/a-b.slice/a-b-c.slice");
        for bad in ["a", "a-.slice", "-a.slice", "a--b.slice", ".slice", "a/b.slice"] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }
}
