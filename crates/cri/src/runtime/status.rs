//! Status: RuntimeReady and NetworkReady, honestly.
//!
//! Pods get no network of their own yet (no CNI: issue 7), so NetworkReady is false with a reason,
//! and kubelet will only start hostNetwork pods. Wasm guests get no socket access at all.

use std::collections::HashMap;

use k8s_cri::v1::{RuntimeCondition, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusRequest, StatusResponse};

use crate::{Error, Runtime};

fn network_condition() -> RuntimeCondition {
    RuntimeCondition {
        r#type: "NetworkReady".into(),
        status: false,
        reason: "NetworkPluginNotReady".into(),
        message: "wasmlet has no pod network yet: CNI is not implemented, only hostNetwork pods can run".into(),
    }
}

impl Runtime {
    pub async fn status(&self, req: StatusRequest) -> Result<StatusResponse, Error> {
        let runtime_ready = self.opts.state.is_dir() && self.opts.root.is_dir();
        let runtime = RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: runtime_ready,
            reason: if runtime_ready { String::new() } else { "StateDirectoryMissing".into() },
            message: if runtime_ready {
                String::new()
            } else {
                format!("{} or {} is missing", self.opts.root.display(), self.opts.state.display())
            },
        };
        let mut info = HashMap::new();
        if req.verbose {
            let config = serde_json::json!({
                "root": self.opts.root,
                "state": self.opts.state,
                "shimExe": self.opts.shim_exe,
                "handlers": crate::runtime::sandbox_run::HANDLERS,
            });
            info.insert("config".into(), config.to_string());
        }
        let handlers = crate::runtime::sandbox_run::HANDLERS
            .iter()
            .map(|h| RuntimeHandler {
                name: h.to_string(),
                features: Some(RuntimeHandlerFeatures { recursive_read_only_mounts: false, user_namespaces: false }),
            })
            .collect();
        Ok(StatusResponse {
            status: Some(RuntimeStatus { conditions: vec![runtime, network_condition()] }),
            info,
            runtime_handlers: handlers,
            features: None,
        })
    }
}
