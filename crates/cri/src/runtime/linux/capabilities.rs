//! A Linux container's capabilities: containerd's default set, then the CRI's `add_capabilities`
//! and `drop_capabilities` (names with or without `CAP_`, any case; `ALL` in either), or every
//! capability for a privileged container. The result is the bounding, effective and permitted
//! set; inheritable and ambient stay empty, as in containerd.

use k8s_cri::v1::LinuxContainerSecurityContext;

use crate::Error;

/// containerd's (and Docker's) default capability set.
const DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability this kernel ABI knows (to CAP_CHECKPOINT_RESTORE, 40).
const ALL: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The container's capability set, sorted.
pub(crate) fn capabilities(sc: Option<&LinuxContainerSecurityContext>) -> Result<Vec<String>, Error> {
    let Some(sc) = sc else { return Ok(DEFAULT.iter().map(|s| s.to_string()).collect()) };
    if sc.privileged {
        return Ok(ALL.iter().map(|s| s.to_string()).collect());
    }
    let mut set: Vec<String> = DEFAULT.iter().map(|s| s.to_string()).collect();
    if let Some(caps) = &sc.capabilities {
        let add = normalize("add_capabilities", &caps.add_capabilities)?;
        let drop = normalize("drop_capabilities", &caps.drop_capabilities)?;
        if add.iter().any(|c| c == "ALL") {
            set = ALL.iter().map(|s| s.to_string()).collect();
        } else {
            set.extend(add);
        }
        if drop.iter().any(|c| c == "ALL") {
            set.clear();
            // An explicit add survives `drop: [ALL]` (containerd's order: drop all, then add).
            set.extend(normalize("add_capabilities", &caps.add_capabilities)?.into_iter().filter(|c| c != "ALL"));
        } else {
            set.retain(|c| !drop.contains(c));
        }
    }
    set.sort();
    set.dedup();
    Ok(set)
}

fn normalize(field: &str, names: &[String]) -> Result<Vec<String>, Error> {
    names
        .iter()
        .map(|n| {
            let upper = n.trim().to_ascii_uppercase();
            if upper == "ALL" {
                return Ok(upper);
            }
            let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
            if ALL.contains(&full.as_str()) {
                Ok(full)
            } else {
                Err(Error::InvalidArgument(format!("security_context.capabilities.{field}: unknown capability {n:?}")))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::Capability;

    use super::*;

    fn with(add: &[&str], drop: &[&str]) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            capabilities: Some(Capability {
                add_capabilities: add.iter().map(|s| s.to_string()).collect(),
                drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
                add_ambient_capabilities: vec![],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn default_add_drop_all_and_privileged() {
        assert_eq!(capabilities(None).unwrap().len(), DEFAULT.len());
        let set = capabilities(Some(&with(&["net_admin"], &["CAP_CHOWN", "kill"]))).unwrap();
        assert!(set.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!set.contains(&"CAP_CHOWN".to_string()) && !set.contains(&"CAP_KILL".to_string()));
        assert_eq!(capabilities(Some(&with(&["NET_BIND_SERVICE"], &["ALL"]))).unwrap(), vec!["CAP_NET_BIND_SERVICE"]);
        assert_eq!(capabilities(Some(&with(&["ALL"], &[]))).unwrap().len(), ALL.len());
        let privileged = LinuxContainerSecurityContext { privileged: true, ..Default::default() };
        assert_eq!(capabilities(Some(&privileged)).unwrap().len(), ALL.len());
        assert!(capabilities(Some(&with(&["CAP_BOGUS"], &[]))).is_err());
    }
}
