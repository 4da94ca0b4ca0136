//! The labels and annotations put on sandboxes and containers: kubelet's own keys (so crictl and
//! other tools show our pods as kubelet's), plus one marker so that `wasmlet node` adopts and
//! cleans up only the sandboxes it made.

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Marks a sandbox as made by a `wasmlet node` agent; the value is the agent's node name.
pub const MANAGED_BY: &str = "node.wasmlet.io/managed-by";
/// Annotation: the container's restart count (kubelet's key).
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Annotation: hash of the container's spec, to restart containers whose spec changed.
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
/// Annotation: the pod's termination grace period (kubelet's key).
pub const GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Annotation: "init" for init containers.
pub const CONTAINER_KIND: &str = "node.wasmlet.io/container-kind";
