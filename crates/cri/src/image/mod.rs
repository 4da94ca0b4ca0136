//! ImageService: one file per RPC over the local image store.

mod fs_info;
mod list;
mod pull;
mod remove;
mod status;

use k8s_cri::v1::{Image, ImageSpec, Int64Value};
use wasmlet_image::ImageRecord;

/// An image record as CRI's `Image` (the user: a numeric uid or a user name).
pub(crate) fn to_cri(image: &ImageRecord) -> Image {
    let user = image.config.user.split(':').next().unwrap_or("");
    let (uid, username) = match user.parse::<i64>() {
        Ok(uid) => (Some(Int64Value { value: uid }), String::new()),
        Err(_) => (None, user.to_string()),
    };
    Image {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        size: image.size,
        uid,
        username,
        spec: Some(ImageSpec { image: image.id.clone(), ..Default::default() }),
        pinned: false,
    }
}
