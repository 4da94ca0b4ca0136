//! The ImageService over the local store: listing, status (absent is not an error), idempotent
//! removal, filesystem usage, and images imported by the CLI while the daemon runs.

use std::time::Duration;

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec { image: image.into(), ..Default::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_service_over_the_local_store() {
    let d = Daemon::start("images", &[HELLO_P1, LOGGER_P1]).await;
    let mut img = d.img();

    let images = img.list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images;
    for guest in [HELLO_P1, LOGGER_P1] {
        assert!(images.iter().any(|i| i.repo_tags.iter().any(|t| t == guest.image)), "{} not listed: {images:?}", guest.image);
    }

    let hello = img
        .image_status(cri::ImageStatusRequest { image: spec(HELLO_P1.image), verbose: false })
        .await
        .unwrap()
        .into_inner()
        .image
        .expect("hello-p1 is present");
    assert!(hello.id.starts_with("sha256:") && hello.id.len() == 71, "id {:?}", hello.id);
    assert!(hello.repo_tags.contains(&HELLO_P1.image.to_string()), "{hello:?}");
    let wasm_len = std::fs::metadata(HELLO_P1.wasm).unwrap().len();
    assert!(hello.size >= wasm_len, "size {} is less than the Wasm file's {wasm_len} bytes", hello.size);
    assert!(hello.repo_digests.iter().all(|r| r.starts_with("localhost/hello-p1@sha256:")), "{:?}", hello.repo_digests);
    // By id as well as by tag.
    let by_id = img.image_status(cri::ImageStatusRequest { image: spec(&hello.id), verbose: false }).await.unwrap().into_inner().image;
    assert_eq!(by_id.map(|i| i.id), Some(hello.id.clone()));
    let filtered = img
        .list_images(cri::ListImagesRequest { filter: Some(cri::ImageFilter { image: spec(HELLO_P1.image) }) })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(filtered.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [hello.id.as_str()]);

    let absent = img
        .image_status(cri::ImageStatusRequest { image: spec("localhost/absent:v1"), verbose: false })
        .await
        .expect("ImageStatus of an absent image is not an error");
    assert!(absent.get_ref().image.is_none(), "{absent:?}");
    img.remove_image(cri::RemoveImageRequest { image: spec("localhost/absent:v1") }).await.expect("RemoveImage of an absent image is OK");

    let fs = img.image_fs_info(cri::ImageFsInfoRequest::default()).await.unwrap().into_inner();
    let usage = fs.image_filesystems.first().expect("an image filesystem");
    assert!(usage.used_bytes.as_ref().is_some_and(|u| u.value > 0), "{usage:?}");
    assert!(usage.inodes_used.as_ref().is_some_and(|u| u.value > 0), "{usage:?}");
    assert!(usage.fs_id.as_ref().is_some_and(|f| !f.mountpoint.is_empty()), "{usage:?}");
    assert!(usage.timestamp > 0);

    // An image the daemon has never seen, imported by the CLI while it runs.
    let late = CPU_BURNER_P1.image;
    let before = img.image_status(cri::ImageStatusRequest { image: spec(late), verbose: false }).await.unwrap().into_inner();
    assert!(before.image.is_none());
    import(CPU_BURNER_P1.wasm, late, &d.root);
    let images = img.list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images;
    let imported = images
        .iter()
        .find(|i| i.repo_tags.iter().any(|t| t == late))
        .unwrap_or_else(|| panic!("{late} not listed after import: {images:?}"));
    assert_eq!(imported.repo_tags, [late], "a new image, not a new tag on an old one");
    // ... and usable at once.
    let sandbox = d.run_pod("late").await;
    let c = d.create(&sandbox, "late", late, &["1"], &[], vec![]).await;
    d.start_container(&c).await;
    let s = d.wait_exited(&c, Duration::from_secs(10)).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    assert_eq!(s.image.map(|i| i.image), Some(late.to_string()));

    // PullImage of a present image answers with its id (registry pulls are not built).
    let pulled = img.pull_image(cri::PullImageRequest { image: spec(late), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(pulled.image_ref, imported.id);

    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
    img.remove_image(cri::RemoveImageRequest { image: spec(late) }).await.unwrap();
    let after = img.image_status(cri::ImageStatusRequest { image: spec(late), verbose: false }).await.unwrap().into_inner();
    assert!(after.image.is_none(), "removed image still there: {after:?}");
    let images = img.list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images;
    assert!(!images.iter().any(|i| i.id == imported.id), "removed image still listed");
}
