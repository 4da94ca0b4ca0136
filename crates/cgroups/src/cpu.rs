//! CPU unit conversions: kubelet's milli-CPU helpers (`pkg/kubelet/cm/helpers_linux.go`) and the
//! v1 `cpu.shares` → v2 `cpu.weight` mapping, in both the linear form (kubelet's `getCPUWeight`,
//! runc < 1.3.2) and the quadratic form (runc ≥ 1.3.2, crun ≥ 1.23, youki's libcgroups 0.7).

/// Kernel minimum of `cpu.shares`.
pub const MIN_SHARES: u64 = 2;
/// Kernel maximum of `cpu.shares` (`1 << 18`).
pub const MAX_SHARES: u64 = 262_144;
/// `cpu.shares` per CPU.
pub const SHARES_PER_CPU: i64 = 1024;
/// Milli-CPUs per CPU.
pub const MILLI_CPU_TO_CPU: i64 = 1000;
/// Default CFS period, µs.
pub const QUOTA_PERIOD_US: i64 = 100_000;
/// Kernel minimum of a CFS quota and of a period, µs.
pub const MIN_QUOTA_PERIOD_US: i64 = 1_000;
/// Kernel maximum of a CFS period, µs (1 s).
pub const MAX_PERIOD_US: i64 = 1_000_000;
/// Maximum of v2 `cpu.weight`.
pub const MAX_WEIGHT: u64 = 10_000;

/// kubelet's `MilliCPUToShares`: 0 → 2 (the kernel minimum, not the unset default 1024), clamped
/// to [2, 262144].
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu == 0 {
        return MIN_SHARES;
    }
    let shares = milli_cpu.saturating_mul(SHARES_PER_CPU) / MILLI_CPU_TO_CPU;
    shares.clamp(MIN_SHARES as i64, MAX_SHARES as i64) as u64
}

/// kubelet's `MilliCPUToQuota`: 0 → 0 (no limit), else `milli * period / 1000`, at least 1000 µs.
pub fn milli_cpu_to_quota(milli_cpu: i64, period_us: i64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(period_us) / MILLI_CPU_TO_CPU).max(MIN_QUOTA_PERIOD_US)
}

/// Which shares → weight mapping to use on v2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CpuWeightFormula {
    /// `1 + ((shares - 2) * 9999) / 262142`: kubelet's own pod cgroups and runc < 1.3.2.
    /// The default shares 1024 become weight 39, not the v2 default 100.
    #[default]
    Linear,
    /// `ceil(10^((L² + 125L)/612 − 7/34))`, `L = log2(shares)`: runc ≥ 1.3.2 / crun ≥ 1.23
    /// (opencontainers/cgroups#20, kubernetes#131216). Maps 2 → 1, 1024 → 100, 262144 → 10000.
    Quadratic,
}

/// Converts v1 `cpu.shares` to v2 `cpu.weight`; 0 means unset and stays 0. Values outside
/// [2, 262144] are clamped (validation rejects them before this is reached).
pub fn shares_to_weight(shares: u64, formula: CpuWeightFormula) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares >= MAX_SHARES {
        return MAX_WEIGHT;
    }
    match formula {
        CpuWeightFormula::Linear => 1 + (shares.saturating_sub(MIN_SHARES) * 9999) / 262_142,
        CpuWeightFormula::Quadratic => {
            if shares <= MIN_SHARES {
                return 1;
            }
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            (10f64.powf(exponent).ceil() as u64).clamp(1, MAX_WEIGHT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_cpu_to_shares_table() {
        for (milli, want) in [
            (0, 2),
            (1, 2), // 1024/1000 = 1 → min 2
            (2, 2),
            (3, 3),
            (100, 102),
            (250, 256),
            (500, 512),
            (1000, 1024),
            (1500, 1536),
            (256_000, 262_144),
            (300_000, 262_144), // clamped
            (-5, 2),            // clamped like kubelet (negative never reaches it)
        ] {
            assert_eq!(milli_cpu_to_shares(milli), want, "{milli}m");
        }
    }

    #[test]
    fn milli_cpu_to_quota_table() {
        for (milli, period, want) in [
            (0, 100_000, 0),
            (1, 100_000, 1_000),  // 100 µs → kernel minimum 1 ms
            (10, 100_000, 1_000), // exactly the minimum
            (11, 100_000, 1_100),
            (500, 100_000, 50_000),
            (1000, 100_000, 100_000),
            (2500, 100_000, 250_000),
            (500, 50_000, 25_000), // custom period (CPUCFSQuotaPeriod)
            (15, 50_000, 1_000),
        ] {
            assert_eq!(
                milli_cpu_to_quota(milli, period),
                want,
                "{milli}m / {period}"
            );
        }
    }

    #[test]
    fn shares_to_weight_linear_table() {
        for (shares, want) in [
            (0, 0),
            (2, 1),
            (3, 1),
            (102, 4),
            (512, 20),
            (1024, 39),
            (2048, 79),
            (262_143, 9999),
            (262_144, 10_000),
        ] {
            assert_eq!(
                shares_to_weight(shares, CpuWeightFormula::Linear),
                want,
                "{shares}"
            );
        }
    }

    #[test]
    fn shares_to_weight_quadratic_table() {
        for (shares, want) in [
            (0, 0),
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (10, 4),
            (102, 17),
            (512, 59),
            (1000, 99),
            (1024, 100),
            (1025, 101),
            (2048, 174),
            (131_072, 5478),
            (262_143, 10_000),
            (262_144, 10_000),
        ] {
            assert_eq!(
                shares_to_weight(shares, CpuWeightFormula::Quadratic),
                want,
                "{shares}"
            );
        }
    }

    /// Both mappings must be monotonic so that relative priorities survive the conversion.
    #[test]
    fn weights_are_monotonic() {
        for f in [CpuWeightFormula::Linear, CpuWeightFormula::Quadratic] {
            let mut prev = 0;
            for s in 2..=MAX_SHARES {
                let w = shares_to_weight(s, f);
                assert!(
                    w >= prev && (1..=MAX_WEIGHT).contains(&w),
                    "{f:?} {s} -> {w}"
                );
                prev = w;
            }
        }
    }
}
