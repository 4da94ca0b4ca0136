//! Seccomp for Linux containers, as the OCI `linux.seccomp` JSON: `RuntimeDefault` is the
//! allowlist every mainstream runtime ships (Docker's, which containerd and CRI-O use): deny by
//! EPERM, allow the ordinary syscalls, allow the privileged ones only with the capability that
//! makes them meaningful, refuse namespace-creating `clone` flags and `clone3` (ENOSYS, so libc
//! falls back to `clone`) without CAP_SYS_ADMIN. `Localhost` loads an OCI seccomp JSON file from
//! the node; `Unconfined` (kubelet's default) and privileged containers get none.

use k8s_cri::v1::{LinuxContainerSecurityContext, SecurityProfile, security_profile::ProfileType};
use serde_json::{Value, json};

use crate::Error;

/// Allowed to every container.
const ALLOWED: &str = "accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32 \
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep \
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 \
epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit \
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown \
fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 \
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd \
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer \
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 \
getrlimit get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid \
getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy \
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter \
io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown \
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 \
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 \
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 \
mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep \
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free \
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 \
pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg \
recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq \
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait \
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity \
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop \
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid \
setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid \
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid \
setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn \
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs \
sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime \
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill \
truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice \
wait4 waitid waitpid write writev process_vm_readv process_vm_writev ptrace";

/// Allowed only to a container holding the capability.
const WITH_CAPABILITY: &[(&str, &str)] = &[
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr move_mount \
         open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// `clone` flags that create namespaces (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `socket` family refused without privilege: AF_VSOCK.
const AF_VSOCK: u64 = 40;
/// `personality` values allowed: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, query.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// The `linux.seccomp` of a container, or `None` for no filter.
pub(crate) fn profile(sc: Option<&LinuxContainerSecurityContext>, capabilities: &[String]) -> Result<Option<Value>, Error> {
    let Some(sc) = sc else { return Ok(None) };
    if sc.privileged {
        return Ok(None);
    }
    match which(sc)? {
        Which::Unconfined => Ok(None),
        Which::RuntimeDefault => Ok(Some(runtime_default(capabilities))),
        Which::Localhost(path) => localhost(&path).map(Some),
    }
}

enum Which {
    Unconfined,
    RuntimeDefault,
    Localhost(String),
}

fn which(sc: &LinuxContainerSecurityContext) -> Result<Which, Error> {
    if let Some(SecurityProfile { profile_type, localhost_ref }) = &sc.seccomp {
        return match ProfileType::try_from(*profile_type) {
            Ok(ProfileType::Unconfined) => Ok(Which::Unconfined),
            Ok(ProfileType::RuntimeDefault) => Ok(Which::RuntimeDefault),
            Ok(ProfileType::Localhost) if localhost_ref.is_empty() => {
                Err(Error::InvalidArgument("security_context.seccomp: Localhost needs localhost_ref".into()))
            }
            Ok(ProfileType::Localhost) => Ok(Which::Localhost(localhost_ref.clone())),
            Err(_) => Err(Error::InvalidArgument(format!("security_context.seccomp: unknown profile type {profile_type}"))),
        };
    }
    // The deprecated string form.
    #[allow(deprecated)]
    let path = sc.seccomp_profile_path.as_str();
    match path {
        "" | "unconfined" => Ok(Which::Unconfined),
        "runtime/default" | "docker/default" => Ok(Which::RuntimeDefault),
        p => match p.strip_prefix("localhost/") {
            Some(path) => Ok(Which::Localhost(path.to_string())),
            None => Err(Error::InvalidArgument(format!("security_context.seccomp_profile_path {p:?} is not a known profile"))),
        },
    }
}

/// An OCI seccomp JSON file from the node (absolute path, as kubelet resolves it).
fn localhost(path: &str) -> Result<Value, Error> {
    if !path.starts_with('/') {
        return Err(Error::InvalidArgument(format!("seccomp profile {path:?}: the path must be absolute")));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidArgument(format!("seccomp profile {path}: {e}")))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::InvalidArgument(format!("seccomp profile {path}: {e}")))?;
    if !value.get("defaultAction").is_some_and(Value::is_string) {
        return Err(Error::InvalidArgument(format!("seccomp profile {path}: no defaultAction")));
    }
    Ok(value)
}

