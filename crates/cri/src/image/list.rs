//! ListImages, optionally filtered by an image reference.

use k8s_cri::v1::{ListImagesRequest, ListImagesResponse};

use crate::{Error, Runtime};

impl Runtime {
    pub async fn list_images(&self, req: ListImagesRequest) -> Result<ListImagesResponse, Error> {
        let wanted = req.filter.and_then(|f| f.image).map(|i| i.image).unwrap_or_default();
        let images = self
            .with_images(move |store| {
                if wanted.is_empty() {
                    store.list()
                } else {
                    Ok(store.resolve(&wanted)?.into_iter().collect())
                }
            })
            .await?;
        Ok(ListImagesResponse { images: images.iter().map(super::to_cri).collect() })
    }
}
