//! Which cgroup setup the host has — v1, hybrid or v2 — read from `/proc/self/mountinfo`, never
//! guessed from directory names. The root (normally `/sys/fs/cgroup`) is a parameter so tests can
//! point at a private mount.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::{Controller, Error, Result, fs};

/// The host's cgroup mode under a given root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Only v1 hierarchies under the root.
    V1,
    /// v1 hierarchies plus a cgroup2 mount below the root (systemd's `unified`), which usually
    /// has few or no controllers because they are bound to v1.
    Hybrid,
    /// A cgroup2 file system mounted at the root itself.
    V2,
}

/// One line of mountinfo, the parts this crate uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: Vec<String>,
}

/// What is mounted under a cgroup root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub mode: CgroupMode,
    /// The root asked about.
    pub root: PathBuf,
    /// v1 controllers and the mount point of the hierarchy each is bound to (co-mounted
    /// controllers such as `cpu,cpuacct` share one path).
    pub v1: BTreeMap<Controller, PathBuf>,
    /// The cgroup2 mount: the root itself on v2, the `unified` mount on hybrid.
    pub unified: Option<PathBuf>,
    /// Controllers listed in the cgroup2 root's `cgroup.controllers` (filled by [`detect`]).
    pub unified_controllers: BTreeSet<Controller>,
}

/// Reads `/proc/self/mountinfo` and `cgroup.controllers` and classifies `root`.
pub fn detect(root: &Path) -> Result<Layout> {
    let mountinfo = Path::new("/proc/self/mountinfo");
    let mounts = parse_mountinfo(mountinfo, &fs::read(mountinfo)?)?;
    let mut layout = classify(&mounts, root)?;
    if let Some(unified) = &layout.unified {
        let text = fs::read(&unified.join("cgroup.controllers"))?;
        layout.unified_controllers = text
            .split_whitespace()
            .filter_map(Controller::from_name)
            .collect();
    }
    Ok(layout)
}

/// Parses mountinfo text (`proc(5)`): field 5 is the mount point; after the `-` separator come the
/// file-system type, the source and the super options. `path` only names the source in errors.
pub fn parse_mountinfo(path: &Path, text: &str) -> Result<Vec<MountEntry>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let sep = fields.iter().skip(6).position(|f| *f == "-").map(|i| i + 6);
        let (Some(sep), Some(mount_point)) = (sep, fields.get(4)) else {
            return Err(Error::malformed(path, format!("bad line {line:?}")));
        };
        let (Some(fs_type), Some(opts)) = (fields.get(sep + 1), fields.get(sep + 3)) else {
            return Err(Error::malformed(path, format!("bad line {line:?}")));
        };
        out.push(MountEntry {
            mount_point: PathBuf::from(unescape(mount_point)),
            fs_type: (*fs_type).to_owned(),
            super_options: opts.split(',').map(str::to_owned).collect(),
        });
    }
    Ok(out)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(d) = octal {
            out.push(
                d.iter()
                    .fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')),
            );
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Classifies the mounts under `root`. A later mount on the same mount point hides an earlier one.
pub fn classify(mounts: &[MountEntry], root: &Path) -> Result<Layout> {
    let mut visible: BTreeMap<&Path, &MountEntry> = BTreeMap::new();
    for m in mounts {
        visible.insert(&m.mount_point, m);
    }
    let mut v1 = BTreeMap::new();
    let mut unified = None;
    let mut v2_at_root = false;
    for (mount_point, m) in visible {
        match m.fs_type.as_str() {
            "cgroup2" if mount_point == root => v2_at_root = true,
            "cgroup2" if mount_point.starts_with(root) => unified = Some(mount_point.to_path_buf()),
            "cgroup" if mount_point.starts_with(root) && mount_point != root => {
                for c in m
                    .super_options
                    .iter()
                    .filter_map(|o| Controller::from_name(o))
                {
                    v1.entry(c).or_insert_with(|| mount_point.to_path_buf());
                }
            }
            _ => {}
        }
    }
    let mode = if v2_at_root {
        unified = Some(root.to_path_buf());
        v1.clear();
        CgroupMode::V2
    } else if v1.is_empty() {
        return Err(Error::Unsupported {
            what: format!("cgroups at {}", root.display()),
            reason: "no cgroup or cgroup2 file system is mounted there (see /proc/self/mountinfo)"
                .into(),
        });
    } else if unified.is_some() {
        CgroupMode::Hybrid
    } else {
        CgroupMode::V1
    };
    Ok(Layout {
        mode,
        root: root.to_path_buf(),
        v1,
        unified,
        unified_controllers: BTreeSet::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's mountinfo (Debian 12, systemd hybrid), trimmed.
    const HYBRID: &str = "\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V2: &str = "\
25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
    /// Classic co-mounted v1 (`cpu,cpuacct`) with optional fields before the separator.
    const V1_COMOUNT: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 master:2 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
";

    fn classify_text(text: &str, root: &str) -> Result<Layout> {
        classify(
            &parse_mountinfo(Path::new("mountinfo"), text)?,
            Path::new(root),
        )
    }

    #[test]
    fn hybrid_host() {
        let l = classify_text(HYBRID, "/sys/fs/cgroup").unwrap();
        assert_eq!(l.mode, CgroupMode::Hybrid);
        assert_eq!(
            l.unified.as_deref(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            l.v1[&Controller::Cpuacct],
            Path::new("/sys/fs/cgroup/cpuacct")
        );
        assert_eq!(
            l.v1.len(),
            5,
            "name=systemd is not a controller: {:?}",
            l.v1
        );
        // The unified mount alone is a v2 root.
        assert_eq!(
            classify_text(HYBRID, "/sys/fs/cgroup/unified")
                .unwrap()
                .mode,
            CgroupMode::V2
        );
    }

    #[test]
    fn v2_and_v1_hosts() {
        let l = classify_text(V2, "/sys/fs/cgroup").unwrap();
        assert_eq!((l.mode, l.v1.len()), (CgroupMode::V2, 0));
        let l = classify_text(V1_COMOUNT, "/sys/fs/cgroup").unwrap();
        assert_eq!(l.mode, CgroupMode::V1);
        assert_eq!(l.v1[&Controller::Cpu], l.v1[&Controller::Cpuacct]);
        assert_eq!(
            l.v1[&Controller::Cpu],
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
    }

    #[test]
    fn nothing_mounted_is_an_error_naming_the_root() {
        let e = classify_text(HYBRID, "/tmp/nothing").unwrap_err();
        assert!(e.to_string().contains("/tmp/nothing"), "{e}");
    }

    #[test]
    fn overmount_hides_and_escapes_decode() {
        let text = "1 0 0:1 / /t/cg rw - cgroup cgroup rw,memory\n2 0 0:2 / /t/cg rw - tmpfs tmpfs rw\n\
                    3 0 0:3 / /t/my\\040dir rw - cgroup2 cgroup2 rw\n";
        let mounts = parse_mountinfo(Path::new("m"), text).unwrap();
        assert_eq!(mounts[2].mount_point, Path::new("/t/my dir"));
        assert_eq!(
            classify(&mounts, Path::new("/t/my dir")).unwrap().mode,
            CgroupMode::V2
        );
        assert!(
            classify(&mounts, Path::new("/t")).is_err(),
            "the memory mount is hidden by tmpfs"
        );
    }

    #[test]
    fn malformed_line() {
        assert!(parse_mountinfo(Path::new("m"), "1 2 3\n").is_err());
    }
}