fn runtime_default(capabilities: &[String]) -> Value {
    let has = |c: &str| capabilities.iter().any(|have| have == c);
    let mut allowed: Vec<&str> = ALLOWED.split_whitespace().collect();
    for (cap, names) in WITH_CAPABILITY {
        if has(cap) {
            allowed.extend(names.split_whitespace());
        }
    }
    if cfg!(target_arch = "x86_64") {
        allowed.extend(["arch_prctl", "modify_ldt"]);
    }
    if cfg!(target_arch = "aarch64") {
        allowed.extend(["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"]);
    }
    allowed.sort_unstable();
    allowed.dedup();
    let mut syscalls = vec![
        json!({"names": allowed, "action": "SCMP_ACT_ALLOW"}),
        json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]}),
    ];
    for p in PERSONALITIES {
        syscalls.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}]}));
    }
    if !has("CAP_SYS_ADMIN") {
        syscalls.push(json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]}));
        syscalls.push(json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS}));
    }
    let architectures: &[&str] = if cfg!(target_arch = "aarch64") {
        &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    };
    json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::EPERM, "architectures": architectures, "syscalls": syscalls})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(profile_type: ProfileType, localhost_ref: &str) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile { profile_type: profile_type as i32, localhost_ref: localhost_ref.into() }),
            ..Default::default()
        }
    }

    fn allowed(v: &Value) -> Vec<String> {
        serde_json::from_value(v["syscalls"][0]["names"].clone()).unwrap()
    }

    #[test]
    fn runtime_default_gates_privileged_syscalls_by_capability() {
        let plain = profile(Some(&sc(ProfileType::RuntimeDefault, "")), &["CAP_CHOWN".into()]).unwrap().unwrap();
        let names = allowed(&plain);
        assert!(names.iter().any(|n| n == "read"));
        assert!(!names.iter().any(|n| n == "mount"), "mount needs CAP_SYS_ADMIN");
        assert!(plain["syscalls"].as_array().unwrap().iter().any(|r| r["names"][0] == "clone3"));
        let admin = profile(Some(&sc(ProfileType::RuntimeDefault, "")), &["CAP_SYS_ADMIN".into()]).unwrap().unwrap();
        assert!(allowed(&admin).iter().any(|n| n == "mount"));
        assert!(!admin["syscalls"].as_array().unwrap().iter().any(|r| r["names"][0] == "clone3"));
    }

    #[test]
    fn unconfined_privileged_and_absent_mean_no_filter() {
        assert!(profile(None, &[]).unwrap().is_none());
        assert!(profile(Some(&sc(ProfileType::Unconfined, "")), &[]).unwrap().is_none());
        let mut p = sc(ProfileType::RuntimeDefault, "");
        p.privileged = true;
        assert!(profile(Some(&p), &[]).unwrap().is_none());
    }

    #[test]
    fn localhost_must_exist_and_be_a_profile() {
        let err = profile(Some(&sc(ProfileType::Localhost, "/nonexistent/profile.json")), &[]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(m) if m.contains("/nonexistent/profile.json")));
        assert!(profile(Some(&sc(ProfileType::Localhost, "")), &[]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(&file, r#"{"defaultAction":"SCMP_ACT_LOG"}"#).unwrap();
        let p = profile(Some(&sc(ProfileType::Localhost, file.to_str().unwrap())), &[]).unwrap().unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_LOG");
        std::fs::write(&file, "[]").unwrap();
        assert!(profile(Some(&sc(ProfileType::Localhost, file.to_str().unwrap())), &[]).is_err());
    }

    #[test]
    #[allow(deprecated, reason = "the deprecated field is what this test is about")]
    fn deprecated_path_form() {
        let mut p = LinuxContainerSecurityContext { seccomp_profile_path: "runtime/default".into(), ..Default::default() };
        assert!(profile(Some(&p), &[]).unwrap().is_some());
        p.seccomp_profile_path = "bogus".into();
        assert!(profile(Some(&p), &[]).is_err());
    }
}
