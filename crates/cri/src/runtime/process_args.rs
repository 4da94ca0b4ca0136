//! A container's argv and environment from its CRI config and its image, by kubelet's rules;
//! shared by the Wasm and the Linux executors.

use k8s_cri::v1::ContainerConfig;
use wasmlet_image::ImageRecord;

use crate::Error;

/// `command` replaces the image's entrypoint, `args` replace its cmd (and an entrypoint replaced
/// drops the image's cmd too).
pub(crate) fn argv(config: &ContainerConfig, image: &ImageRecord) -> Vec<String> {
    let mut args = if config.command.is_empty() { image.config.entrypoint.clone() } else { config.command.clone() };
    if !config.args.is_empty() {
        args.extend(config.args.iter().cloned());
    } else if config.command.is_empty() {
        args.extend(image.config.cmd.iter().cloned());
    }
    args
}

/// The image's environment overlaid by the CRI's, in order, each key once.
pub(crate) fn env(config: &ContainerConfig, image: &ImageRecord) -> Result<Vec<(String, String)>, Error> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(key, _)| key == k) {
        Some(entry) => entry.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    for kv in &image.config.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v);
    }
    for (i, kv) in config.envs.iter().enumerate() {
        if kv.key.is_empty() {
            return Err(Error::InvalidArgument(format!("envs[{i}].key is empty")));
        }
        set(&kv.key, &kv.value);
    }
    Ok(env)
}
