//! Standalone mode: the pods (and ConfigMaps, Secrets) described by the YAML/JSON files of a
//! folder, like kubelet's static pods. The folder is polled; a new file adds its pods, a changed
//! file replaces them (a static pod's uid is a hash of its manifest, so a change is a new pod, as
//! in kubelet), a removed file deletes them with their grace period. A file that cannot be used is
//! reported on the board and changes nothing else.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;

use crate::manager::Manager;
use crate::manifest::{self, Object};
use crate::objects::Kind;
use crate::{Error, Result};

/// The folder's files as last read: (modified, length) to skip unchanged files, and their text.
#[derive(Debug, Default)]
pub struct Folder {
    dir: PathBuf,
    files: BTreeMap<PathBuf, ((SystemTime, u64), String)>,
    objects: BTreeSet<(Kind, String, String)>,
}

impl Folder {
    pub fn new(dir: PathBuf) -> Folder {
        Folder {
            dir,
            ..Default::default()
        }
    }

    /// Reads the folder; `true` when anything changed since the last read.
    fn read(&mut self) -> Result<bool> {
        let entries = std::fs::read_dir(&self.dir).map_err(Error::io(&self.dir))?;
        let mut seen = BTreeSet::new();
        let mut changed = false;
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let wanted = !name.starts_with('.')
                && [".yaml", ".yml", ".json"].iter().any(|x| name.ends_with(x));
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !wanted || !meta.is_file() {
                continue;
            }
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            seen.insert(path.clone());
            if self.files.get(&path).is_some_and(|(s, _)| *s == stamp) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if self.files.get(&path).is_none_or(|(_, t)| *t != text) {
                changed = true;
            }
            self.files.insert(path, (stamp, text));
        }
        let before = self.files.len();
        self.files.retain(|p, _| seen.contains(p));
        Ok(changed || before != self.files.len())
    }

    /// Reads the folder and, if anything changed, brings `manager` in line with it.
    pub fn sync(&mut self, manager: &mut Manager) -> Result<()> {
        if !self.read()? {
            return Ok(());
        }
        let node = manager.settings().node.name.clone();
        let objects = manager.settings().objects.clone();
        let board = manager.board().clone();
        let mut desired: BTreeMap<String, (Pod, String)> = BTreeMap::new();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut new_objects = BTreeSet::new();
        for (path, (_, text)) in &self.files {
            let source = path.display().to_string();
            let decoded = match manifest::decode_all(&source, text) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("{e}");
                    board.set_error(&source, Some(e.to_string()));
                    continue;
                }
            };
            let mut problems = Vec::new();
            for d in decoded {
                for w in &d.warnings {
                    tracing::warn!(file = %source, "{w}");
                }
                match d.object {
                    Object::ConfigMap(_) | Object::Secret(_) => {
                        let kind = if matches!(d.object, Object::ConfigMap(_)) {
                            Kind::ConfigMap
                        } else {
                            Kind::Secret
                        };
                        let (ns, name) = match &d.object {
                            Object::ConfigMap(c) => {
                                (c.metadata.namespace.clone(), c.metadata.name.clone())
                            }
                            Object::Secret(s) => {
                                (s.metadata.namespace.clone(), s.metadata.name.clone())
                            }
                            Object::Pod(_) => unreachable!("matched above"),
                        };
                        let ns = ns
                            .filter(|n| !n.is_empty())
                            .unwrap_or_else(|| "default".into());
                        let name = name.unwrap_or_default();
                        objects.put(kind, &ns, &name, manifest::data_of(&d.object));
                        new_objects.insert((kind, ns, name));
                    }
                    Object::Pod(pod) => {
                        let mut pod = *pod;
                        manifest::set_defaults(&mut pod);
                        let errs = manifest::validate(&pod);
                        if !errs.is_empty() {
                            problems.push(format!(
                                "invalid pod {:?}: {}",
                                pod.metadata.name.clone().unwrap_or_default(),
                                errs.join("; ")
                            ));
                            continue;
                        }
                        let full = manifest::full_name(&pod);
                        if let Some(other) = names.get(&full) {
                            problems.push(format!(
                                "duplicate pod {full}: already defined in {other}; ignored"
                            ));
                            continue;
                        }
                        names.insert(full, source.clone());
                        let canonical = serde_json::to_string(&pod).unwrap_or_default();
                        let uid = manifest::static_uid(&source, &node, &canonical);
                        pod.metadata.uid = Some(uid.clone());
                        let annotations = pod
                            .metadata
                            .annotations
                            .get_or_insert_with(Default::default);
                        annotations.insert("kubernetes.io/config.source".into(), "file".into());
                        annotations.insert("kubernetes.io/config.hash".into(), uid.clone());
                        pod.spec.get_or_insert_with(Default::default).node_name =
                            Some(node.clone());
                        desired.insert(uid, (pod, source.clone()));
                    }
                }
            }
            board.set_error(&source, (!problems.is_empty()).then(|| problems.join("\n")));
        }
        // Errors of files that are gone.
        for e in board.snapshot("").errors {
            if !self.files.contains_key(Path::new(&e.source)) {
                board.set_error(&e.source, None);
            }
        }
        for (kind, ns, name) in self.objects.difference(&new_objects) {
            objects.remove(*kind, ns, name);
        }
        self.objects = new_objects;
        let from_file = |s: &str| s != crate::cluster::SOURCE;
        for uid in manager.uids(Some(&from_file)) {
            if !desired.contains_key(&uid) {
                manager.remove(&uid, None);
            }
        }
        for (_, (pod, source)) in desired {
            manager.apply(pod, &source);
        }
        Ok(())
    }
}

/// Runs standalone mode until `shutdown` resolves: an initial read of the folder, removal of our
/// sandboxes that no manifest claims any more, then polling the folder every `poll` and relisting
/// the runtime every `settings.resync`. Pods keep running when the agent exits (as with kubelet).
pub async fn run(
    mut manager: Manager,
    dir: PathBuf,
    poll: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut folder = Folder::new(dir);
    folder.sync(&mut manager)?;
    let removed = manager.remove_orphans().await?;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed the sandboxes of pods whose manifests are gone"
        );
    }
    let mut relist = tokio::time::interval(manager.settings().resync);
    relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scan = tokio::time::interval(poll);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = relist.tick() => {
                if let Err(e) = manager.relist().await {
                    tracing::warn!("relisting the runtime: {e}");
                }
            }
            _ = scan.tick() => {
                if let Err(e) = folder.sync(&mut manager) {
                    tracing::warn!("reading the manifests: {e}");
                }
            }
            _ = &mut shutdown => break,
        }
    }
    manager.wait_stopped().await;
    Ok(())
}
