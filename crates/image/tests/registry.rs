//! `ImageStore::pull` and `push_wasm` against a real registry (Debian's `docker-registry`, started
//! per test on a free loopback port) and, for the hostile cases a real registry cannot produce, a fake
//! one. Every image is built and pushed by the tests themselves.

mod registry {
    pub mod server;
}

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wasmlet_image::{
    Auth, Error, ImageStore, PullOptions, PushOptions, Registry, RegistryOptions, normalize,
    push_wasm,
};

use registry::server::{Answer, FakeRegistry, RealRegistry};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An empty core module with a custom section named `name` holding `pad` bytes.
fn module(name: &str, pad: usize) -> Vec<u8> {
    let mut payload = vec![name.len() as u8];
    payload.extend(name.as_bytes());
    payload.extend(std::iter::repeat_n(0u8, pad));
    let mut bytes = b"\0asm\x01\0\0\0\0".to_vec();
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            bytes.push(byte);
            break;
        }
        bytes.push(byte | 0x80);
    }
    bytes.extend(payload);
    bytes
}

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("store")).unwrap();
    (dir, store)
}

fn client(reference: &str, auth: Option<Auth>) -> Registry {
    Registry::new(
        &normalize(reference).unwrap(),
        auth,
        &RegistryOptions::default(),
    )
}

fn desc(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

/// Pushes config and layers and a manifest under `tag`; returns the manifest's bytes.
fn push_image(
    reg: &Registry,
    tag: &str,
    config_type: &str,
    config: &Value,
    layers: &[(&str, &[u8])],
) -> Vec<u8> {
    let config = serde_json::to_vec(config).unwrap();
    reg.put_blob(&config).unwrap();
    let mut descs = Vec::new();
    for (media_type, bytes) in layers {
        reg.put_blob(bytes).unwrap();
        descs.push(desc(media_type, bytes));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(config_type, &config), "layers": descs,
    }))
    .unwrap();
    reg.put_manifest(tag, OCI_MANIFEST, &manifest).unwrap();
    manifest
}

fn tar_gz(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    builder.append_data(&mut header, name, bytes).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

/// The diff id (sha256 of the uncompressed tar) of a gzip layer.
fn diff_id_gz(layer: &[u8]) -> String {
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(layer), &mut tar).unwrap();
    digest(&tar)
}

