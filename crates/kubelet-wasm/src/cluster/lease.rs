//! The node's Lease in `kube-node-lease` (kubelet's heartbeat): created with the node as owner,
//! then its `renewTime` renewed every 10 s; `leaseDurationSeconds` 40, as kubelet.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use crate::Result;

pub const NAMESPACE: &str = "kube-node-lease";
pub const DURATION_SECONDS: i32 = 40;

fn lease(node: &str, node_uid: Option<&str>) -> Lease {
    Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(node.into()),
            namespace: Some(NAMESPACE.into()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.into(),
                    uid: uid.into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.into()),
            lease_duration_seconds: Some(DURATION_SECONDS),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..Default::default()
        }),
    }
}

/// Creates or renews the lease.
pub async fn renew(leases: &Api<Lease>, node: &str, node_uid: Option<&str>) -> Result<()> {
    match leases.get_opt(node).await? {
        None => {
            leases
                .create(&PostParams::default(), &lease(node, node_uid))
                .await?;
        }
        Some(mut existing) => {
            let spec = existing.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some(node.into());
            spec.lease_duration_seconds = Some(DURATION_SECONDS);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            leases
                .replace(node, &PostParams::default(), &existing)
                .await?;
        }
    }
    Ok(())
}
