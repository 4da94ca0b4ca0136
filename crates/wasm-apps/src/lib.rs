//! The example guests of `examples/wasm-apps`, built for tests and demos.
//!
//! The build script compiles every guest (one per `examples/wasm-apps/src/bin`
//! file) in release mode for `wasm32-wasip1`, which gives core modules
//! exporting `_start`, and for `wasm32-wasip2`, which gives components
//! exporting `wasi:cli/run`. For each guest `NAME` this crate has two
//! constants holding the absolute path of the `.wasm` file: `NAME_P1` and
//! `NAME_P2` (upper case, `-` turned into `_`), e.g. [`HELLO_P1`] and
//! [`HELLO_P2`]; [`ALL`] lists them all. Each guest's argv contract is in the
//! `//!` comment of its source file.
//!
//! ```
//! let module = wasmlet_wasm_apps::read(wasmlet_wasm_apps::HELLO_P1);
//! assert!(module.starts_with(b"\0asm"));
//! ```

include!(concat!(env!("OUT_DIR"), "/apps.rs"));

/// Reads a guest's bytes, e.g. `read(HELLO_P2)`.
///
/// # Panics
///
/// If the file cannot be read (for instance when the build output was
/// deleted without rebuilding this crate).
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading example guest {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_is_built_for_both_targets() {
        let names: Vec<&str> = ALL.iter().map(|(name, _, _)| *name).collect();
        for expected in [
            "cpu-burner",
            "exit-code",
            "hello",
            "http-handler",
            "logger",
            "mem-grower",
            "reader",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from ALL: {names:?}"
            );
        }
        for &(name, p1, p2) in ALL {
            assert!(
                p1.ends_with(&format!("wasm32-wasip1/release/{name}.wasm")),
                "{p1}"
            );
            assert!(
                p2.ends_with(&format!("wasm32-wasip2/release/{name}.wasm")),
                "{p2}"
            );

            let module = read(p1);
            assert!(module.starts_with(b"\0asm"), "{p1} is not wasm");
            assert_eq!(module[4..8], [1, 0, 0, 0], "{p1} is not a core module");

            let component = read(p2);
            assert!(component.starts_with(b"\0asm"), "{p2} is not wasm");
            assert_eq!(component[6..8], [1, 0], "{p2} is not a component");
        }
    }

    #[test]
    fn named_constants_match_all() {
        let find = |name: &str| *ALL.iter().find(|(n, _, _)| *n == name).unwrap();
        assert_eq!(find("hello"), ("hello", HELLO_P1, HELLO_P2));
        assert_eq!(find("logger"), ("logger", LOGGER_P1, LOGGER_P2));
        assert_eq!(find("exit-code"), ("exit-code", EXIT_CODE_P1, EXIT_CODE_P2));
        assert_eq!(find("reader"), ("reader", READER_P1, READER_P2));
        assert_eq!(
            find("cpu-burner"),
            ("cpu-burner", CPU_BURNER_P1, CPU_BURNER_P2)
        );
        assert_eq!(
            find("mem-grower"),
            ("mem-grower", MEM_GROWER_P1, MEM_GROWER_P2)
        );
    }
}
