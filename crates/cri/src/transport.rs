//! The thin gRPC layer: implements the tonic RuntimeService and ImageService traits over
//! [`Runtime`]'s inner methods, each in a tracing span, converting [`Error`] to `Status` once.
//! Also binds the unix socket and serves.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::{ImageService, ImageServiceServer};
use k8s_cri::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::{Error, Runtime};

/// Largest gRPC message either way (kubelet's own limit).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The tonic service: a handle on the runtime.
#[derive(Clone)]
pub struct Cri(pub Arc<Runtime>);

/// Implements one tonic service trait: `rpcs` forward to the runtime's inner method of the same
/// name; `unimplemented` answer `Unimplemented` with the reason; `extra` items go in as written.
/// (The whole impl is generated so `async_trait` sees the expanded methods.)
macro_rules! service {
    (
        $trait:path;
        rpcs { $($method:ident($req:ty) -> $resp:ty;)* }
        unimplemented { $($umethod:ident($ureq:ty) -> $uresp:ty: $why:expr;)* }
        extra { $($extra:item)* }
    ) => {
        #[tonic::async_trait]
        impl $trait for Cri {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let span = tracing::debug_span!(stringify!($method));
                    let result = self.0.$method(request.into_inner()).instrument(span).await;
                    finish(stringify!($method), result)
                }
            )*
            $(
                async fn $umethod(&self, _request: Request<$ureq>) -> Result<Response<$uresp>, Status> {
                    let message = format!("{} is not implemented by wasmlet yet: {}", stringify!($umethod), $why);
                    finish(stringify!($umethod), Err(Error::Unimplemented(message)))
                }
            )*
            $($extra)*
        }
    };
}

fn finish<T>(method: &str, result: Result<T, Error>) -> Result<Response<T>, Status> {
    match result {
        Ok(v) => Ok(Response::new(v)),
        Err(e) => {
            let status = Status::from(e);
            if matches!(status.code(), tonic::Code::Internal | tonic::Code::Unavailable | tonic::Code::DataLoss) {
                tracing::error!(rpc = method, code = ?status.code(), message = status.message(), "CRI call failed");
            } else {
                tracing::debug!(rpc = method, code = ?status.code(), message = status.message(), "CRI call refused");
            }
            Err(status)
        }
    }
}

service! {
    RuntimeService;
    rpcs {
        version(cri::VersionRequest) -> cri::VersionResponse;
        run_pod_sandbox(cri::RunPodSandboxRequest) -> cri::RunPodSandboxResponse;
        stop_pod_sandbox(cri::StopPodSandboxRequest) -> cri::StopPodSandboxResponse;
        remove_pod_sandbox(cri::RemovePodSandboxRequest) -> cri::RemovePodSandboxResponse;
        pod_sandbox_status(cri::PodSandboxStatusRequest) -> cri::PodSandboxStatusResponse;
        list_pod_sandbox(cri::ListPodSandboxRequest) -> cri::ListPodSandboxResponse;
        create_container(cri::CreateContainerRequest) -> cri::CreateContainerResponse;
        start_container(cri::StartContainerRequest) -> cri::StartContainerResponse;
        stop_container(cri::StopContainerRequest) -> cri::StopContainerResponse;
        remove_container(cri::RemoveContainerRequest) -> cri::RemoveContainerResponse;
        list_containers(cri::ListContainersRequest) -> cri::ListContainersResponse;
        container_status(cri::ContainerStatusRequest) -> cri::ContainerStatusResponse;
        reopen_container_log(cri::ReopenContainerLogRequest) -> cri::ReopenContainerLogResponse;
        update_runtime_config(cri::UpdateRuntimeConfigRequest) -> cri::UpdateRuntimeConfigResponse;
        status(cri::StatusRequest) -> cri::StatusResponse;
        runtime_config(cri::RuntimeConfigRequest) -> cri::RuntimeConfigResponse;
        update_container_resources(cri::UpdateContainerResourcesRequest) -> cri::UpdateContainerResourcesResponse;
        container_stats(cri::ContainerStatsRequest) -> cri::ContainerStatsResponse;
        list_container_stats(cri::ListContainerStatsRequest) -> cri::ListContainerStatsResponse;
        pod_sandbox_stats(cri::PodSandboxStatsRequest) -> cri::PodSandboxStatsResponse;
        list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest) -> cri::ListPodSandboxStatsResponse;
        exec_sync(cri::ExecSyncRequest) -> cri::ExecSyncResponse;
        exec(cri::ExecRequest) -> cri::ExecResponse;
        attach(cri::AttachRequest) -> cri::AttachResponse;
        port_forward(cri::PortForwardRequest) -> cri::PortForwardResponse;
    }
    unimplemented {
        checkpoint_container(cri::CheckpointContainerRequest) -> cri::CheckpointContainerResponse: "checkpointing is not supported";
        list_metric_descriptors(cri::ListMetricDescriptorsRequest) -> cri::ListMetricDescriptorsResponse: "metrics arrive with cgroup support";
        list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest) -> cri::ListPodSandboxMetricsResponse: "metrics arrive with cgroup support";
    }
    extra {
        type GetContainerEventsStream = tokio_stream::Empty<Result<cri::ContainerEventResponse, Status>>;

        async fn get_container_events(&self, _request: Request<cri::GetEventsRequest>) -> Result<Response<Self::GetContainerEventsStream>, Status> {
            let message = "container events are not implemented by wasmlet yet; kubelet falls back to relisting";
            finish("get_container_events", Err(Error::Unimplemented(message.into())))
        }
    }
}

service! {
    ImageService;
    rpcs {
        list_images(cri::ListImagesRequest) -> cri::ListImagesResponse;
        image_status(cri::ImageStatusRequest) -> cri::ImageStatusResponse;
        pull_image(cri::PullImageRequest) -> cri::PullImageResponse;
        remove_image(cri::RemoveImageRequest) -> cri::RemoveImageResponse;
        image_fs_info(cri::ImageFsInfoRequest) -> cri::ImageFsInfoResponse;
    }
    unimplemented {}
    extra {}
}

/// Binds `socket` (mode 0660, owned by root), serves both CRI services until `shutdown`.
pub async fn serve(runtime: Arc<Runtime>, socket: &Path, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Io { op: "removing stale socket", path: socket.to_owned(), source: e }),
    }
    let listener = tokio::net::UnixListener::bind(socket).map_err(Error::io("binding", socket))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660)).map_err(Error::io("chmod", socket))?;
    std::os::unix::fs::chown(socket, Some(0), Some(0)).map_err(Error::io("chown", socket))?;
    tracing::info!(socket = %socket.display(), "serving CRI");
    let cri = Cri(runtime);
    tonic::transport::Server::builder()
        .add_service(
            RuntimeServiceServer::new(cri.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(ImageServiceServer::new(cri).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| Error::Internal(format!("gRPC server: {e}")))
}
