//! Image references: parsing and normalising them exactly as docker/containerd do
//! (docker/distribution `reference.ParseNormalizedNamed` plus containerd's default `:latest`).

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The registry of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `docker.io`, `localhost`, `127.0.0.1:5000`, `[::1]:5000`, ...
    pub registry: String,
    /// Path inside the registry: `library/busybox`, `user/app`.
    pub repository: String,
    /// `latest` when the input named neither a tag nor a digest.
    pub tag: Option<String>,
    /// `sha256:<hex>` (or sha384/sha512).
    pub digest: Option<String>,
}

impl Reference {
    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form docker prints: `busybox:latest` for `docker.io/library/busybox:latest`.
    pub fn familiar(&self) -> String {
        let name = match self.registry.as_str() {
            DEFAULT_REGISTRY => match self.repository.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.repository.clone(),
            },
            _ => self.name(),
        };
        with_suffixes(name, self.tag.as_deref(), self.digest.as_deref())
    }

    /// This reference's name with `tag` and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&with_suffixes(
            self.name(),
            self.tag.as_deref(),
            self.digest.as_deref(),
        ))
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        normalize(s)
    }
}

fn with_suffixes(mut name: String, tag: Option<&str>, digest: Option<&str>) -> String {
    if let Some(tag) = tag {
        name.push(':');
        name.push_str(tag);
    }
    if let Some(digest) = digest {
        name.push('@');
        name.push_str(digest);
    }
    name
}

/// Parses and normalises `reference` like containerd and the kubelet: default registry `docker.io`,
/// `library/` for official images, `:latest` unless a tag or digest is given. A first path component is a
/// registry iff it contains `.` or `:`, is `localhost`, or has an uppercase letter (docker/distribution
/// v0.6 and later treat `Foo/bar` as registry `Foo`).
pub fn normalize(reference: &str) -> Result<Reference, Error> {
    let bad = |reason: &str| Error::invalid(reference, reason);
    if reference.is_empty() {
        return Err(bad("repository name must have at least one component"));
    }
    if crate::digest::is_hex64(reference) {
        return Err(bad(
            "cannot specify 64-byte hexadecimal strings as a repository name",
        ));
    }
    let (named, digest) = match reference.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        validate_digest(digest).map_err(|reason| bad(&reason))?;
    }

    let (registry, remainder) = split_registry(named);
    let (path, tag) = match remainder.split_once(':') {
        Some((path, tag)) => (path, Some(tag)),
        None => (remainder.as_str(), None),
    };
    if path.to_lowercase() != path {
        return Err(bad("repository name must be lowercase"));
    }
    if !valid_registry(&registry) {
        return Err(bad("invalid registry host"));
    }
    if path.is_empty() || !path.split('/').all(valid_path_component) {
        return Err(bad(
            "invalid repository name (path components are [a-z0-9] separated by '.', '_', '__' or '-')",
        ));
    }
    if let Some(tag) = tag
        && !is_tag(tag)
    {
        return Err(bad(
            "invalid tag (must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})",
        ));
    }
    if registry.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(bad("repository name must not be more than 255 characters"));
    }
    let tag = match (tag, digest) {
        (None, None) => Some(DEFAULT_TAG.to_owned()),
        (tag, _) => tag.map(str::to_owned),
    };
    Ok(Reference {
        registry,
        repository: path.to_owned(),
        tag,
        digest: digest.map(str::to_owned),
    })
}

/// True for a string that is only a tag (`v1`, `latest`), not a name: the OCI `ref.name` annotation is
/// either.
pub(crate) fn is_tag(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

/// docker/distribution `splitDockerDomain`: the registry, and the rest (`path[:tag]`).
fn split_registry(named: &str) -> (String, String) {
    let (mut registry, remainder) = match named.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_owned(), rest)
        }
        _ => (DEFAULT_REGISTRY.to_owned(), named),
    };
    if registry == LEGACY_DEFAULT_REGISTRY {
        registry = DEFAULT_REGISTRY.to_owned();
    }
    if registry == DEFAULT_REGISTRY && !remainder.contains('/') {
        return (registry, format!("{OFFICIAL_REPO_PREFIX}{remainder}"));
    }
    (registry, remainder.to_owned())
}

/// host[:port] where host is a DNS name (components of `[A-Za-z0-9-]`, no leading/trailing `-`) or a
/// bracketed IPv6 address.
fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    };
    host.split('.').all(component_ok)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        match &component[sep_start..i] {
            "." | "_" | "__" => {}
            sep if sep.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
}

