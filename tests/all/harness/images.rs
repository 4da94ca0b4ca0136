//! The guest images of the tests and how they get into a daemon's store: every guest is imported
//! (and so compiled, the slow part) once per test run into a seed store, which each test's daemon
//! starts from before it imports the guests it needs with `wasmlet image import`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{WASMLET, require_root};

/// A guest program and the image name it is imported under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    pub wasm: &'static str,
    pub image: &'static str,
}

pub const HELLO_P1: Guest = Guest { wasm: wasmlet_wasm_apps::HELLO_P1, image: "localhost/hello-p1:latest" };
pub const HELLO_P2: Guest = Guest { wasm: wasmlet_wasm_apps::HELLO_P2, image: "localhost/hello-p2:latest" };
pub const LOGGER_P1: Guest = Guest { wasm: wasmlet_wasm_apps::LOGGER_P1, image: "localhost/logger-p1:latest" };
pub const EXIT_CODE_P1: Guest = Guest { wasm: wasmlet_wasm_apps::EXIT_CODE_P1, image: "localhost/exit-code-p1:latest" };
pub const EXIT_CODE_P2: Guest = Guest { wasm: wasmlet_wasm_apps::EXIT_CODE_P2, image: "localhost/exit-code-p2:latest" };
pub const READER_P1: Guest = Guest { wasm: wasmlet_wasm_apps::READER_P1, image: "localhost/reader-p1:latest" };
pub const HTTP_SERVER_P2: Guest = Guest { wasm: wasmlet_wasm_apps::HTTP_SERVER_P2, image: "localhost/http-server-p2:latest" };
pub const HTTP_HANDLER_P2: Guest = Guest { wasm: wasmlet_wasm_apps::HTTP_HANDLER_P2, image: "localhost/http-handler-p2:latest" };
pub const MEM_GROWER_P1: Guest = Guest { wasm: wasmlet_wasm_apps::MEM_GROWER_P1, image: "localhost/mem-grower-p1:latest" };
pub const UPCASE_P1: Guest = Guest { wasm: wasmlet_wasm_apps::UPCASE_P1, image: "localhost/upcase-p1:latest" };

/// Not seeded: the images test imports it while its daemon runs, as an image the daemon never saw.
pub const CPU_BURNER_P1: Guest = Guest { wasm: wasmlet_wasm_apps::CPU_BURNER_P1, image: "localhost/late-import:v1" };

/// Every guest a test may ask for: compiled once per test run into a seed store (see [`seed`]).
const SEEDED: &[Guest] = &[HELLO_P1, HELLO_P2, LOGGER_P1, EXIT_CODE_P1, EXIT_CODE_P2, READER_P1, MEM_GROWER_P1, HTTP_SERVER_P2, HTTP_HANDLER_P2, UPCASE_P1];

/// `wasmlet image import WASM --name IMAGE --root ROOT`, which must succeed.
pub fn import(wasm: &str, image: &str, root: &Path) {
    let out = Command::new(WASMLET)
        .args(["image", "import", wasm, "--name", image, "--root"])
        .arg(root)
        .env("WASMLET_LOG", "warn")
        .env_remove("WASMLET_CONFIG")
        .output()
        .expect("running wasmlet image import");
    assert!(
        out.status.success(),
        "wasmlet image import {wasm} --name {image} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(image), "wasmlet image import printed no line naming {image}: {stdout:?}");
}

/// Fills `root/images` with the seed store, so a daemon on `root` starts with every guest compiled.
pub fn copy_seed_into(root: &Path) {
    copy_tree(seed(), &root.join("images"));
}

/// The image store every test starts from: every guest of [`SEEDED`], imported (and so compiled)
/// once per test run with `wasmlet image import`, concurrently.
fn seed() -> &'static Path {
    static SEED: OnceLock<PathBuf> = OnceLock::new();
    SEED.get_or_init(|| {
        require_root();
        remove_stale_seeds();
        let root = seed_root();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        // SAFETY: registers a plain `extern "C" fn` that touches no state of ours but the path.
        unsafe {
            libc::atexit(remove_seed);
        }
        std::thread::scope(|s| {
            for guest in SEEDED {
                let root = &root;
                s.spawn(move || import(guest.wasm, guest.image, root));
            }
        });
        root.join("images")
    })
}

fn seed_root() -> PathBuf {
    PathBuf::from(format!("/tmp/wlt-seed-{}", std::process::id()))
}

/// Removes the seed store when the test binary exits.
extern "C" fn remove_seed() {
    let _ = std::fs::remove_dir_all(seed_root());
}

/// Seed stores of runs that died before removing theirs.
fn remove_stale_seeds() {
    let Ok(entries) = std::fs::read_dir("/tmp") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("wlt-seed-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A guest added to `examples/wasm-apps` needs an end-to-end test here too.
#[test]
fn every_example_guest_is_run_by_an_end_to_end_test() {
    let used: Vec<&str> = SEEDED.iter().chain([&CPU_BURNER_P1]).map(|g| g.wasm).collect();
    for (name, p1, p2) in wasmlet_wasm_apps::ALL {
        assert!(used.contains(p1) || used.contains(p2), "the guest {name} is run by no test in tests/all");
    }
}
