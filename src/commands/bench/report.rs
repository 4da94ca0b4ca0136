//! Cold-start samples and the text tables made of them: p50/p90/p99/max per phase for one
//! endpoint, and the ratio table (second endpoint / first, per phase, at p50 and p99).

/// One pod's phases, in microseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Sample {
    pub run_pod_sandbox: f64,
    pub create_container: f64,
    pub start_container: f64,
    pub first_log_line: f64,
    /// RunPodSandbox sent → first log line seen.
    pub total: f64,
    /// StopPodSandbox + RemovePodSandbox (not part of the cold start; counts in throughput).
    pub teardown: f64,
}

/// Reads one phase of a sample.
pub(crate) type Phase = fn(&Sample) -> f64;

/// Phase names as printed, with their accessor.
pub(crate) const PHASES: [(&str, Phase); 5] = [
    ("RunPodSandbox", |s| s.run_pod_sandbox),
    ("CreateContainer", |s| s.create_container),
    ("StartContainer", |s| s.start_container),
    ("first log line", |s| s.first_log_line),
    ("total", |s| s.total),
];

/// The values of one phase, sorted.
pub(crate) fn sorted(samples: &[Sample], f: Phase) -> Vec<f64> {
    let mut v: Vec<f64> = samples.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank quantile of sorted values (`p` in 0..=1); NaN when empty.
pub(crate) fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Per-phase quantiles, printed as a table headed by `title`.
pub(crate) fn print_table(title: &str, samples: &[Sample]) {
    println!("{title}");
    println!("{:<16} {:>10} {:>10} {:>10} {:>10}   (µs, {} pods)", "phase", "p50", "p90", "p99", "max", samples.len());
    for (name, f) in PHASES {
        let v = sorted(samples, f);
        let q = |p| quantile(&v, p);
        println!("{:<16} {:>10.0} {:>10.0} {:>10.0} {:>10.0}", name, q(0.5), q(0.9), q(0.99), q(1.0));
    }
}

/// Pod lifecycles per second from the per-pod times (start through teardown) and the
/// concurrency: the rate one endpoint sustained while interleaved with another.
pub(crate) fn lifecycle_rate(samples: &[Sample], concurrency: usize) -> f64 {
    let busy_s: f64 = samples.iter().map(|s| (s.total + s.teardown) / 1e6).sum();
    samples.len() as f64 * concurrency as f64 / busy_s
}

/// `second / first` for each phase at p50 and p99.
pub(crate) fn print_ratios(first: &str, second: &str, a: &[Sample], b: &[Sample]) {
    println!("ratio: time on {second} ÷ time on {first} (>1: {first} is faster)");
    println!("{:<16} {:>10} {:>10}", "phase", "p50", "p99");
    for (name, f) in PHASES {
        let (va, vb) = (sorted(a, f), sorted(b, f));
        let r = |p| ratio(quantile(&vb, p) / quantile(&va, p));
        println!("{:<16} {:>10} {:>10}", name, r(0.5), r(0.99));
    }
}

/// `12.3×`, or with more digits below 1 (a phase the second endpoint folds into another).
fn ratio(r: f64) -> String {
    if r < 1.0 { format!("{r:.3}×") } else { format!("{r:.1}×") }
}

/// The ratios as JSON: `{phase: {"p50": r, "p99": r}}`.
pub(crate) fn ratios_json(a: &[Sample], b: &[Sample]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (name, f) in PHASES {
        let (va, vb) = (sorted(a, f), sorted(b, f));
        let r = |p| quantile(&vb, p) / quantile(&va, p);
        m.insert(name.into(), serde_json::json!({ "p50": r(0.5), "p99": r(0.99) }));
    }
    m.into()
}

/// Quantiles per phase as JSON: `{phase: {"p50": µs, "p90", "p99", "max"}}`.
pub(crate) fn summary_json(samples: &[Sample]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for (name, f) in PHASES {
        let v = sorted(samples, f);
        let q = |p| quantile(&v, p);
        m.insert(name.into(), serde_json::json!({ "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": q(1.0) }));
    }
    m.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 51.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
