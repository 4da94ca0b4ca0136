//! Image records: what the store knows about one image, and the `records/` directory that holds one
//! `<image-id-hex>.json` per image, each replaced atomically.

use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::digest::{is_hex64, sha256_hex_of};
use crate::error::{Error, io_err};
use crate::oci::{ContainerConfig, MAX_JSON_BYTES};

/// One image in the store.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ImageRecord {
    /// `sha256:<hex>`: the digest of the image config blob, as containerd reports it.
    pub id: String,
    /// Normalised tags: `docker.io/library/hello:latest`, `localhost/hello:latest`.
    pub repo_tags: Vec<String>,
    /// `<repository>@sha256:<manifest or index digest>`.
    pub repo_digests: Vec<String>,
    /// Bytes of the image's layers and config.
    pub size: u64,
    /// `module` (WASI preview 1), `component` (WASI 0.2), or `linux` ([`LINUX_KIND`]: a Linux image
    /// pulled and verified, its layers stored compressed as pulled; not unpacked, so not runnable yet).
    pub kind: String,
    /// `sha256:<hex>` of the Wasm binary; the binary is the blob of that digest. For a `linux` image,
    /// which has none, the config digest (the image id).
    pub wasm_digest: String,
    /// What the container runs, from the image config.
    pub config: ImageConfig,
    /// When the image was first imported.
    pub created_unix_nanos: i64,
    /// Every blob (`sha256:<hex>`) this image keeps in `blobs/sha256/`: manifests and indexes, config,
    /// layers and the Wasm binary. Removal deletes those no other image lists.
    #[serde(default)]
    pub blobs: Vec<String>,
    /// For a `linux` image: the chain ids (`sha256:<hex>`) of its unpacked layers, bottom layer first;
    /// each is `<root>/snapshots/<hex>/fs/`, an overlay lowerdir (see `ImageStore::snapshot_dirs`).
    /// Empty for Wasm images and for Linux images pulled before layers were unpacked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
}

/// The runtime part of an image config.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// The image's `STOPSIGNAL` (e.g. `SIGQUIT` or `3`); empty means SIGTERM.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
}

impl ImageConfig {
    pub(crate) fn from_oci(config: Option<ContainerConfig>) -> Self {
        let c = config.unwrap_or_default();
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            stop_signal: c.stop_signal.unwrap_or_default(),
        }
    }
}

/// The [`ImageRecord::kind`] of a Linux image.
pub const LINUX_KIND: &str = "linux";

impl ImageRecord {
    /// A Linux image (stored, not runnable yet), not a Wasm one.
    pub fn is_linux(&self) -> bool {
        self.kind == LINUX_KIND
    }

    /// The hex of the id (the record's file stem).
    pub fn id_hex(&self) -> &str {
        self.id.strip_prefix("sha256:").unwrap_or(&self.id)
    }

    /// The hex of the Wasm binary's digest (the compiled artifact's name starts with it).
    pub fn wasm_hex(&self) -> &str {
        self.wasm_digest
            .strip_prefix("sha256:")
            .unwrap_or(&self.wasm_digest)
    }

    /// Adds `other`'s tags, repo digests and blobs (the same image imported again, maybe under new
    /// names). Returns whether anything was added.
    pub(crate) fn merge(&mut self, other: &ImageRecord) -> bool {
        let before = (
            self.repo_tags.len(),
            self.repo_digests.len(),
            self.blobs.len(),
        );
        union_into(&mut self.repo_tags, &other.repo_tags);
        union_into(&mut self.repo_digests, &other.repo_digests);
        union_into(&mut self.blobs, &other.blobs);
        let mut snapshots_added = false;
        if self.snapshots.is_empty() && !other.snapshots.is_empty() {
            self.snapshots = other.snapshots.clone();
            snapshots_added = true;
        }
        snapshots_added
            || before
                != (
                    self.repo_tags.len(),
                    self.repo_digests.len(),
                    self.blobs.len(),
                )
    }

    /// Every blob hex this record needs, the Wasm binary included.
    pub(crate) fn blob_hexes(&self) -> impl Iterator<Item = &str> {
        self.blobs
            .iter()
            .map(|b| b.strip_prefix("sha256:").unwrap_or(b))
            .chain([self.wasm_hex()])
    }

    fn validate(&self, hex: &str) -> Result<(), String> {
        if sha256_hex_of(&self.id) != Some(hex) {
            return Err(format!("id {:?} does not match the file name", self.id));
        }
        if let Some(bad) = std::iter::once(&self.wasm_digest)
            .chain(&self.blobs)
            .find(|d| sha256_hex_of(d).is_none())
        {
            return Err(format!("bad digest {bad:?}"));
        }
        Ok(())
    }
}

