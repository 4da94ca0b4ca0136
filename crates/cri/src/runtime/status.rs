//! Status: RuntimeReady and NetworkReady, honestly. NetworkReady follows the CNI conf dir, read at
//! every call (kubelet polls Status), so a config that appears is picked up without a restart.

use std::collections::HashMap;

use k8s_cri::v1::{RuntimeCondition, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusRequest, StatusResponse};

use crate::{Error, Runtime};

impl Runtime {
    fn network_condition(&self) -> RuntimeCondition {
        let (status, reason, message) = match self.cni_config() {
            Ok(_) => (true, String::new(), String::new()),
            Err(e) => (false, "NetworkPluginNotReady".to_string(), format!("cni config uninitialized: {e}")),
        };
        RuntimeCondition { r#type: "NetworkReady".into(), status, reason, message }
    }

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
                "handlers": self.opts.handlers.names(),
                "defaultHandler": self.opts.handlers.default,
                "cniConfDir": self.opts.cni_conf_dir,
                "cniBinDirs": self.opts.cni_bin_dirs,
            });
            info.insert("config".into(), config.to_string());
        }
        let handlers = self
            .opts
            .handlers
            .names()
            .into_iter()
            .map(|name| RuntimeHandler {
                name,
                features: Some(RuntimeHandlerFeatures { recursive_read_only_mounts: false, user_namespaces: false }),
            })
            .collect();
        Ok(StatusResponse {
            status: Some(RuntimeStatus { conditions: vec![runtime, self.network_condition()] }),
            info,
            runtime_handlers: handlers,
            features: None,
        })
    }
}
