//! ImageFsInfo: bytes and inodes the image store uses, and where it lives.

use k8s_cri::v1::{FilesystemIdentifier, FilesystemUsage, ImageFsInfoRequest, ImageFsInfoResponse, UInt64Value};
use wasmlet_shim::protocol::now_nanos;

use crate::{Error, Runtime};

impl Runtime {
    pub async fn image_fs_info(&self, _req: ImageFsInfoRequest) -> Result<ImageFsInfoResponse, Error> {
        let usage = self.with_images(|store| store.fs_usage()).await?;
        let fs = FilesystemUsage {
            timestamp: now_nanos(),
            fs_id: Some(FilesystemIdentifier { mountpoint: usage.mountpoint.display().to_string() }),
            used_bytes: Some(UInt64Value { value: usage.used_bytes }),
            inodes_used: Some(UInt64Value { value: usage.inodes_used }),
        };
        Ok(ImageFsInfoResponse { image_filesystems: vec![fs.clone()], container_filesystems: vec![fs] })
    }
}
