//! The pods bound to the node, from the API server: listed and watched with the field selector
//! `spec.nodeName=<node>` (kubelet's apiserver pod source), their statuses patched back, and,
//! once a deleted pod's containers are stopped, the final deletion with grace period 0 and a uid
//! precondition, as kubelet's status manager does.

use futures_util::stream::{BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodStatus, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions, WatchEvent, WatchParams,
};
use serde_json::json;

use crate::objects::{Kind, Objects};
use crate::{Result, manifest};

fn selector(node: &str) -> String {
    format!("spec.nodeName={node}")
}

/// Every pod bound to `node`, and the list's resourceVersion to watch from.
pub async fn list_bound(pods: &Api<Pod>, node: &str) -> Result<(Vec<Pod>, String)> {
    let list = pods
        .list(&ListParams::default().fields(&selector(node)))
        .await?;
    Ok((
        list.items,
        list.metadata.resource_version.unwrap_or_default(),
    ))
}

/// Watches the pods bound to `node` from `resource_version`.
pub async fn watch_bound(
    pods: &Api<Pod>,
    node: &str,
    resource_version: &str,
) -> Result<BoxStream<'static, kube::Result<WatchEvent<Pod>>>> {
    let wp = WatchParams::default().fields(&selector(node)).timeout(290);
    Ok(pods.watch(&wp, resource_version).await?.boxed())
}

/// Patches a pod's status (a merge patch of `status`).
pub async fn patch_status(client: &kube::Client, pod: &Pod, status: &PodStatus) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let name = pod.metadata.name.clone().unwrap_or_default();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// The final delete of a pod whose containers are stopped: grace period 0, only this uid.
pub async fn delete_stopped(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        // Gone already, or a new pod by that name: nothing of ours to delete.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Fetches the ConfigMaps and Secrets a pod refers to (env, envFrom, volumes) into `objects`.
/// One that is missing is left out: the pod's container then waits with kubelet's
/// `CreateContainerConfigError` until it appears.
pub async fn fetch_objects(client: &kube::Client, pod: &Pod, objects: &Objects) {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut wanted: Vec<(Kind, String)> = Vec::new();
    let Some(spec) = pod.spec.as_ref() else {
        return;
    };
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            wanted.push((Kind::ConfigMap, cm.name.clone()));
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            wanted.push((Kind::Secret, s));
        }
    }
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        for e in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(k) = &e.config_map_key_ref {
                wanted.push((Kind::ConfigMap, k.name.clone()));
            }
            if let Some(k) = &e.secret_key_ref {
                wanted.push((Kind::Secret, k.name.clone()));
            }
        }
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.config_map_ref {
                wanted.push((Kind::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &f.secret_ref {
                wanted.push((Kind::Secret, r.name.clone()));
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    for (kind, name) in wanted {
        let data = match kind {
            Kind::ConfigMap => Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt(&name)
                .await
                .map(|o| o.map(|cm| manifest::data_of(&manifest::Object::ConfigMap(cm)))),
            Kind::Secret => Api::<Secret>::namespaced(client.clone(), &ns)
                .get_opt(&name)
                .await
                .map(|o| o.map(|s| manifest::data_of(&manifest::Object::Secret(s)))),
        };
        match data {
            Ok(Some(d)) => objects.put(kind, &ns, &name, d),
            Ok(None) => {
                tracing::warn!(pod = %manifest::full_name(pod), "{kind:?} {ns}/{name} not found")
            }
            Err(e) => {
                tracing::warn!(pod = %manifest::full_name(pod), "fetching {kind:?} {ns}/{name}: {e}")
            }
        }
    }
}