/// `algorithm:hex` with a known algorithm and the matching number of lowercase hex digits.
fn validate_digest(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err("invalid digest (want algorithm:hex)".into());
    };
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => return Err(format!("unsupported digest algorithm {other:?}")),
    };
    if hex.len() != want || !crate::digest::is_lower_hex(hex) {
        return Err(format!(
            "invalid {algorithm} digest (want {want} lowercase hex digits)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";

    #[test]
    fn normalises_like_docker() {
        let d = format!("sha256:{HEX}");
        let cases: Vec<(String, String)> = vec![
            ("busybox".into(), "docker.io/library/busybox:latest".into()),
            (
                "busybox:1.36".into(),
                "docker.io/library/busybox:1.36".into(),
            ),
            (
                "library/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            ("user/app".into(), "docker.io/user/app:latest".into()),
            (
                "docker.io/busybox".into(),
                "docker.io/library/busybox:latest".into(),
            ),
            (
                "index.docker.io/user/app:v2".into(),
                "docker.io/user/app:v2".into(),
            ),
            (
                "127.0.0.1:5000/app".into(),
                "127.0.0.1:5000/app:latest".into(),
            ),
            ("localhost/app:v1".into(), "localhost/app:v1".into()),
            (
                "localhost:5000/a/b/c".into(),
                "localhost:5000/a/b/c:latest".into(),
            ),
            (
                "ghcr.io/org/sub/app:1.0-rc.1".into(),
                "ghcr.io/org/sub/app:1.0-rc.1".into(),
            ),
            ("[::1]:5000/app".into(), "[::1]:5000/app:latest".into()),
            ("Registry/app".into(), "Registry/app:latest".into()),
            (
                "my-app_x.y__z--w".into(),
                "docker.io/library/my-app_x.y__z--w:latest".into(),
            ),
            (format!("app@{d}"), format!("docker.io/library/app@{d}")),
            (
                format!("ghcr.io/o/app:v1@{d}"),
                format!("ghcr.io/o/app:v1@{d}"),
            ),
            ("app:V_1.x-Y".into(), "docker.io/library/app:V_1.x-Y".into()),
        ];
        for (input, want) in cases {
            let got = normalize(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "{input}");
            assert_eq!(
                got.to_string().parse::<Reference>().unwrap(),
                got,
                "{input} is a fixed point"
            );
        }
    }

    #[test]
    fn rejects_what_docker_rejects() {
        let long = format!("a/{}", "b".repeat(260));
        let cases = [
            ("", "at least one component"),
            ("Busybox", "lowercase"),
            ("user/App", "lowercase"),
            ("localhost/App:v1", "lowercase"),
            (HEX, "64-byte hexadecimal"),
            ("app:", "invalid tag"),
            ("app:-v1", "invalid tag"),
            ("app:a:b", "invalid tag"),
            (&format!("app:{}", "t".repeat(129)), "invalid tag"),
            ("app@sha256:abc", "sha256 digest"),
            (
                &format!("app@sha256:{}", HEX.to_uppercase()),
                "sha256 digest",
            ),
            (&format!("app@md5:{HEX}"), "unsupported digest algorithm"),
            ("app@", "invalid digest"),
            ("a..b", "invalid repository name"),
            ("_app", "invalid repository name"),
            ("app-", "invalid repository name"),
            ("a///b", "invalid repository name"),
            ("/app", "invalid repository name"),
            ("localhost/", "invalid repository name"),
            ("bad_host.io/app", "invalid registry"),
            ("host:port/app", "invalid registry"),
            (&long, "255 characters"),
        ];
        for (input, reason) in cases {
            match normalize(input) {
                Err(Error::InvalidReference {
                    reference,
                    reason: r,
                }) => {
                    assert_eq!(reference, input);
                    assert!(r.contains(reason), "{input}: {r}");
                }
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn parts_and_familiar_form() {
        let r = normalize("busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/busybox")
        );
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (Some("latest"), None)
        );
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(normalize("user/app:v1").unwrap().familiar(), "user/app:v1");
        assert_eq!(
            normalize("localhost/app").unwrap().familiar(),
            "localhost/app:latest"
        );
        let digested = normalize(&format!("app@sha256:{HEX}")).unwrap();
        assert_eq!(digested.tag, None);
        assert_eq!(
            digested.with_tag("v2").to_string(),
            "docker.io/library/app:v2"
        );
    }

    #[test]
    fn tells_tags_from_names() {
        assert!(is_tag("v1") && is_tag("latest") && is_tag("1.0_rc-2"));
        assert!(!is_tag("") && !is_tag(".v1") && !is_tag("a/b") && !is_tag("a:b"));
    }
}