fn assert_store_empty(store: &ImageStore) {
    assert!(store.list().unwrap().is_empty());
    for sub in ["blobs/sha256", "compiled", "records", "tmp", "snapshots"] {
        let dir = store.root().join(sub);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn wasm_artifacts_of_every_media_type_pull_compile_and_remove() {
    let reg = RealRegistry::start(None);
    let (dir, store) = store();
    // `wasmlet image push`'s format.
    let wasm = module("pushed", 16);
    let file = dir.path().join("app.wasm");
    std::fs::write(&file, &wasm).unwrap();
    let pushed = push_wasm(
        &file,
        &format!("{}/apps/pushed:v1", reg.addr),
        None,
        &PushOptions::default(),
    )
    .unwrap();
    assert_eq!(pushed.wasm_digest, digest(&wasm));
    // The other layer media types, pushed by hand.
    let other = [
        (
            "content",
            "application/vnd.wasm.content.layer.v1+wasm",
            module("content", 0),
            "module",
        ),
        (
            "component",
            "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
            COMPONENT.to_vec(),
            "component",
        ),
    ];
    for (name, media_type, bytes, _) in &other {
        let reference = format!("{}/apps/{name}:v1", reg.addr);
        let config =
            json!({"architecture": "wasm", "os": "wasip2", "layerDigests": [digest(bytes)]});
        push_image(
            &client(&reference, None),
            "v1",
            WASM_CONFIG,
            &config,
            &[(media_type, bytes)],
        );
    }

    let image = store
        .pull(&pushed.reference, None, &PullOptions::default())
        .unwrap();
    assert_eq!(image.kind, "module");
    assert_eq!(image.wasm_digest, pushed.wasm_digest);
    assert_eq!(image.repo_tags, std::slice::from_ref(&pushed.reference));
    assert_eq!(
        image.repo_digests,
        [format!(
            "{}/apps/pushed@{}",
            reg.addr, pushed.manifest_digest
        )]
    );
    assert!(store.compiled_path(&image).unwrap().exists());
    for (name, _, bytes, kind) in &other {
        let image = store
            .pull(
                &format!("{}/apps/{name}:v1", reg.addr),
                None,
                &PullOptions::default(),
            )
            .unwrap();
        assert_eq!(
            (image.kind.as_str(), image.wasm_digest.clone()),
            (*kind, digest(bytes))
        );
    }
    assert_eq!(store.list().unwrap().len(), 3);

    // By digest: the same image, no new tag.
    let by_digest = format!("{}/apps/pushed@{}", reg.addr, pushed.manifest_digest);
    let again = store
        .pull(&by_digest, None, &PullOptions::default())
        .unwrap();
    assert_eq!(again.id, image.id);
    assert_eq!(store.resolve(&by_digest).unwrap().unwrap().id, image.id);

    for image in store.list().unwrap() {
        store.remove(&image.id).unwrap().unwrap();
    }
    assert_store_empty(&store);
}

#[test]
fn a_wasi_tar_layer_image_in_a_multi_platform_index_pulls_its_wasm_entry() {
    let reg = RealRegistry::start(None);
    let (_dir, store) = store();
    let reference = format!("{}/multi/app:1.0", reg.addr);
    let r = client(&reference, None);
    let wasm = module("from-tar", 0);
    let layer = tar_gz("bin/app.wasm", &wasm);
    let wasi_config = json!({"architecture": "wasm", "os": "wasi",
        "config": {"Entrypoint": ["/bin/app.wasm"], "Env": ["A=1"]},
        "rootfs": {"type": "layers", "diff_ids": []}});
    let wasi = push_image(
        &r,
        "wasi",
        "application/vnd.oci.image.config.v1+json",
        &wasi_config,
        &[(TAR_GZ, &layer)],
    );
    let linux_layer = tar_gz("bin/sh", b"\x7fELF");
    let linux_config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id_gz(&linux_layer)]}});
    let linux = push_image(
        &r,
        "linux",
        "application/vnd.oci.image.config.v1+json",
        &linux_config,
        &[(TAR_GZ, &linux_layer)],
    );
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest(&linux), "size": linux.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": digest(&wasi), "size": wasi.len(), "platform": {"os": "wasi", "architecture": "wasm"}},
    ]}))
    .unwrap();
    let index_digest = r.put_manifest("1.0", OCI_INDEX, &index).unwrap();

    let image = store
        .pull(&reference, None, &PullOptions::default())
        .unwrap();
    assert_eq!(image.wasm_digest, digest(&wasm));
    assert_eq!(image.config.entrypoint, ["/bin/app.wasm"]);
    assert_eq!(
        image.repo_digests,
        [format!("{}/multi/app@{index_digest}", reg.addr)]
    );
    assert!(store.compiled_path(&image).unwrap().exists());

    // The Linux manifest, and an index of Linux only, are pulled, verified and stored as `linux`
    // images, their layers unpacked into snapshots: listed, status-able, removable, not runnable yet.
    let (_dir2, linux_store) = self::store();
    let linux_ref = format!("{}/multi/app:linux", reg.addr);
    let image = linux_store
        .pull(&linux_ref, None, &PullOptions::default())
        .unwrap();
    assert_eq!((image.kind.as_str(), image.is_linux()), ("linux", true));
    assert_eq!(image.config.cmd, ["/bin/sh"]);
    assert_eq!(
        image.repo_digests,
        [format!("{}/multi/app@{}", reg.addr, digest(&linux))]
    );
    for blob in &image.blobs {
        assert!(
            linux_store
                .root()
                .join("blobs/sha256")
                .join(&blob[7..])
                .is_file(),
            "{blob}"
        );
    }
    // One layer: its chain id is its diff id, its snapshot holds the layer's files.
    assert_eq!(image.snapshots, [diff_id_gz(&linux_layer)]);
    let fs_dirs = linux_store.snapshot_dirs(&image);
    assert_eq!(
        fs_dirs,
        [linux_store
            .root()
            .join("snapshots")
            .join(&image.snapshots[0][7..])
            .join("fs")]
    );
    assert_eq!(
        std::fs::read(fs_dirs[0].join("bin/sh")).unwrap(),
        b"\x7fELF"
    );
    let err = linux_store.compiled_path(&image).unwrap_err();
    assert!(
        matches!(&err, Error::NotWasm { detail, .. } if detail.contains("Linux image")),
        "{err}"
    );
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let linux_index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest(&linux), "size": linux.len(), "platform": {"os": "linux", "architecture": arch}},
    ]}))
    .unwrap();
    r.put_manifest("linux-index", OCI_INDEX, &linux_index)
        .unwrap();
    let again = linux_store
        .pull(
            &format!("{}/multi/app:linux-index", reg.addr),
            None,
            &PullOptions::default(),
        )
        .unwrap();
    assert_eq!(again.id, image.id);
    assert_eq!(linux_store.list().unwrap().len(), 1);
    linux_store.remove(&image.id).unwrap().unwrap();
    assert_store_empty(&linux_store);

    // An index with neither wasi/wasm nor this node's platform has nothing to pull.
    let other = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest(&linux), "size": linux.len(), "platform": {"os": "linux", "architecture": "s390x"}},
    ]}))
    .unwrap();
    r.put_manifest("s390x", OCI_INDEX, &other).unwrap();
    let err = linux_store
        .pull(
            &format!("{}/multi/app:s390x", reg.addr),
            None,
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { reference } if reference.contains("linux/s390x")),
        "{err}"
    );

    // A layer that is neither Wasm nor a tar is refused, naming its media type, and nothing is stored.
    push_image(
        &r,
        "odd",
        "application/vnd.oci.image.config.v1+json",
        &linux_config,
        &[("application/x-odd", b"odd")],
    );
    let err = linux_store
        .pull(
            &format!("{}/multi/app:odd", reg.addr),
            None,
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotWasm { detail, .. } if detail.contains("application/x-odd")),
        "{err}"
    );
    assert_store_empty(&linux_store);
}

