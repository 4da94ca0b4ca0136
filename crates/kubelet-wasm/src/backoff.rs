//! kubelet's restart and image-pull back-off (`k8s.io/client-go/util/flowcontrol.Backoff`, used by
//! `doBackOff` in `kuberuntime_manager.go`): per key, the first failure restarts at once; a failure
//! within the current back-off waits it out, and each restart doubles it (10 s → 5 min by
//! default). An entry untouched for twice the maximum (10 min) expires, so a container that ran
//! that long starts over at the base.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

/// Back-off settings (kubelet: 10 s and 300 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    pub base: Duration,
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    backoff: Duration,
    last_update: SystemTime,
}

/// Back-off entries by key (a container name, an image).
#[derive(Debug)]
pub struct Backoff {
    config: BackoffConfig,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, event: SystemTime, last_update: SystemTime) -> bool {
        event.duration_since(last_update).unwrap_or_default() > self.config.max * 2
    }

    /// `IsInBackOffSince`: how long is still left to wait, counting from `event` (the failure's
    /// time), or `None` when a restart may happen now.
    pub fn remaining(&self, key: &str, event: SystemTime, now: SystemTime) -> Option<Duration> {
        let e = self.entries.get(key)?;
        if self.expired(now, e.last_update) {
            return None;
        }
        let waited = now.duration_since(event).unwrap_or_default();
        (waited < e.backoff).then(|| e.backoff - waited)
    }

    /// The current back-off of `key` (for messages).
    pub fn current(&self, key: &str) -> Duration {
        self.entries
            .get(key)
            .map_or(self.config.base, |e| e.backoff)
    }

    /// `Next`: records a restart after the failure at `event`, doubling the back-off.
    pub fn next(&mut self, key: &str, event: SystemTime) {
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(event, e.last_update) => (e.backoff * 2).min(self.config.max),
            _ => self.config.base,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: event,
            },
        );
    }

    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_to_the_maximum_and_resets_after_twice_the_maximum() {
        let mut b = Backoff::new(BackoffConfig::default());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // First failure: no entry, restart at once.
        assert_eq!(b.remaining("c", t0, t0), None);
        b.next("c", t0);
        // Second failure 1 s later: wait 10 s from it.
        let t1 = t0 + S;
        assert_eq!(b.remaining("c", t1, t1 + 3 * S), Some(7 * S));
        assert_eq!(b.remaining("c", t1, t1 + 10 * S), None);
        let mut t = t1 + 10 * S;
        let mut seen = vec![];
        for _ in 0..7 {
            b.next("c", t);
            seen.push(b.current("c").as_secs());
            t += S;
        }
        assert_eq!(seen, [20, 40, 80, 160, 300, 300, 300]);
        // Ten minutes (2 × max) of running: the next failure starts over.
        let late = t + 601 * S;
        assert_eq!(b.remaining("c", late, late), None);
        b.next("c", late);
        assert_eq!(b.current("c"), 10 * S);
    }
}
