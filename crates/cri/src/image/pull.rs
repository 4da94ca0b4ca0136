//! PullImage. Registry pulls are not built yet (issue 4): an image already in the store
//! (imported with `wasmlet image import`) answers with its id, as a pull of it would.

use k8s_cri::v1::{PullImageRequest, PullImageResponse};

use crate::service::require;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn pull_image(&self, req: PullImageRequest) -> Result<PullImageResponse, Error> {
        let reference = req.image.map(|i| i.image).unwrap_or_default();
        require(&reference, "image.image")?;
        let lookup = reference.clone();
        match self.with_images(move |store| store.resolve(&lookup)).await? {
            Some(image) => Ok(PullImageResponse { image_ref: image.id }),
            None => Err(Error::Unimplemented(format!(
                "pulling {reference:?} from a registry is not supported yet; import it with `wasmlet image import`"
            ))),
        }
    }
}