#[test]
fn basic_auth_registry_needs_the_right_credentials() {
    let reg = RealRegistry::start(Some(("alice", "s3cret")));
    let (dir, store) = store();
    let reference = format!("{}/private/app:v1", reg.addr);
    let file = dir.path().join("app.wasm");
    std::fs::write(&file, module("private", 0)).unwrap();
    let err = push_wasm(&file, &reference, None, &PushOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::Unauthorized { status: 401, .. }),
        "{err}"
    );
    push_wasm(
        &file,
        &reference,
        Some(Auth::basic("alice", "s3cret")),
        &PushOptions::default(),
    )
    .unwrap();

    let err = store
        .pull(&reference, None, &PullOptions::default())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized { status: 401, image, .. } if image == &reference),
        "{err}"
    );
    let err = store
        .pull(
            &reference,
            Some(Auth::basic("alice", "wrong")),
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert_store_empty(&store);
    // docker's `auth` form, as kubelet passes it from an image pull secret.
    let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let auth = Auth::from_cri("", "", &encoded, "").unwrap();
    let image = store
        .pull(&reference, auth, &PullOptions::default())
        .unwrap();
    assert_eq!(image.repo_tags, [reference]);
}

#[test]
fn an_unknown_tag_or_repository_is_not_found_and_an_unreachable_registry_is_a_network_error() {
    let reg = RealRegistry::start(None);
    let (dir, store) = store();
    let err = store
        .pull(
            &format!("{}/nothing/here:v1", reg.addr),
            None,
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { reference } if reference.contains("nothing/here:v1")),
        "{err}"
    );
    let file = dir.path().join("app.wasm");
    std::fs::write(&file, module("x", 0)).unwrap();
    push_wasm(
        &file,
        &format!("{}/some/app:v1", reg.addr),
        None,
        &PushOptions::default(),
    )
    .unwrap();
    let err = store
        .pull(
            &format!("{}/some/app:v2", reg.addr),
            None,
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    drop(reg);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = store
        .pull(
            &format!("127.0.0.1:{port}/some/app:v1"),
            None,
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Network { .. }), "{err}");
    assert_store_empty(&store);
}

