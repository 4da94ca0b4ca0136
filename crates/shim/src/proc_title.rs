//! Names a forked shim for `ps` and `top`: a shim forked from the zygote still carries the
//! daemon's command line, which would make operators think a daemon runs per pod.
//! Sets the thread name (`comm`, 15 bytes) and, in place, as much of the argv area as fits —
//! the technique nginx and PostgreSQL use.

/// Best effort: a failure leaves the old title.
pub(crate) fn set(title: &str) {
    set_thread_name(title);
    let Some((start, end)) = argv_area() else { return };
    let len = end.saturating_sub(start);
    if len < 2 {
        return;
    }
    let mut bytes = title.as_bytes()[..title.len().min(len - 1)].to_vec();
    bytes.resize(len, 0);
    // SAFETY: [arg_start, arg_end) is this process's own argv strings, writable stack memory the
    // kernel reports in /proc/self/stat; nothing in the shim reads its arguments after this.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), start as *mut u8, len);
    }
}

/// Names the calling thread (`comm`: the first 15 bytes), as `ps` and `/proc/PID/task/*/comm`
/// show it. Best effort.
pub(crate) fn set_thread_name(name: &str) {
    if let Ok(name) = std::ffi::CString::new(&name.as_bytes()[..name.len().min(15)]) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, name.as_ptr());
        }
    }
}

/// `arg_start` and `arg_end`, read once per address space: the zygote reads them when it names
/// itself, and the shims it forks inherit the answer with the memory it describes (reading
/// /proc/self/stat in every shim was ≈ 6 % of a shim's CPU time).
fn argv_area() -> Option<(usize, usize)> {
    static AREA: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *AREA.get_or_init(read_argv_area)
}

/// `arg_start` and `arg_end` (fields 48 and 49 of /proc/self/stat).
fn read_argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(45)?.parse().ok()?, fields.get(46)?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_argv_area() {
        let (start, end) = super::argv_area().expect("argv area");
        assert!(end > start);
    }
}
