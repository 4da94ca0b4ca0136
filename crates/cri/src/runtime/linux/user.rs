//! Who a Linux container's process runs as: the CRI's `run_as_user` / `run_as_username` /
//! `run_as_group`, else the image's `USER` (`name`, `uid`, `name:group`, `uid:gid`), names looked
//! up in the container's own `/etc/passwd` and `/etc/group`. Supplementary groups are the groups
//! the user belongs to in the image's `/etc/group` plus the CRI's `supplemental_groups`, as
//! containerd does. An unknown name is an error at CreateContainer.

use std::path::Path;

use k8s_cri::v1::LinuxContainerSecurityContext;

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves the user against the files of `rootfs` (the container's mounted root).
pub(crate) fn resolve(rootfs: &Path, sc: Option<&LinuxContainerSecurityContext>, image_user: &str) -> Result<User, Error> {
    let passwd = read_etc(rootfs, "passwd").map(|t| parse_passwd(&t)).unwrap_or_default();
    let groups = read_etc(rootfs, "group").map(|t| parse_group(&t)).unwrap_or_default();

    let (user_part, group_part): (String, Option<String>) = match sc {
        Some(sc) if sc.run_as_user.is_some() => (sc.run_as_user.as_ref().map(|v| v.value.to_string()).unwrap_or_default(), None),
        Some(sc) if !sc.run_as_username.is_empty() => (sc.run_as_username.clone(), None),
        _ => match image_user.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string())),
            None => (image_user.to_string(), None),
        },
    };
    let (uid, mut gid, name) = if user_part.is_empty() {
        (0, 0, passwd.iter().find(|p| p.uid == 0).map(|p| p.name.clone()))
    } else if let Ok(uid) = user_part.parse::<u32>() {
        let entry = passwd.iter().find(|p| p.uid == uid);
        (uid, entry.map(|p| p.gid).unwrap_or(0), entry.map(|p| p.name.clone()))
    } else {
        let entry = passwd
            .iter()
            .find(|p| p.name == user_part)
            .ok_or_else(|| Error::InvalidArgument(format!("user {user_part:?} not found in the image's /etc/passwd")))?;
        (entry.uid, entry.gid, Some(entry.name.clone()))
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| Error::InvalidArgument(format!("group {g:?} not found in the image's /etc/group")))?,
        };
    }
    if let Some(g) = sc.and_then(|sc| sc.run_as_group.as_ref()) {
        gid = u32::try_from(g.value).map_err(|_| Error::InvalidArgument(format!("run_as_group {} is out of range", g.value)))?;
    }
    let mut additional_gids: Vec<u32> = match &name {
        Some(name) => groups.iter().filter(|g| g.members.iter().any(|m| m == name)).map(|g| g.gid).collect(),
        None => Vec::new(),
    };
    for g in sc.map(|sc| sc.supplemental_groups.as_slice()).unwrap_or_default() {
        additional_gids.push(u32::try_from(*g).map_err(|_| Error::InvalidArgument(format!("supplemental group {g} is out of range")))?);
    }
    additional_gids.retain(|&g| g != gid);
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(User { uid, gid, additional_gids })
}

/// `<rootfs>/etc/<name>`, refusing symlinks (the image must not make us read a host file).
fn read_etc(rootfs: &Path, name: &str) -> Option<String> {
    let etc = rootfs.join("etc");
    if !std::fs::symlink_metadata(&etc).ok()?.is_dir() {
        return None;
    }
    let file = etc.join(name);
    if !std::fs::symlink_metadata(&file).ok()?.is_file() {
        return None;
    }
    std::fs::read_to_string(file).ok()
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then(|| Some(PasswdEntry { name: f[0].to_string(), uid: f[2].parse().ok()?, gid: f[3].parse().ok()? }))?
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3).then(|| {
                Some(GroupEntry {
                    name: f[0].to_string(),
                    gid: f[2].parse().ok()?,
                    members: f.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).map(String::from).collect()).unwrap_or_default(),
                })
            })?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::Int64Value;

    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\n").unwrap();
        dir
    }

    #[test]
    fn image_user_by_name_gets_its_groups() {
        let r = rootfs();
        let u = resolve(r.path(), None, "app").unwrap();
        assert_eq!(u, User { uid: 1000, gid: 1000, additional_gids: vec![10, 29] });
        assert_eq!(resolve(r.path(), None, "").unwrap(), User { uid: 0, gid: 0, additional_gids: vec![] });
        assert_eq!(resolve(r.path(), None, "1000:wheel").unwrap().gid, 10);
        assert_eq!(resolve(r.path(), None, "4242").unwrap(), User { uid: 4242, gid: 0, additional_gids: vec![] });
    }

    #[test]
    fn cri_fields_win_and_unknown_names_fail() {
        let r = rootfs();
        let sc = LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 1000 }),
            run_as_group: Some(Int64Value { value: 3000 }),
            supplemental_groups: vec![4000],
            ..Default::default()
        };
        assert_eq!(resolve(r.path(), Some(&sc), "root").unwrap(), User { uid: 1000, gid: 3000, additional_gids: vec![10, 29, 4000] });
        let by_name = LinuxContainerSecurityContext { run_as_username: "nobody".into(), ..Default::default() };
        assert!(matches!(resolve(r.path(), Some(&by_name), ""), Err(Error::InvalidArgument(m)) if m.contains("nobody")));
        assert!(resolve(r.path(), None, "app:nogroup").is_err());
    }

    #[test]
    fn a_symlinked_passwd_is_not_followed() {
        let r = rootfs();
        std::fs::remove_file(r.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", r.path().join("etc/passwd")).unwrap();
        assert!(resolve(r.path(), None, "root").is_err(), "the host's /etc/passwd must not be read");
    }
}
