//! ListPodSandbox with its filters (id or id prefix, state, label selector).

use k8s_cri::v1::{ListPodSandboxRequest, ListPodSandboxResponse};

use crate::filter::{id_matches, labels_match};
use crate::{Error, Runtime, convert};

impl Runtime {
    pub async fn list_pod_sandbox(&self, req: ListPodSandboxRequest) -> Result<ListPodSandboxResponse, Error> {
        let filter = req.filter.unwrap_or_default();
        let mut items: Vec<_> = self
            .sandboxes
            .matching(|s| {
                id_matches(&filter.id, &s.id)
                    && filter.state.as_ref().is_none_or(|st| st.state == s.state.to_cri())
                    && labels_match(&filter.label_selector, &s.config.labels)
            })
            .iter()
            .map(convert::sandbox)
            .collect();
        items.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(ListPodSandboxResponse { items })
    }
}
