//! Resolving what a user or the kubelet calls an image (an id, an id prefix, a tag, a digest reference)
//! to its record.

use crate::digest::{is_hex64, is_lower_hex};
use crate::error::Error;
use crate::record::ImageRecord;
use crate::reference::{Reference, normalize};
use crate::store::ImageStore;

/// Shortest id prefix accepted (docker's short ids are 12 hex characters).
const MIN_PREFIX: usize = 12;

/// How a reference matched an image; removal treats a tag differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matched {
    Id,
    /// The normalised tag that matched (`docker.io/library/hello:latest`).
    Tag(String),
    /// The `repo@digest` that matched.
    Digest(String),
}

/// Whether `reference` may name an image by id or id prefix (`sha256:…`, or 12+ hex digits).
pub(crate) fn may_be_id(reference: &str) -> bool {
    reference.starts_with("sha256:") || (reference.len() >= MIN_PREFIX && is_lower_hex(reference))
}

/// The newest of `records` (oldest first, as [`ImageStore::list`] gives them) that a normalised
/// tag or digest reference names: while a tag moves to a new image, both records may briefly
/// carry it.
pub(crate) fn find_by_name<'a>(records: &'a [ImageRecord], wanted: &Reference) -> Option<(&'a ImageRecord, Matched)> {
    match &wanted.digest {
        Some(digest) => {
            let repo_digest = format!("{}@{digest}", wanted.name());
            records.iter().rev().find(|r| r.repo_digests.contains(&repo_digest)).map(|r| (r, Matched::Digest(repo_digest)))
        }
        None => {
            let tag = wanted.to_string();
            records.iter().rev().find(|r| r.repo_tags.contains(&tag)).map(|r| (r, Matched::Tag(tag)))
        }
    }
}

impl ImageStore {
    /// The image `reference` names, trying in order: a full id (`sha256:<hex>` or bare 64 hex), a
    /// unique id prefix of at least 12 hex characters (`sha256:` optional), then the normalised
    /// reference against tags (`hello:latest` finds `docker.io/library/hello:latest`) or, for a digest
    /// reference, against repo digests. `None` if nothing matches; `InvalidReference` for a reference
    /// that cannot be parsed or an id prefix that matches several images.
    pub fn resolve(&self, reference: &str) -> Result<Option<ImageRecord>, Error> {
        Ok(self.find(reference)?.map(|(record, _)| record))
    }

    pub(crate) fn find(&self, reference: &str) -> Result<Option<(ImageRecord, Matched)>, Error> {
        let (explicit_id, hex) = match reference.strip_prefix("sha256:") {
            Some(hex) => (true, hex),
            None => (false, reference),
        };
        if is_hex64(hex) {
            return Ok(self.records.load(hex)?.map(|r| (r, Matched::Id)));
        }
        if hex.len() >= MIN_PREFIX && is_lower_hex(hex) {
            let ids: Vec<String> = self
                .records
                .ids()?
                .into_iter()
                .filter(|id| id.starts_with(hex))
                .collect();
            match ids.as_slice() {
                [] => {}
                [id] => {
                    if let Some(record) = self.records.load(id)? {
                        return Ok(Some((record, Matched::Id)));
                    }
                }
                _ => {
                    return Err(Error::invalid(
                        reference,
                        format!("ambiguous image id prefix ({} images)", ids.len()),
                    ));
                }
            }
        }
        if explicit_id {
            return Ok(None);
        }
        let wanted = normalize(reference)?;
        let records = self.list()?;
        Ok(find_by_name(&records, &wanted).map(|(r, matched)| (r.clone(), matched)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{module, write_file};

    #[test]
    fn resolves_by_id_prefix_tag_familiar_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = write_file(dir.path(), "hello.wasm", &module("resolve"));
        let image = store.import(&wasm, Some("hello")).unwrap().remove(0);
        let hex = image.id_hex().to_owned();
        let repo_digest = image.repo_digests[0].clone();
        assert!(
            repo_digest.starts_with("docker.io/library/hello@sha256:"),
            "{repo_digest}"
        );
        let digest = repo_digest.split_once('@').unwrap().1.to_owned();
        for reference in [
            image.id.clone(),
            hex.clone(),
            hex[..12].to_owned(),
            format!("sha256:{}", &hex[..20]),
            "hello".into(),
            "hello:latest".into(),
            "docker.io/library/hello:latest".into(),
            "library/hello".into(),
            repo_digest.clone(),
            format!("hello@{digest}"),
            format!("hello:latest@{digest}"),
        ] {
            let found = store.resolve(&reference).unwrap();
            assert_eq!(
                found.as_ref().map(|r| &r.id),
                Some(&image.id),
                "{reference}"
            );
        }
        for reference in [
            "hello:v2".to_owned(),
            "localhost/hello:latest".into(),
            "other".into(),
            hex[..11].to_owned(),
            format!("sha256:{}", "f".repeat(64)),
            format!("sha256:{}", "f".repeat(20)),
            "f".repeat(64),
            format!("other@{digest}"),
        ] {
            assert_eq!(store.resolve(&reference).unwrap(), None, "{reference}");
        }
        assert!(matches!(
            store.resolve("Hello"),
            Err(Error::InvalidReference { .. })
        ));
        assert!(matches!(
            store.resolve(""),
            Err(Error::InvalidReference { .. })
        ));
    }

    #[test]
    fn an_ambiguous_prefix_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = write_file(dir.path(), "a.wasm", &module("ambiguous"));
        let image = store.import(&wasm, None).unwrap().remove(0);
        let mut twin = image.clone();
        let other = if &image.id_hex()[12..13] == "0" {
            "1"
        } else {
            "0"
        };
        twin.id = format!("sha256:{}{}", &image.id_hex()[..12], other.repeat(52));
        twin.repo_tags.clear();
        store.records.save(&twin).unwrap();
        let err = store.resolve(&image.id_hex()[..12]).unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
        assert_eq!(
            store.resolve(&image.id_hex()[..13]).unwrap().unwrap().id,
            image.id
        );
    }
}
