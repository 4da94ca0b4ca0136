//! Kubernetes resource quantities (`500m`, `0.25`, `64Mi`, `1G`, `1e3`) as CPU millicores and bytes.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::{Error, Result};

/// Parses a CPU quantity into millicores (rounded up, as kubelet's `MilliValue`).
pub fn cpu_millis(q: &str) -> Result<i64> {
    let bad = || Error::Quantity(q.to_string());
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<i64>().map_err(|_| bad());
    }
    if let Some(u) = q.strip_suffix('u') {
        return u
            .parse::<f64>()
            .map(|v| (v / 1000.0).ceil() as i64)
            .map_err(|_| bad());
    }
    if let Some(n) = q.strip_suffix('n') {
        return n
            .parse::<f64>()
            .map(|v| (v / 1e6).ceil() as i64)
            .map_err(|_| bad());
    }
    let cores = scaled(q).ok_or_else(bad)?;
    Ok((cores * 1000.0).ceil() as i64)
}

/// Parses a memory (or any integer) quantity into bytes, rounded up.
pub fn bytes(q: &str) -> Result<i64> {
    Ok(scaled(q.trim())
        .ok_or_else(|| Error::Quantity(q.to_string()))?
        .ceil() as i64)
}

fn scaled(q: &str) -> Option<f64> {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * mult)
}

/// A CPU amount in millicores as a quantity (`250m`, `2`).
pub fn cpu_quantity(millis: i64) -> Quantity {
    Quantity(if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    })
}

/// Bytes as a quantity, in `Ki` when exact (as kubelet reports node memory).
pub fn bytes_quantity(b: i64) -> Quantity {
    Quantity(if b % 1024 == 0 && b != 0 {
        format!("{}Ki", b / 1024)
    } else {
        b.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(cpu_millis("500m").unwrap(), 500);
        assert_eq!(cpu_millis("1").unwrap(), 1000);
        assert_eq!(cpu_millis("0.25").unwrap(), 250);
        assert_eq!(cpu_millis("100000u").unwrap(), 100);
        assert!(cpu_millis("lots").is_err());
        assert_eq!(cpu_quantity(250).0, "250m");
        assert_eq!(cpu_quantity(2000).0, "2");
    }

    #[test]
    fn memory() {
        assert_eq!(bytes("64Mi").unwrap(), 64 << 20);
        assert_eq!(bytes("1G").unwrap(), 1_000_000_000);
        assert_eq!(bytes("1.5Ki").unwrap(), 1536);
        assert_eq!(bytes("123").unwrap(), 123);
        assert_eq!(bytes("1e3").unwrap(), 1000);
        assert!(bytes("12Q").is_err());
        assert!(bytes("Mi").is_err());
        assert_eq!(bytes_quantity(2048).0, "2Ki");
    }
}
