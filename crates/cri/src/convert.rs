//! Records to CRI messages.

use k8s_cri::v1 as cri;

use crate::store::{ContainerRecord, SandboxRecord, SandboxState};

impl SandboxState {
    pub(crate) fn to_cri(self) -> i32 {
        match self {
            SandboxState::Ready => cri::PodSandboxState::SandboxReady as i32,
            SandboxState::NotReady => cri::PodSandboxState::SandboxNotready as i32,
        }
    }
}

pub(crate) fn sandbox(s: &SandboxRecord) -> cri::PodSandbox {
    cri::PodSandbox {
        id: s.id.clone(),
        metadata: s.config.metadata.clone(),
        state: s.state.to_cri(),
        created_at: s.created_at,
        labels: s.config.labels.clone(),
        annotations: s.config.annotations.clone(),
        runtime_handler: s.runtime_handler.clone(),
    }
}

fn image_spec(c: &ContainerRecord) -> cri::ImageSpec {
    let requested = c.config.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
    cri::ImageSpec {
        // As containerd: the image's first tag when it has one, else what was asked for.
        image: if c.image_tag.is_empty() { requested.clone() } else { c.image_tag.clone() },
        user_specified_image: c.config.image.as_ref().map(|i| i.user_specified_image.clone()).unwrap_or(requested),
        annotations: c.config.image.as_ref().map(|i| i.annotations.clone()).unwrap_or_default(),
        runtime_handler: String::new(),
    }
}

pub(crate) fn container(c: &ContainerRecord) -> cri::Container {
    cri::Container {
        id: c.id.clone(),
        pod_sandbox_id: c.sandbox_id.clone(),
        metadata: c.config.metadata.clone(),
        image: Some(image_spec(c)),
        image_ref: c.image_ref.clone(),
        state: c.state.to_cri(),
        created_at: c.created_at,
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        image_id: c.image_id.clone(),
    }
}

pub(crate) fn container_status(c: &ContainerRecord) -> cri::ContainerStatus {
    cri::ContainerStatus {
        id: c.id.clone(),
        metadata: c.config.metadata.clone(),
        state: c.state.to_cri(),
        created_at: c.created_at,
        started_at: c.started_at,
        finished_at: c.finished_at,
        exit_code: c.exit_code,
        image: Some(image_spec(c)),
        image_ref: c.image_ref.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        mounts: c.config.mounts.clone(),
        log_path: c.log_path.clone(),
        resources: c.config.linux.as_ref().and_then(|l| l.resources.clone()).map(|r| cri::ContainerResources {
            linux: Some(r),
            windows: None,
        }),
        image_id: c.image_id.clone(),
        user: None,
    }
}
