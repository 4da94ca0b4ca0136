//! RuntimeClass handlers: the names a pod's `runtime_handler` may take, and what each runs. A
//! Wasm image always runs as Wasm (whatever the handler); a Linux image runs as a Linux container
//! unless its pod's handler is Wasm-only. `""` means the default handler.

/// What a handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerKind {
    /// Wasm images as Wasm, Linux images as Linux containers (libcontainer).
    Auto,
    /// Wasm images only: a Linux image is refused at CreateContainer.
    WasmOnly,
}

impl std::str::FromStr for HandlerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "linux" => Ok(HandlerKind::Auto),
            "wasm" => Ok(HandlerKind::WasmOnly),
            other => Err(format!("handler kind {other:?}: expected \"wasm\", \"linux\" or \"auto\"")),
        }
    }
}

/// The handlers served and the one `""` stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handlers {
    pub handlers: Vec<(String, HandlerKind)>,
    pub default: String,
}

impl Default for Handlers {
    /// `wasmlet` (auto, the default), `wasmtime` and `wasm` (Wasm only), `runc` and `linux`.
    fn default() -> Self {
        let h = |n: &str, k| (n.to_string(), k);
        Handlers {
            handlers: vec![
                h("wasmlet", HandlerKind::Auto),
                h("wasmtime", HandlerKind::WasmOnly),
                h("wasm", HandlerKind::WasmOnly),
                h("runc", HandlerKind::Auto),
                h("linux", HandlerKind::Auto),
            ],
            default: "wasmlet".into(),
        }
    }
}

impl Handlers {
    /// The kind of handler `name` (`""`: the default), or `None` for a handler not served.
    pub fn kind(&self, name: &str) -> Option<HandlerKind> {
        let name = if name.is_empty() { self.default.as_str() } else { name };
        self.handlers.iter().find(|(n, _)| n == name).map(|(_, k)| *k)
    }

    pub fn names(&self) -> Vec<String> {
        self.handlers.iter().map(|(n, _)| n.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_named_handlers() {
        let h = Handlers::default();
        assert_eq!(h.kind(""), Some(HandlerKind::Auto));
        assert_eq!(h.kind("wasmtime"), Some(HandlerKind::WasmOnly));
        assert_eq!(h.kind("runc"), Some(HandlerKind::Auto));
        assert_eq!(h.kind("kata"), None);
        assert_eq!("wasm".parse::<HandlerKind>(), Ok(HandlerKind::WasmOnly));
        assert!("vm".parse::<HandlerKind>().is_err());
    }
}
