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
        Ok(CgroupPath(if self.0.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.0)
        }))
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
        if self.0.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&self.0)
        }
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
        Ok(PodCgroup {
            path,
            driver,
            qos,
            pod_uid: pod_uid.to_owned(),
        })
    }

    /// Parses the `cgroup_parent` of a `PodSandboxConfig`. Anything that is not exactly a pod
    /// cgroup under `kubepods` is rejected, naming the value: `..`, empty components, paths
    /// outside `kubepods`, a custom `--cgroup-root` prefix (not supported yet), trailing `/`.
    pub fn parse_parent(value: &str) -> Result<PodCgroup> {
        let bad = |reason: &str| Error::invalid("cgroup_parent", value, reason);
        let (driver, parts): (CgroupDriver, Vec<String>) =
            if value.ends_with(".slice") && !value.contains('/') {
                let name = value.trim_end_matches(".slice");
                expand_slice(value)?;
                (
                    CgroupDriver::Systemd,
                    name.split('-').map(str::to_owned).collect(),
                )
            } else {
                let rel = value.strip_prefix('/').unwrap_or(value);
                CgroupPath::new(rel).map_err(|e| match e {
                    Error::InvalidArgument { reason, .. } => bad(&reason),
                    other => other,
                })?;
                (
                    CgroupDriver::Cgroupfs,
                    rel.split('/').map(str::to_owned).collect(),
                )
            };
        let (tier, pod) = match parts.as_slice() {
            [root, pod] if root == "kubepods" => (None, pod),
            [root, tier, pod] if root == "kubepods" => (Some(tier.as_str()), pod),
            _ => {
                return Err(bad(
                    "not a pod cgroup under kubepods (want kubepods[/burstable|/besteffort]/pod<uid>)",
                ));
            }
        };
        let qos = match tier {
            None => QosClass::Guaranteed,
            Some("burstable") => QosClass::Burstable,
            Some("besteffort") => QosClass::BestEffort,
            Some(_) => return Err(bad("the QoS level must be burstable or besteffort")),
        };
        let uid = pod
            .strip_prefix("pod")
            .ok_or_else(|| bad("the last component must be pod<uid>"))?;
        let sep = if driver == CgroupDriver::Systemd {
            '_'
        } else {
            '-'
        };
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
            && container_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(Error::invalid(
                "container id",
                container_id,
                "want 1-128 of [A-Za-z0-9_.-], not starting with `.`",
            ));
        }
        match self.driver {
            CgroupDriver::Cgroupfs => self.path.join(container_id),
            CgroupDriver::Systemd => self.path.join(&format!("wasmlet-{container_id}.scope")),
        }
    }
}

fn check_uid(whole: &str, uid: &str, sep: char) -> Result<()> {
    if uid.is_empty()
        || uid.len() > 128
        || !uid.chars().all(|c| c.is_ascii_alphanumeric() || c == sep)
    {
        return Err(Error::invalid(
            "pod uid",
            whole,
            format!("want 1-128 of [A-Za-z0-9{sep}]"),
        ));
    }
    Ok(())
}

/// systemd's slice expansion (runc `ExpandSlice`): `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`;
/// `-.slice` is the root. Rejects `/`, a leading or trailing `-` and `--`.
pub fn expand_slice(slice: &str) -> Result<CgroupPath> {
    let bad = |reason: &str| Error::invalid("systemd slice", slice, reason);
    let name = slice
        .strip_suffix(".slice")
        .ok_or_else(|| bad("must end in .slice"))?;
    if name == "-" {
        return Ok(CgroupPath::root());
    }
    if name.is_empty()
        || name.contains('/')
        || name.starts_with('-')
        || name.ends_with('-')
        || name.contains("--")
    {
        return Err(bad("empty, contains `/`, `--`, or starts or ends with `-`"));
    }
    let mut path = CgroupPath::root();
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path = path
            .join(&format!("{prefix}.slice"))
            .map_err(|_| bad("invalid component"))?;
    }
    Ok(path)
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
