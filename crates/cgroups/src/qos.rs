//! Kubernetes QoS classes and `oom_score_adj`, computed exactly as upstream does:
//! `pkg/apis/core/v1/helper/qos/qos.go` (`ComputePodQOS`) and `pkg/kubelet/qos/policy.go`
//! (`GetContainerOOMScoreAdjust`). Pure functions over plain numbers.

use crate::{Error, Result};

/// A pod's QoS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// CPU (milli-cores) and memory (bytes) of a request or limit list; `None` = key absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceList {
    pub cpu_millis: Option<i64>,
    pub memory_bytes: Option<i64>,
}

/// A container's (or, with pod-level resources, a pod's) requests and limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceRequirements {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

impl ResourceRequirements {
    /// The API server's defaulting: a request that is absent takes the limit's value.
    /// (An explicit request of 0 stays 0.)
    pub fn with_api_defaults(mut self) -> Self {
        self.requests.cpu_millis = self.requests.cpu_millis.or(self.limits.cpu_millis);
        self.requests.memory_bytes = self.requests.memory_bytes.or(self.limits.memory_bytes);
        self
    }

    /// `resourceQOS` in qos.go: the class of one set of requirements.
    fn qos(&self) -> QosClass {
        let d = self.with_api_defaults();
        let pairs = [
            (d.requests.cpu_millis, d.limits.cpu_millis),
            (d.requests.memory_bytes, d.limits.memory_bytes),
        ];
        let mut class = None;
        for (req, lim) in pairs {
            let (req, lim) = (req.unwrap_or(0), lim.unwrap_or(0));
            if req != lim {
                return QosClass::Burstable;
            }
            let this = if req == 0 {
                QosClass::BestEffort
            } else {
                QosClass::Guaranteed
            };
            match class {
                None => class = Some(this),
                Some(c) if c != this => return QosClass::Burstable,
                Some(_) => {}
            }
        }
        class.unwrap_or(QosClass::BestEffort)
    }
}

/// `ComputePodQOS`: pass every container, init containers included. When pod-level resources are
/// given (the `PodLevelResources` feature), they alone decide. No containers at all → BestEffort.
pub fn pod_qos<'a>(
    containers: impl IntoIterator<Item = &'a ResourceRequirements>,
    pod_level: Option<&ResourceRequirements>,
) -> QosClass {
    if let Some(p) = pod_level {
        return p.qos();
    }
    let mut pod = None;
    for c in containers {
        match (c.qos(), pod) {
            (QosClass::Burstable, _) => return QosClass::Burstable,
            (q, None) => pod = Some(q),
            (q, Some(p)) if q != p => return QosClass::Burstable,
            _ => {}
        }
    }
    pod.unwrap_or(QosClass::BestEffort)
}

/// kubelet's `guaranteedOOMScoreAdj`.
pub const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
/// kubelet's `besteffortOOMScoreAdj`.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;
/// The scheduler's `DefaultMemoryRequest` (200 MiB), used for a missing request in the sidecar rule.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Inputs of `GetContainerOOMScoreAdjust` for one container.
#[derive(Debug, Clone, Copy)]
pub struct OomScoreInput<'a> {
    pub qos: QosClass,
    /// `IsNodeCriticalPod`: a critical pod (static, mirror, or priority ≥ 2e9) whose priority
    /// class is `system-node-critical`.
    pub node_critical: bool,
    /// The container's memory request (after API defaulting; the allocated value with in-place resize).
    pub memory_request: Option<i64>,
    /// `Some(memory requests of the pod's regular containers)` iff this container is a sidecar
    /// (an init container with `restartPolicy: Always`).
    pub sidecar_of: Option<&'a [Option<i64>]>,
    /// The node's memory capacity in bytes.
    pub memory_capacity: i64,
}

