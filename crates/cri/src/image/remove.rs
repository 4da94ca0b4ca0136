//! RemoveImage by id, tag or digest. Idempotent: an absent image is success.

use k8s_cri::v1::{RemoveImageRequest, RemoveImageResponse};

use crate::service::require;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn remove_image(&self, req: RemoveImageRequest) -> Result<RemoveImageResponse, Error> {
        let reference = req.image.map(|i| i.image).unwrap_or_default();
        require(&reference, "image.image")?;
        let removed = self.with_images(move |store| store.remove(&reference)).await?;
        if let Some(image) = removed {
            tracing::info!(image.id = %image.id, "image removed");
        }
        Ok(RemoveImageResponse {})
    }
}
