//! ListContainers with its filters (id or prefix, state, sandbox, label selector).

use k8s_cri::v1::{ListContainersRequest, ListContainersResponse};

use crate::filter::{id_matches, labels_match};
use crate::{Error, Runtime, convert};

impl Runtime {
    pub async fn list_containers(&self, req: ListContainersRequest) -> Result<ListContainersResponse, Error> {
        let filter = req.filter.unwrap_or_default();
        let mut containers: Vec<_> = self
            .containers
            .matching(|c| {
                id_matches(&filter.id, &c.id)
                    && id_matches(&filter.pod_sandbox_id, &c.sandbox_id)
                    && filter.state.as_ref().is_none_or(|st| st.state == c.state.to_cri())
                    && labels_match(&filter.label_selector, &c.config.labels)
            })
            .iter()
            .map(convert::container)
            .collect();
        containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        Ok(ListContainersResponse { containers })
    }
}