/// `GetContainerOOMScoreAdjust`. Corner cases kept exactly as kubelet has them:
/// Burstable never goes below `1000 + (-997) = 3` (not 2), a computed 1000 becomes 999, and a
/// sidecar whose own request is the pod's smallest gets +1 *after* the 1000 → 999 check could have
/// applied — so kubelet can return **1001**, which the kernel rejects (`EINVAL`). Callers that
/// write the value should clamp to 1000; this function does not, to stay a faithful copy.
pub fn oom_score_adj(input: &OomScoreInput<'_>) -> Result<i64> {
    if input.memory_capacity <= 0 {
        return Err(Error::invalid(
            "memory_capacity",
            input.memory_capacity,
            "must be positive",
        ));
    }
    if input.node_critical {
        return Ok(GUARANTEED_OOM_SCORE_ADJ);
    }
    match input.qos {
        QosClass::Guaranteed => return Ok(GUARANTEED_OOM_SCORE_ADJ),
        QosClass::BestEffort => return Ok(BEST_EFFORT_OOM_SCORE_ADJ),
        QosClass::Burstable => {}
    }
    // Go's int64 arithmetic, without its overflow: i128 cannot overflow for any i64 inputs.
    let cap = i128::from(input.memory_capacity);
    let adj_for = |request: i64| (1000 - (1000 * i128::from(request)) / cap) as i64;
    let own = input.memory_request.unwrap_or(0);
    let mut adj = adj_for(own);
    if let Some(regular) = input.sidecar_of {
        let with_default = |r: Option<i64>| r.unwrap_or(DEFAULT_MEMORY_REQUEST);
        let min_regular = regular.iter().map(|r| with_default(*r)).min();
        let min = min_regular.map_or(with_default(input.memory_request), |m| {
            m.min(with_default(input.memory_request))
        });
        adj = adj_for(min);
        if min <= own {
            adj += 1;
        }
    }
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        return Ok(1000 + GUARANTEED_OOM_SCORE_ADJ);
    }
    if adj == BEST_EFFORT_OOM_SCORE_ADJ {
        return Ok(adj - 1);
    }
    Ok(adj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use QosClass::*;

    const GI: i64 = 1 << 30;
    const MI: i64 = 1 << 20;

    fn rr(
        req: (Option<i64>, Option<i64>),
        lim: (Option<i64>, Option<i64>),
    ) -> ResourceRequirements {
        ResourceRequirements {
            requests: ResourceList {
                cpu_millis: req.0,
                memory_bytes: req.1,
            },
            limits: ResourceList {
                cpu_millis: lim.0,
                memory_bytes: lim.1,
            },
        }
    }

    #[test]
    fn pod_qos_table() {
        let none = rr((None, None), (None, None));
        let guaranteed = rr((Some(500), Some(GI)), (Some(500), Some(GI)));
        let limits_only = rr((None, None), (Some(500), Some(GI)));
        let cpu_only = rr((Some(500), None), (Some(500), None));
        let unequal = rr((Some(100), Some(GI)), (Some(500), Some(GI)));
        let req_only = rr((Some(100), None), (None, None));
        let zero_req = rr((Some(0), Some(0)), (Some(500), Some(GI)));
        let explicit_zero = rr((Some(0), Some(0)), (Some(0), Some(0)));
        let table: &[(&str, &[ResourceRequirements], QosClass)] = &[
            ("no containers", &[], BestEffort),
            ("nothing set", &[none, none], BestEffort),
            (
                "explicit zeros count as unset",
                &[explicit_zero],
                BestEffort,
            ),
            (
                "requests equal limits",
                &[guaranteed, guaranteed],
                Guaranteed,
            ),
            ("requests default to limits", &[limits_only], Guaranteed),
            ("cpu only is not enough", &[cpu_only], Burstable),
            ("request below limit", &[unequal], Burstable),
            ("request without limit", &[req_only], Burstable),
            (
                "explicit zero request is not defaulted",
                &[zero_req],
                Burstable,
            ),
            (
                "one guaranteed, one best-effort",
                &[guaranteed, none],
                Burstable,
            ),
            (
                "init container best-effort spoils guaranteed",
                &[none, guaranteed],
                Burstable,
            ),
            (
                "memory only",
                &[rr((None, Some(GI)), (None, Some(GI)))],
                Burstable,
            ),
        ];
        for (name, containers, want) in table {
            assert_eq!(pod_qos(containers.iter(), None), *want, "{name}");
        }
        // Pod-level resources override the containers.
        assert_eq!(pod_qos([none].iter(), Some(&limits_only)), Guaranteed);
        assert_eq!(pod_qos([guaranteed].iter(), Some(&none)), BestEffort);
    }

    fn input(qos: QosClass, request: Option<i64>, capacity: i64) -> OomScoreInput<'static> {
        OomScoreInput {
            qos,
            node_critical: false,
            memory_request: request,
            sidecar_of: None,
            memory_capacity: capacity,
        }
    }

    /// A round capacity so the expected values are easy to check by hand.
    const CAP: i64 = 4_000_000_000;
    const G: i64 = 1_000_000_000;

    #[test]
    fn oom_score_adj_table() {
        let table: &[(&str, OomScoreInput<'_>, i64)] = &[
            ("guaranteed", input(Guaranteed, Some(G), CAP), -997),
            ("best effort", input(BestEffort, None, CAP), 1000),
            (
                "node critical burstable",
                OomScoreInput {
                    node_critical: true,
                    ..input(Burstable, None, CAP)
                },
                -997,
            ),
            (
                "node critical best effort",
                OomScoreInput {
                    node_critical: true,
                    ..input(BestEffort, None, CAP)
                },
                -997,
            ),
            (
                "burstable 1/4 of memory",
                input(Burstable, Some(G), CAP),
                750,
            ),
            ("burstable 10%", input(Burstable, Some(CAP / 10), CAP), 900),
            (
                "integer division truncates",
                input(Burstable, Some(CAP / 3), CAP),
                667,
            ),
            (
                "no request -> 1000 -> 999",
                input(Burstable, None, CAP),
                999,
            ),
            (
                "tiny request -> 1000 -> 999",
                input(Burstable, Some(1), CAP),
                999,
            ),
            (
                "whole node -> 0 -> 3, not 2",
                input(Burstable, Some(CAP), CAP),
                3,
            ),
            (
                "more than the node -> negative -> 3",
                input(Burstable, Some(2 * CAP), CAP),
                3,
            ),
            (
                "99.8% -> 2 -> 3",
                input(Burstable, Some(CAP / 1000 * 998), CAP),
                3,
            ),
            (
                "99.7% -> 3",
                input(Burstable, Some(CAP / 1000 * 997), CAP),
                3,
            ),
            (
                "99.6% -> 4",
                input(Burstable, Some(CAP / 1000 * 996), CAP),
                4,
            ),
            ("1 GiB of 4 GiB", input(Burstable, Some(GI), 4 * GI), 750),
        ];
        for (name, i, want) in table {
            assert_eq!(oom_score_adj(i).unwrap(), *want, "{name}");
        }
        assert!(oom_score_adj(&input(Burstable, None, 0)).is_err());
    }

    /// The sidecar rule of kubernetes PR #128029 (restartable init containers): the score of the
    /// smallest request among the sidecar and the regular containers, +1 whenever that minimum is
    /// not above the sidecar's own request — which is always, unless its request is absent.
    #[test]
    fn sidecar_oom_score_adj_table() {
        let sidecar = |own: Option<i64>, regular: &'static [Option<i64>]| OomScoreInput {
            sidecar_of: Some(regular),
            ..input(Burstable, own, CAP)
        };
        let table: &[(&str, OomScoreInput<'_>, i64)] = &[
            ("smallest sidecar", sidecar(Some(G), &[Some(2 * G)]), 751),
            (
                "bigger sidecar takes the smallest regular's score + 1",
                sidecar(Some(2 * G), &[Some(G), Some(3 * G)]),
                751,
            ),
            ("equal", sidecar(Some(G), &[Some(G)]), 751),
            // Missing requests count as 200 MiB (1000*209715200/4e9 = 52).
            ("missing regular request", sidecar(Some(G), &[None]), 949),
            // The sidecar's own missing request compares as 0, so no +1.
            ("missing own request", sidecar(None, &[Some(G)]), 948),
            // Kubelet's corner: min/capacity < 1/1000 gives 1000 + 1 = 1001 (not 999).
            ("kubelet returns 1001", sidecar(Some(MI), &[Some(G)]), 1001),
        ];
        for (name, i, want) in table {
            assert_eq!(oom_score_adj(i).unwrap(), *want, "{name}");
        }
    }
}
