//! The CRI client: both services of any CRI runtime (wasmlet, containerd, CRI-O) on one unix-socket
//! connection. Our own few lines rather than `wasmlet_cri::client`, so that this crate does not
//! depend on wasmlet's runtime (and wasmtime) at all.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{Error, Result};

/// Both CRI services on one connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CriClient {
    pub runtime: RuntimeServiceClient<Channel>,
    pub image: ImageServiceClient<Channel>,
}

/// Connects to `unix:///path` or a plain socket path.
pub async fn connect(endpoint: &str) -> Result<CriClient> {
    let path: PathBuf = Path::new(endpoint.strip_prefix("unix://").unwrap_or(endpoint)).to_owned();
    let channel = Endpoint::from_static("http://[::1]:0")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|source| Error::Connect {
            endpoint: endpoint.to_string(),
            source,
        })?;
    Ok(CriClient {
        runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(16 << 20),
        image: ImageServiceClient::new(channel).max_decoding_message_size(16 << 20),
    })
}