/// Serves a one-layer Wasm artifact `app:v1` from `fake`; returns the layer path.
fn serve_artifact(fake: &FakeRegistry, wasm: &[u8], served_layer: &[u8]) -> String {
    let config = serde_json::to_vec(&json!({"architecture": "wasm", "os": "wasip1"})).unwrap();
    let manifest = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc(WASM_CONFIG, &config), "layers": [desc("application/wasm", wasm)]}))
    .unwrap();
    fake.route("/v2/app/manifests/v1", Answer::ok(OCI_MANIFEST, manifest));
    fake.route(
        &format!("/v2/app/blobs/{}", digest(&config)),
        Answer::ok("application/octet-stream", config),
    );
    let layer = format!("/v2/app/blobs/{}", digest(wasm));
    fake.route(
        &layer,
        Answer::ok("application/octet-stream", served_layer.to_vec()),
    );
    layer
}

#[test]
fn a_blob_that_does_not_match_its_digest_stores_nothing() {
    let fake = FakeRegistry::start();
    let wasm = module("good", 0);
    serve_artifact(&fake, &wasm, &module("evil", 0)); // same size, other bytes
    let (_dir, store) = store();
    let err = store
        .pull(
            &format!("{}/app:v1", fake.addr),
            None,
            &PullOptions::default(),
        )
        .unwrap_err();
    match &err {
        Error::Corrupt { what, detail } => {
            assert!(what.contains(&digest(&wasm)), "{err}");
            assert!(detail.contains("hashes to"), "{err}");
        }
        other => panic!("{other}"),
    }
    assert_store_empty(&store);
}

#[test]
fn a_registry_that_stalls_mid_blob_times_out_and_a_5xx_is_a_registry_error() {
    let fake = FakeRegistry::start();
    let wasm = module("slow", 64 << 10);
    let layer = serve_artifact(&fake, &wasm, &wasm);
    let stalled = Answer {
        stall: Some(std::time::Duration::from_secs(5)),
        ..Answer::ok("application/octet-stream", wasm)
    };
    fake.route(&layer, stalled);
    let (_dir, store) = store();
    let opts = PullOptions {
        registry: RegistryOptions {
            timeout: std::time::Duration::from_millis(500),
            ..Default::default()
        },
        ..Default::default()
    };
    let started = Instant::now();
    let err = store
        .pull(&format!("{}/app:v1", fake.addr), None, &opts)
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    fake.route(
        "/v2/app/manifests/v1",
        Answer {
            status: 503,
            ..Answer::ok("text/plain", b"busy".to_vec())
        },
    );
    let err = store
        .pull(
            &format!("{}/app:v1", fake.addr),
            None,
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Registry { status: 503, .. }), "{err}");
    assert_store_empty(&store);
}

#[test]
fn an_oversize_manifest_is_refused() {
    let fake = FakeRegistry::start();
    let big = serde_json::to_vec(
        &json!({"schemaVersion": 2, "annotations": {"pad": "x".repeat(5 << 20)}}),
    )
    .unwrap();
    fake.route("/v2/app/manifests/v1", Answer::ok(OCI_MANIFEST, big));
    let (_dir, store) = store();
    let err = store
        .pull(
            &format!("{}/app:v1", fake.addr),
            None,
            &PullOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit: 4194304, .. }),
        "{err}"
    );
    assert_store_empty(&store);
}

