//! Registry pulls through the CRI socket, kubelet-style: images pushed with `wasmlet image push` to a
//! real `docker-registry` on loopback (one open, one behind htpasswd basic auth), then PullImage →
//! ImageStatus → CreateContainer + StartContainer runs them → RemoveImage; and the errors kubelet sees
//! for missing credentials and unknown tags. The hostile cases (digest mismatch, oversize manifests)
//! are covered against a fake registry in crates/image/tests/registry.rs.

use std::process::Command;
use std::time::Duration;

use tonic::Code;
use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

// The registry launcher the image crate's tests use (one copy of the docker-registry setup).
#[path = "../../crates/image/tests/registry/server.rs"]
#[allow(dead_code, reason = "the fake registry half is used by the image crate's tests only")]
pub(crate) mod server;

fn spec(image: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec { image: image.into(), ..Default::default() })
}

/// `wasmlet image push WASM REF [--username U --password P]`, which must succeed; returns its stdout.
fn push(wasm: &str, reference: &str, user: Option<(&str, &str)>) -> String {
    let mut cmd = Command::new(WASMLET);
    cmd.args(["image", "push", wasm, reference]).env("WASMLET_LOG", "warn");
    if let Some((u, p)) = user {
        cmd.args(["--username", u, "--password", p]);
    }
    let out = cmd.output().expect("running wasmlet image push");
    assert!(
        out.status.success(),
        "wasmlet image push {wasm} {reference} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_run_and_remove_images_from_a_registry() {
    let registry = server::RealRegistry::start(None);
    let p1 = format!("{}/e2e/hello-p1:v1", registry.addr);
    let p2 = format!("{}/e2e/hello-p2:v1", registry.addr);
    let pushed = push(HELLO_P1.wasm, &p1, None);
    assert!(pushed.starts_with(&format!("{}/e2e/hello-p1:v1@sha256:", registry.addr)), "{pushed}");
    push(HELLO_P2.wasm, &p2, None);

    let d = Daemon::start("registry", &[]).await;
    let mut img = d.img();
    for (reference, kind) in [(&p1, "p1"), (&p2, "p2")] {
        let pulled = img
            .pull_image(cri::PullImageRequest { image: spec(reference), ..Default::default() })
            .await
            .unwrap_or_else(|e| panic!("PullImage {reference}: {e:?}\ndaemon log:\n{}", d.daemon_log()))
            .into_inner();
        let status = img.image_status(cri::ImageStatusRequest { image: spec(reference), verbose: false }).await.unwrap().into_inner();
        let image = status.image.unwrap_or_else(|| panic!("{reference} not present after PullImage"));
        assert_eq!(image.id, pulled.image_ref, "image_ref is the image id");
        assert_eq!(image.repo_tags, std::slice::from_ref(reference));
        assert!(image.repo_digests[0].starts_with(&format!("{}/e2e/hello-{kind}@sha256:", registry.addr)), "{image:?}");
        // Pulling again is idempotent.
        let again = img.pull_image(cri::PullImageRequest { image: spec(reference), ..Default::default() }).await.unwrap().into_inner();
        assert_eq!(again.image_ref, pulled.image_ref);

        let sandbox = d.run_pod(&format!("pulled-{kind}")).await;
        let c = d.create(&sandbox, "hello", reference, &["pulled"], &[], vec![]).await;
        d.start_container(&c).await;
        let s = d.wait_exited(&c, Duration::from_secs(20)).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
        let log = std::fs::read_to_string(d.log_of(&sandbox, "hello")).unwrap();
        assert!(log.contains("hello from wasm") && log.contains("=pulled"), "{log}");
        d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();

        img.remove_image(cri::RemoveImageRequest { image: spec(reference) }).await.unwrap();
        let after = img.image_status(cri::ImageStatusRequest { image: spec(reference), verbose: false }).await.unwrap().into_inner();
        assert!(after.image.is_none(), "removed image still there: {after:?}");
    }

    let unknown = format!("{}/e2e/hello-p1:nope", registry.addr);
    let result = img.pull_image(cri::PullImageRequest { image: spec(&unknown), ..Default::default() }).await;
    expect_error("PullImage of an unknown tag", result, Code::NotFound, &["e2e/hello-p1:nope"]);

    // The CLI pulls into the same store the daemon serves.
    let out = Command::new(WASMLET)
        .args(["image", "pull", &p1, "--root"])
        .arg(&d.root)
        .env("WASMLET_LOG", "warn")
        .env_remove("WASMLET_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "wasmlet image pull: {}", String::from_utf8_lossy(&out.stderr));
    let listed = img.list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images;
    assert!(listed.iter().any(|i| i.repo_tags.contains(&p1)), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_with_basic_auth_credentials_from_the_auth_config() {
    let registry = server::RealRegistry::start(Some(("kube", "pa55")));
    let reference = format!("{}/private/hello:v1", registry.addr);
    push(HELLO_P1.wasm, &reference, Some(("kube", "pa55")));

    let d = Daemon::start("registry-auth", &[]).await;
    let mut img = d.img();
    let result = img.pull_image(cri::PullImageRequest { image: spec(&reference), ..Default::default() }).await;
    expect_error("PullImage without credentials", result, Code::Unauthenticated, &[&reference]);
    let wrong = cri::AuthConfig { username: "kube".into(), password: "nope".into(), ..Default::default() };
    let result = img.pull_image(cri::PullImageRequest { image: spec(&reference), auth: Some(wrong), ..Default::default() }).await;
    expect_error("PullImage with a wrong password", result, Code::Unauthenticated, &[&reference]);
    let listed = img.list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images;
    assert!(!listed.iter().any(|i| i.repo_tags.contains(&reference)), "nothing stored on failure");

    let auth = cri::AuthConfig { username: "kube".into(), password: "pa55".into(), ..Default::default() };
    let pulled = img
        .pull_image(cri::PullImageRequest { image: spec(&reference), auth: Some(auth), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("PullImage with credentials: {e:?}\ndaemon log:\n{}", d.daemon_log()))
        .into_inner();
    assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linux_image_is_pulled_listed_and_removed() {
    let registry = server::RealRegistry::start(None);
    let reference = format!("{}/linux/tiny:1", registry.addr);
    // A Linux image whose one layer is the empty tar (two zero blocks): pulled, verified against its
    // diff_id and unpacked into a snapshot. Its Cmd names a /bin/sh it does not have, so
    // CreateContainer refuses it, naming the program (tests/all/linux.rs runs real ones).
    let r = wasmlet_image::Registry::new(&wasmlet_image::normalize(&reference).unwrap(), None, &Default::default());
    let layer = vec![0u8; 1024];
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"],"User":"1000"},"rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}"#;
    let layer_digest = r.put_blob(&layer).unwrap();
    let config_digest = r.put_blob(config).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":1024}}]}}"#,
        config.len()
    );
    r.put_manifest("1", "application/vnd.oci.image.manifest.v1+json", manifest.as_bytes()).unwrap();

    let d = Daemon::start("registry-linux", &[]).await;
    let mut img = d.img();
    let pulled = img
        .pull_image(cri::PullImageRequest { image: spec(&reference), ..Default::default() })
        .await
        .unwrap_or_else(|e| panic!("PullImage {reference}: {e:?}\ndaemon log:\n{}", d.daemon_log()))
        .into_inner();
    assert_eq!(pulled.image_ref, config_digest);
    let image = img.image_status(cri::ImageStatusRequest { image: spec(&reference), verbose: false }).await.unwrap().into_inner().image;
    let image = image.expect("a pulled Linux image has a status");
    assert_eq!((image.id.as_str(), image.repo_tags.as_slice()), (config_digest.as_str(), std::slice::from_ref(&reference)));

    let sandbox = d.run_pod("linux").await;
    let result = d
        .rt()
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(container_config("sh", &reference, &[], &[], vec![])),
            sandbox_config: Some(d.pod(&sandbox)),
        })
        .await;
    expect_error("CreateContainer of an image without its command", result, Code::InvalidArgument, &["/bin/sh"]);
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();

    img.remove_image(cri::RemoveImageRequest { image: spec(&reference) }).await.unwrap();
    let after = img.image_status(cri::ImageStatusRequest { image: spec(&reference), verbose: false }).await.unwrap().into_inner();
    assert!(after.image.is_none(), "removed image still there: {after:?}");
}