fn union_into(into: &mut Vec<String>, from: &[String]) {
    for item in from {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

/// The `records/` directory.
#[derive(Debug, Clone)]
pub(crate) struct Records {
    dir: PathBuf,
}

impl Records {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Records { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn path(&self, hex: &str) -> PathBuf {
        self.dir.join(format!("{hex}.json"))
    }

    /// The record of image `hex`, if stored.
    pub(crate) fn load(&self, hex: &str) -> Result<Option<ImageRecord>, Error> {
        let path = self.path(hex);
        let mut bytes = Vec::new();
        match fs::File::open(&path) {
            Ok(f) => f
                .take(MAX_JSON_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(io_err(&path))?,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let what = || format!("image record {}", path.display());
        if bytes.len() as u64 > MAX_JSON_BYTES {
            return Err(Error::corrupt(what(), "larger than 4 MiB"));
        }
        let record: ImageRecord =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(what(), e.to_string()))?;
        record
            .validate(hex)
            .map_err(|detail| Error::corrupt(what(), detail))?;
        Ok(Some(record))
    }

    /// Every readable record, and the errors of the unreadable ones (which callers must not mistake for
    /// absent images: garbage collection stops if there are any).
    pub(crate) fn load_all(&self) -> Result<(Vec<ImageRecord>, Vec<Error>), Error> {
        let mut records = Vec::new();
        let mut errors = Vec::new();
        for hex in self.ids()? {
            match self.load(&hex) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {} // removed since the listing
                Err(e) => errors.push(e),
            }
        }
        records.sort_by(|a, b| (a.created_unix_nanos, &a.id).cmp(&(b.created_unix_nanos, &b.id)));
        Ok((records, errors))
    }

    /// The hex ids of all records (file names `<hex>.json`; temporary files skipped).
    pub(crate) fn ids(&self) -> Result<Vec<String>, Error> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let name = entry.file_name();
            if let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && is_hex64(hex)
            {
                ids.push(hex.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Writes `record` atomically. Caller holds the store lock.
    pub(crate) fn save(&self, record: &ImageRecord) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(record).expect("records always serialise");
        atomic::write_atomic(&self.path(record.id_hex()), &json)
    }

    /// Deletes the record of image `hex` durably. Caller holds the store lock.
    pub(crate) fn delete(&self, hex: &str) -> Result<(), Error> {
        atomic::remove_synced(&self.path(hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hex: &str, tags: &[&str]) -> ImageRecord {
        ImageRecord {
            id: format!("sha256:{hex}"),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: vec![],
            size: 1,
            kind: "module".into(),
            wasm_digest: format!("sha256:{}", "0".repeat(64)),
            config: ImageConfig::default(),
            created_unix_nanos: 1,
            blobs: vec![format!("sha256:{hex}")],
            snapshots: vec![],
        }
    }

    #[test]
    fn saves_loads_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().to_owned());
        let hex = "a".repeat(64);
        assert_eq!(records.load(&hex).unwrap(), None);
        let r = record(&hex, &["localhost/a:latest"]);
        records.save(&r).unwrap();
        assert_eq!(records.load(&hex).unwrap(), Some(r.clone()));
        fs::write(dir.path().join(".tmp.x.json"), b"junk").unwrap();
        let (all, errors) = records.load_all().unwrap();
        assert_eq!((all, errors.len()), (vec![r], 0));
        records.delete(&hex).unwrap();
        assert!(records.ids().unwrap().is_empty());
    }

    #[test]
    fn damaged_records_are_corrupt_not_absent() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(dir.path().to_owned());
        let hex = "b".repeat(64);
        fs::write(records.path(&hex), b"{not json").unwrap();
        assert!(matches!(records.load(&hex), Err(Error::Corrupt { .. })));
        let other = record(&"c".repeat(64), &[]);
        fs::write(records.path(&hex), serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(matches!(records.load(&hex), Err(Error::Corrupt { .. })));
        let (all, errors) = records.load_all().unwrap();
        assert_eq!((all.len(), errors.len()), (0, 1));
    }

    #[test]
    fn merge_unions_names() {
        let mut a = record(&"a".repeat(64), &["x:1"]);
        let b = record(&"a".repeat(64), &["x:1", "x:2"]);
        assert!(a.merge(&b));
        assert_eq!(a.repo_tags, ["x:1", "x:2"]);
        assert!(!a.merge(&b));
    }
}
