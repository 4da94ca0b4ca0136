//! `kubectl get pods` columns for a pod: READY, STATUS (kubectl's `printPod` rules: `Init:1/2`,
//! `CrashLoopBackOff`, `Completed`, `OutOfcpu`…), RESTARTS with the last one's age, and AGE in
//! kubectl's short duration format.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// One row: NAME, READY, STATUS, RESTARTS, AGE.
pub fn row(pod: &Pod, now: Timestamp) -> [String; 5] {
    let status = pod.status.clone().unwrap_or_default();
    let total = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let mut reason = status
        .reason
        .clone()
        .or(status.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let mut restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut ready = 0;
    let mut note_restart = |c: &k8s_openapi::api::core::v1::ContainerStatus, restarts: &mut i32| {
        *restarts += c.restart_count;
        if let Some(t) = c
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
        {
            last_restart = Some(last_restart.map_or(t.0, |l| l.max(t.0)));
        }
    };
    let mut initializing = false;
    let inits = status.init_container_statuses.clone().unwrap_or_default();
    let n_init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .map_or(0, Vec::len);
    for (i, c) in inits.iter().enumerate() {
        note_restart(c, &mut restarts);
        let st = c.state.clone().unwrap_or_default();
        match (&st.terminated, &st.waiting) {
            (Some(t), _) if t.exit_code == 0 => continue,
            (Some(t), _) => {
                reason = match &t.reason {
                    Some(r) if !r.is_empty() => format!("Init:{r}"),
                    _ => format!("Init:ExitCode:{}", t.exit_code),
                };
            }
            (None, Some(w))
                if w.reason
                    .as_deref()
                    .is_some_and(|r| !r.is_empty() && r != "PodInitializing") =>
            {
                reason = format!("Init:{}", w.reason.clone().unwrap_or_default());
            }
            _ => reason = format!("Init:{i}/{n_init}"),
        }
        initializing = true;
        break;
    }
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        for c in status.container_statuses.iter().flatten().rev() {
            note_restart(c, &mut restarts);
            let st = c.state.clone().unwrap_or_default();
            if let Some(r) = st
                .waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .filter(|r| !r.is_empty())
            {
                reason = r;
            } else if let Some(t) = &st.terminated {
                reason = match &t.reason {
                    Some(r) if !r.is_empty() => r.clone(),
                    _ => format!("ExitCode:{}", t.exit_code),
                };
            } else if c.ready && st.running.is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let cond_ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if cond_ready { "Running" } else { "NotReady" }.into();
        }
    }
    if pod.metadata.deletion_timestamp.is_some()
        && !matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
    {
        reason = "Terminating".into();
    }
    let restarts = match last_restart {
        Some(t) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human(now.duration_since(t).as_secs())
        ),
        _ => restarts.to_string(),
    };
    let born = status.start_time.as_ref().map(|t| t.0).or(pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0));
    let age = born.map_or("<unknown>".into(), |b| {
        human(now.duration_since(b).as_secs())
    });
    [
        pod.metadata.name.clone().unwrap_or_default(),
        format!("{ready}/{total}"),
        reason,
        restarts,
        age,
    ]
}

/// kubectl's `HumanDuration` (short form).
pub fn human(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10800 => format!("{}m", s / 60),
        10800..172800 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if h < 8 && m > 0 {
                format!("{h}h{m}m")
            } else {
                format!("{h}h")
            }
        }
        _ => {
            let (d, h) = (s / 86400, (s % 86400) / 3600);
            if d < 8 && h > 0 {
                format!("{d}d{h}h")
            } else {
                format!("{d}d")
            }
        }
    }
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_like_kubectl() {
        let now: Timestamp = "2024-01-01T00:10:00Z".parse().unwrap();
        let pod: Pod = serde_yaml::from_str(concat!(
            "metadata: {name: web}\n",
            "spec: {containers: [{name: a, image: x}, {name: b, image: x}]}\n",
            "status:\n  phase: Running\n  startTime: '2024-01-01T00:00:00Z'\n",
            "  containerStatuses:\n",
            "  - {name: a, image: x, imageID: '', ready: true, restartCount: 0, state: {running: {}}}\n",
            "  - name: b\n    image: x\n    imageID: ''\n    ready: false\n    restartCount: 3\n",
            "    state: {waiting: {reason: CrashLoopBackOff}}\n",
            "    lastState: {terminated: {exitCode: 1, finishedAt: '2024-01-01T00:09:50Z'}}\n",
        ))
        .unwrap();
        assert_eq!(
            row(&pod, now),
            ["web", "1/2", "CrashLoopBackOff", "3 (10s ago)", "10m"].map(String::from)
        );
        assert_eq!(human(59), "59s");
        assert_eq!(human(150), "2m30s");
        assert_eq!(human(3 * 3600 + 60), "3h1m");
        let t = render(&["NAME", "AGE"], &[vec!["a-long-name".into(), "1s".into()]]);
        assert_eq!(t, "NAME          AGE\na-long-name   1s\n");
    }
}