#[test]
fn a_bearer_token_is_fetched_from_the_realm_with_basic_credentials() {
    let fake = FakeRegistry::start();
    let wasm = module("bearer", 0);
    serve_artifact(&fake, &wasm, &wasm);
    let basic = base64::engine::general_purpose::STANDARD.encode("bob:pw");
    fake.require_bearer(&basic, "tok-123");
    let (_dir, store) = store();
    let reference = format!("{}/app:v1", fake.addr);
    let err = store
        .pull(&reference, None, &PullOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    let image = store
        .pull(
            &reference,
            Some(Auth::basic("bob", "pw")),
            &PullOptions::default(),
        )
        .unwrap();
    assert_eq!(image.wasm_digest, digest(&wasm));
    assert_eq!(
        fake.hits("/token"),
        2,
        "one refused, one token for the whole pull"
    );
    // A registry token from the AuthConfig is used as is.
    let (_dir2, other) = self::store();
    let auth = Auth::from_cri("", "", "", "tok-123").unwrap();
    other
        .pull(&reference, auth, &PullOptions::default())
        .unwrap();
    assert_eq!(fake.hits("/token"), 2);
}

#[test]
fn concurrent_pulls_of_one_image_download_it_once() {
    let fake = FakeRegistry::start();
    let wasm = module("once", 256 << 10);
    let layer = serve_artifact(&fake, &wasm, &wasm);
    let (_dir, store) = store();
    let reference = format!("{}/app:v1", fake.addr);
    let reported = Arc::new(Mutex::new(0u64));
    let seen = Arc::clone(&reported);
    let opts = PullOptions {
        progress: Some(Arc::new(move |_: &str, done: u64, _: u64| {
            *seen.lock().unwrap() = done
        })),
        ..Default::default()
    };
    let ids: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.pull(&reference, None, &opts).unwrap().id))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(fake.hits(&layer), 1);
    assert_eq!(*reported.lock().unwrap(), wasm.len() as u64);
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp")).unwrap().count(),
        0
    );
}

/// Pull times from the loopback registry of a ~1 MiB Wasm artifact and of a busybox image built
/// from Debian's busybox-static, each beside `skopeo copy` of the same image to a local OCI layout in
/// the same run (skopeo and busybox-static from scripts/install-deps.sh). Printed, not asserted.
#[test]
fn pull_times_beside_skopeo_copy() {
    let reg = RealRegistry::start(None);
    let (dir, _) = store();
    let wasm = module("big", 1 << 20);
    let file = dir.path().join("big.wasm");
    std::fs::write(&file, &wasm).unwrap();
    let wasm_ref = format!("{}/bench/big:v1", reg.addr);
    push_wasm(&file, &wasm_ref, None, &PushOptions::default()).unwrap();

    let busybox_bin = Path::new("/bin/busybox");
    assert!(
        busybox_bin.exists(),
        "/bin/busybox is missing: run scripts/install-deps.sh (busybox-static)"
    );
    let layer = tar_gz("bin/busybox", &std::fs::read(busybox_bin).unwrap());
    let busybox_ref = format!("{}/bench/busybox:latest", reg.addr);
    let config = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/busybox", "sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id_gz(&layer)]}});
    push_image(
        &client(&busybox_ref, None),
        "latest",
        "application/vnd.oci.image.config.v1+json",
        &config,
        &[(TAR_GZ, &layer)],
    );

    for (what, reference, bytes) in [
        ("Wasm", &wasm_ref, wasm.len()),
        ("busybox", &busybox_ref, layer.len()),
    ] {
        // The daemon's engine exists before any pull: create this store's outside the timing.
        let fresh_dir = tempfile::tempdir().unwrap();
        let engine = wasmlet_wasm::new_engine().unwrap();
        let fresh = ImageStore::with_engine(fresh_dir.path(), engine).unwrap();
        let started = Instant::now();
        fresh
            .pull(reference, None, &PullOptions::default())
            .unwrap();
        let ours = started.elapsed();
        let theirs = skopeo_copy(reference, &dir.path().join(format!("skopeo-{what}")));
        writeln!(
            std::io::stderr(),
            "pull of the {bytes}-byte {what} image: wasmlet {ours:.2?} (Wasm: incl. compile), skopeo copy {theirs:.2?}, ratio {:.2}",
            ours.as_secs_f64() / theirs.as_secs_f64()
        )
        .unwrap();
    }
}

