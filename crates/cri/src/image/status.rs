//! ImageStatus: the image, or no image (not an error) when it is not present.

use std::collections::HashMap;

use k8s_cri::v1::{ImageStatusRequest, ImageStatusResponse};

use crate::service::require;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn image_status(&self, req: ImageStatusRequest) -> Result<ImageStatusResponse, Error> {
        let reference = req.image.map(|i| i.image).unwrap_or_default();
        require(&reference, "image.image")?;
        let found = self.with_images(move |store| store.resolve(&reference)).await?;
        let mut info = HashMap::new();
        if req.verbose
            && let Some(image) = &found
        {
            info.insert("info".into(), serde_json::to_string(image).unwrap_or_default());
        }
        Ok(ImageStatusResponse { image: found.as_ref().map(super::to_cri), info })
    }
}
