//! The engine configuration shared by compiler and shim, and its compatibility hash.

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, OptLevel};

use crate::Error;

/// Builds the engine every wasmlet process uses. Changing anything here changes
/// [`compat_hash`], so stale compiled artifacts are never loaded.
///
/// - async calls (always on in wasmtime 48): a container's guest runs as a future, so a stop can drop it even while the
///   guest is blocked in a host call (a WASI sleep or read);
/// - epoch interruption: a guest in a tight loop traps at the next loop header once its stop flag
///   is set and the epoch is bumped.
pub fn new_engine() -> Result<Engine, Error> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.wasm_component_model(true);
    Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))
}

/// A stable hex string naming everything about `engine` that a compiled artifact depends on
/// (wasmtime version, target, compiler settings). Part of the compiled-cache key.
pub fn compat_hash(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_hash_is_stable_across_engines() {
        let a = new_engine().unwrap();
        let b = new_engine().unwrap();
        assert_eq!(compat_hash(&a), compat_hash(&b));
        assert_eq!(compat_hash(&a).len(), 24);
    }

    #[test]
    fn compat_hash_changes_with_config() {
        let mut config = Config::new();
        config.epoch_interruption(false);
        let other = Engine::new(&config).unwrap();
        assert_ne!(compat_hash(&new_engine().unwrap()), compat_hash(&other));
    }
}
