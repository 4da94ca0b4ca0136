//! PullImage: pulls the image from its registry into the store (see `ImageStore::pull`), with the
//! credentials of the request's `AuthConfig`, and answers with the image id as containerd does.
//! The store serialises concurrent pulls of one reference, so kubelet's retries download once. When
//! the registry cannot be reached, an image already stored under the reference answers instead.

use k8s_cri::v1::{AuthConfig, PullImageRequest, PullImageResponse};
use wasmlet_image::{Auth, PullOptions};

use crate::service::require;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn pull_image(&self, req: PullImageRequest) -> Result<PullImageResponse, Error> {
        let reference = req.image.map(|i| i.image).unwrap_or_default();
        require(&reference, "image.image")?;
        let auth = auth_of(req.auth.as_ref())
            .map_err(|e| Error::InvalidArgument(format!("pulling {reference:?}: {e}")))?;
        let span = tracing::info_span!("pull_image", image = %reference);
        let options = PullOptions { registry: self.opts.registries.clone(), ..Default::default() };
        let image = self
            .with_images(move |store| {
                let _enter = span.enter();
                match store.pull(&reference, auth, &options) {
                    // An unreachable registry still serves what is stored (e.g. an image imported as
                    // `localhost/app`, whose "registry" is no server at all), as a cache would.
                    Err(e @ wasmlet_image::Error::Network { .. }) => match store.resolve(&reference)? {
                        Some(image) => {
                            tracing::warn!(error = %e, "registry unreachable; using the stored image");
                            Ok(image)
                        }
                        None => Err(e),
                    },
                    other => other,
                }
            })
            .await?;
        Ok(PullImageResponse { image_ref: image.id })
    }
}

/// The credentials of a CRI `AuthConfig` (username/password, base64 `auth` or a registry token).
fn auth_of(auth: Option<&AuthConfig>) -> Result<Option<Auth>, String> {
    match auth {
        Some(a) => Auth::from_cri(&a.username, &a.password, &a.auth, &a.registry_token),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_of_credentials() {
        assert_eq!(auth_of(None).unwrap(), None);
        let basic = AuthConfig { username: "u".into(), password: "p".into(), ..Default::default() };
        assert_eq!(auth_of(Some(&basic)).unwrap(), Some(Auth::basic("u", "p")));
        let encoded = AuthConfig { auth: "dTpw".into(), ..Default::default() }; // base64("u:p")
        assert_eq!(auth_of(Some(&encoded)).unwrap(), Some(Auth::basic("u", "p")));
        let bad = AuthConfig { auth: "%%".into(), ..Default::default() };
        assert!(auth_of(Some(&bad)).is_err());
    }
}