fn skopeo_copy(reference: &str, out: &Path) -> std::time::Duration {
    let skopeo = Path::new("/usr/bin/skopeo");
    assert!(
        skopeo.exists(),
        "/usr/bin/skopeo is missing: run scripts/install-deps.sh"
    );
    let started = Instant::now();
    let out = std::process::Command::new(skopeo)
        .args(["copy", "--src-tls-verify=false", "--insecure-policy"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:v1", out.display()))
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// A gzip layer holding one file entry whose name is written raw (hostile names survive).
fn raw_tar_gz(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    builder.append(&header, bytes).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn linux_layers_that_escape_or_mismatch_their_diff_id_store_nothing() {
    let reg = RealRegistry::start(None);
    let (dir, store) = store();
    let r = client(&format!("{}/bad/linux:x", reg.addr), None);
    let evil = raw_tar_gz("../evil", b"pwned");
    let good = tar_gz("bin/sh", b"\x7fELF");
    let cases: [(&str, Vec<u8>, String); 2] = [
        ("escape", evil.clone(), diff_id_gz(&evil)),
        (
            "mismatch",
            good.clone(),
            diff_id_gz(&tar_gz("bin/sh", b"other")),
        ),
    ];
    for (tag, layer, diff_id) in cases {
        let config = json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
        push_image(
            &r,
            tag,
            "application/vnd.oci.image.config.v1+json",
            &config,
            &[(TAR_GZ, &layer)],
        );
        let reference = format!("{}/bad/linux:{tag}", reg.addr);
        let err = store
            .pull(&reference, None, &PullOptions::default())
            .unwrap_err();
        match tag {
            "escape" => assert!(
                matches!(&err, Error::UnsafeLayer { entry, .. } if entry == "../evil"),
                "{err}"
            ),
            _ => assert!(
                matches!(&err, Error::Corrupt { detail, .. } if detail.contains("diff id")),
                "{err}"
            ),
        }
        assert!(err.to_string().contains("bad/linux"), "{err}");
        assert_store_empty(&store);
    }
    assert!(!dir.path().join("evil").exists());
    assert!(!store.root().join("evil").exists());
}

#[test]
fn a_mirror_serves_a_registry_that_is_not_there() {
    let reg = RealRegistry::start(None);
    let (dir, store) = store();
    let wasm = module("mirrored", 8);
    let file = dir.path().join("app.wasm");
    std::fs::write(&file, &wasm).unwrap();
    push_wasm(&file, &format!("{}/apps/mirrored:v1", reg.addr), None, &PushOptions::default()).unwrap();

    // `registry.invalid` does not exist; only its mirror (the loopback registry) can serve it.
    let mut opts = PullOptions::default();
    opts.registry.timeout = std::time::Duration::from_secs(5);
    let without = store.pull("registry.invalid/apps/mirrored:v1", None, &opts);
    assert!(without.is_err(), "no mirror: the pull must fail");
    opts.registry.mirrors.insert(
        "registry.invalid".into(),
        vec!["http://127.0.0.1:1".into(), format!("http://{}", reg.addr)],
    );
    let image = store.pull("registry.invalid/apps/mirrored:v1", None, &opts).expect("pulled through the second mirror");
    assert_eq!(image.wasm_digest, digest(&wasm));
    assert_eq!(image.repo_tags, ["registry.invalid/apps/mirrored:v1"]);
}
