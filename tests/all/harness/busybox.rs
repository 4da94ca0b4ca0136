//! A busybox Linux image, built by the tests from Debian's busybox-static and pushed to a real
//! `docker-registry` on loopback: one gzip layer with /bin/busybox and its applet links, an
//! /etc/passwd and /etc/group with a non-root user (`app`, 1000, also in `wheel`), and /tmp.

use std::io::Write;
use std::path::Path;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "hostname", "id", "ls", "touch", "head", "tr", "wc", "grep", "dd", "wget", "ps", "mkdir",
    "true", "false", "env", "pwd", "seq", "stty", "tty",
];

/// Pushes the busybox image as `<registry>/e2e/busybox:1`; returns the reference.
pub fn push_busybox(registry_addr: &str) -> String {
    assert!(Path::new(BUSYBOX).exists(), "{BUSYBOX} is missing: run scripts/install-deps.sh (busybox-static)");
    let reference = format!("{registry_addr}/e2e/busybox:1");
    let layer_tar = layer();
    let diff_id = format!("sha256:{}", hex(&sha256(&layer_tar)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&layer_tar).unwrap();
    let layer_gz = gz.finish().unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let r = wasmlet_image::Registry::new(&wasmlet_image::normalize(&reference).unwrap(), None, &Default::default());
    let layer_digest = r.put_blob(&layer_gz).unwrap();
    let config_digest = r.put_blob(config.as_bytes()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_gz.len()}],
    })
    .to_string();
    r.put_manifest("1", "application/vnd.oci.image.manifest.v1+json", manifest.as_bytes()).unwrap();
    reference
}

fn layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    };
    for (d, mode) in [("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700), ("home", 0o755), ("home/app", 0o755)] {
        dir(&mut b, d, mode);
    }
    file(&mut b, "bin/busybox", 0o755, &std::fs::read(BUSYBOX).unwrap());
    for applet in APPLETS {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox").unwrap();
    }
    file(&mut b, "etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n");
    file(&mut b, "etc/group", 0o644, b"root:x:0:\nwheel:x:10:app\napp:x:1000:\n");
    b.into_inner().unwrap()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
