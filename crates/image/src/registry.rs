//! A blocking client of the OCI distribution API v2 for one repository: manifests and blobs down,
//! blobs and manifests up, with the 401 → Basic or Bearer-token dance, plain HTTP for loopback and
//! insecure hosts, and every failure mapped to an [`Error`] that names the image.

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{self, Method, Response, StatusCode};
use ureq::{Agent, Body, SendBody};

use crate::auth::{Auth, Challenge, parse_challenge, query_escape};
use crate::digest::sha256_digest;
use crate::error::Error;
use crate::oci::{DOCKER_MANIFEST_LIST, INDEX_V1, MANIFEST_V1, MAX_JSON_BYTES};
use crate::reference::{DEFAULT_REGISTRY, Reference};

pub(crate) const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Registry hosts (`host` or `host:port`) reached over plain HTTP. Loopback hosts always are.
    pub insecure: Vec<String>,
    /// Bound on connecting, on waiting for each response's headers and on each read or write of a
    /// transfer (a stalled registry fails the pull; a slow but moving large layer does not).
    pub timeout: Duration,
    /// Mirrors per registry host (as in a normalised reference: `docker.io`, `quay.io`,
    /// `host:port`), tried in order before the registry itself, like containerd's hosts.toml.
    /// Each is `http://host:port`, `https://host`, or `host:port` (scheme by the insecure rule).
    pub mirrors: std::collections::HashMap<String, Vec<String>>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: Vec::new(),
            timeout: Duration::from_secs(30),
            mirrors: std::collections::HashMap::new(),
        }
    }
}

/// One repository of one registry, with the credentials to use on it.
pub struct Registry {
    agent: Agent,
    /// `http://127.0.0.1:5000` or `https://registry-1.docker.io`.
    base: String,
    repository: String,
    /// The image being pulled or pushed, for error messages.
    image: String,
    auth: Option<Auth>,
    /// The `Authorization` header value that last worked.
    authorization: Mutex<Option<String>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

/// A body to send; files are re-opened if a request must be repeated after authenticating.
pub(crate) enum Upload<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a std::path::Path, &'a mut dyn FnMut(u64)),
}

impl Registry {
    pub fn new(reference: &Reference, auth: Option<Auth>, opts: &RegistryOptions) -> Self {
        let host = if reference.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            reference.registry.as_str()
        };
        Self::at(host, reference, auth, opts)
    }

    /// The registry endpoints to try for `reference`: its mirrors in order, then itself.
    pub fn candidates(reference: &Reference, auth: Option<Auth>, opts: &RegistryOptions) -> Vec<Self> {
        let mut out: Vec<Self> = opts
            .mirrors
            .get(&reference.registry)
            .into_iter()
            .flatten()
            .map(|endpoint| Self::at(endpoint, reference, auth.clone(), opts))
            .collect();
        out.push(Self::new(reference, auth, opts));
        out
    }

    /// The endpoint itself, for logs.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    /// A client for `endpoint` (`host[:port]`, or with an explicit `http://`/`https://`).
    fn at(endpoint: &str, reference: &Reference, auth: Option<Auth>, opts: &RegistryOptions) -> Self {
        let endpoint = endpoint.trim_end_matches('/');
        let (scheme, host) = match endpoint.split_once("://") {
            Some((scheme, host)) => (scheme, host),
            None if is_plain_http(endpoint, &opts.insecure) => ("http", endpoint),
            None => ("https", endpoint),
        };
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(opts.timeout))
            .timeout_recv_response(Some(opts.timeout))
            .timeout_per_read(Some(opts.timeout))
            .timeout_per_write(Some(opts.timeout))
            .user_agent("wasmlet")
            .build();
        Registry {
            agent: config.into(),
            base: format!("{scheme}://{host}"),
            repository: reference.repository.clone(),
            image: reference.to_string(),
            auth,
            authorization: Mutex::new(None),
        }
    }

    pub(crate) fn image(&self) -> &str {
        &self.image
    }

    /// GETs the manifest or index `tag_or_digest` (at most 4 MiB). Returns its bytes and media type;
    /// when asked by digest, the bytes are checked against it.
    pub(crate) fn manifest(&self, tag_or_digest: &str) -> Result<(Vec<u8>, String), Error> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base, self.repository
        );
        let resp = self.call(Method::GET, &url, &[("Accept", ACCEPT)], Upload::Empty)?;
        let resp = self.expect_ok(resp, &format!("manifest {tag_or_digest}"))?;
        let header_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
        let what = format!("manifest {}@{tag_or_digest}", self.image);
        if let Some(len) = content_length(&resp)
            && len > MAX_JSON_BYTES
        {
            return Err(Error::TooLarge {
                what,
                size: len,
                limit: MAX_JSON_BYTES,
            });
        }
        let bytes = self.read_limited(resp, MAX_JSON_BYTES, &what)?;
        if tag_or_digest.starts_with("sha256:") && sha256_digest(&bytes) != tag_or_digest {
            return Err(Error::corrupt(
                what,
                format!("content hashes to {}", sha256_digest(&bytes)),
            ));
        }
        let media_type = match header_type {
            Some(t)
                if [
                    MANIFEST_V1,
                    INDEX_V1,
                    DOCKER_MANIFEST_LIST,
                    DOCKER_MANIFEST_V2,
                ]
                .contains(&t.as_str()) =>
            {
                t
            }
            _ => sniff_media_type(&bytes),
        };
        Ok((bytes, media_type))
    }

    /// GETs blob `digest`, returning the response body to stream.
    pub(crate) fn blob(&self, digest: &str) -> Result<Response<Body>, Error> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.call(Method::GET, &url, &[], Upload::Empty)?;
        self.expect_ok(resp, &format!("blob {digest}"))
    }

    /// Whether the repository has blob `digest` (HEAD).
    pub(crate) fn has_blob(&self, digest: &str) -> Result<bool, Error> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        let resp = self.call(Method::HEAD, &url, &[], Upload::Empty)?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => self
                .expect_ok(resp, &format!("blob {digest}"))
                .map(|_| false),
        }
    }

    /// Uploads blob `digest` (monolithic: POST an upload session, PUT the content), unless present.
    pub(crate) fn push_blob(&self, digest: &str, body: Upload<'_>) -> Result<(), Error> {
        if self.has_blob(digest)? {
            return Ok(());
        }
        let url = format!("{}/v2/{}/blobs/uploads/", self.base, self.repository);
        let resp = self.call(Method::POST, &url, &[], Upload::Empty)?;
        let resp = self.expect_status(resp, StatusCode::ACCEPTED, "starting a blob upload")?;
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Registry {
                image: self.image.clone(),
                status: 202,
                detail: "blob upload answered without a Location".into(),
            })?;
        let mut put = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_owned()
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str("digest=");
        put.push_str(&query_escape(digest));
        let headers = [("Content-Type", "application/octet-stream")];
        let resp = self.call(Method::PUT, &put, &headers, body)?;
        self.expect_status(
            resp,
            StatusCode::CREATED,
            &format!("uploading blob {digest}"),
        )?;
        Ok(())
    }

    /// PUTs a manifest or index under `tag_or_digest`.
    pub(crate) fn push_manifest(
        &self,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base, self.repository
        );
        let headers = [("Content-Type", media_type)];
        let resp = self.call(Method::PUT, &url, &headers, Upload::Bytes(bytes))?;
        self.expect_status(
            resp,
            StatusCode::CREATED,
            &format!("putting manifest {tag_or_digest}"),
        )?;
        Ok(())
    }

    /// Sends a request; on a 401, authenticates as the challenge asks and sends it once more.
    fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        mut body: Upload<'_>,
    ) -> Result<Response<Body>, Error> {
        let mut resp = self.call_once(&method, url, headers, &mut body)?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            self.authenticate(&challenge)?;
            resp = self.call_once(&method, url, headers, &mut body)?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                return Err(self.unauthorized(401, "the credentials were not accepted"));
            }
        }
        Ok(resp)
    }

    fn call_once(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        body: &mut Upload<'_>,
    ) -> Result<Response<Body>, Error> {
        let mut req = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(authz) = self.authorization.lock().expect("not poisoned").clone() {
            req = req.header("Authorization", authz);
        }
        let result = match body {
            Upload::Empty => self.agent.run(
                req.body(SendBody::none())
                    .map_err(|e| self.bad_request(e))?,
            ),
            Upload::Bytes(b) => self
                .agent
                .run(req.body(*b).map_err(|e| self.bad_request(e))?),
            Upload::File(path, progress) => {
                let file = std::fs::File::open(*path).map_err(crate::error::io_err(*path))?;
                let len = file.metadata().map_err(crate::error::io_err(*path))?.len();
                let mut reader = Progress {
                    inner: file,
                    done: 0,
                    report: &mut **progress,
                };
                let req = req.header("Content-Length", len.to_string());
                self.agent.run(
                    req.body(SendBody::from_reader(&mut reader))
                        .map_err(|e| self.bad_request(e))?,
                )
            }
        };
        result.map_err(|e| self.transport(e))
    }

    /// Answers a `WWW-Authenticate` challenge: sets the `Authorization` header to use.
    fn authenticate(&self, challenge: &str) -> Result<(), Error> {
        let header = match parse_challenge(challenge) {
            Some(Challenge::Basic) => match &self.auth {
                Some(auth) if auth.has_password() => auth.basic_header(),
                _ => {
                    return Err(self.unauthorized(
                        401,
                        "the registry requires credentials and none were given",
                    ));
                }
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => match &self.auth {
                Some(auth) if !auth.registry_token.is_empty() => {
                    format!("Bearer {}", auth.registry_token)
                }
                _ => format!(
                    "Bearer {}",
                    self.fetch_token(&realm, service.as_deref(), scope.as_deref())?
                ),
            },
            None => {
                return Err(self.unauthorized(401, &format!("unsupported challenge {challenge:?}")));
            }
        };
        *self.authorization.lock().expect("not poisoned") = Some(header);
        Ok(())
    }

    /// GETs a bearer token from `realm` (with Basic credentials if we have them).
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, Error> {
        let default_scope = format!("repository:{}:pull", self.repository);
        let mut url = format!(
            "{realm}{}scope={}",
            if realm.contains('?') { '&' } else { '?' },
            query_escape(scope.unwrap_or(&default_scope))
        );
        if let Some(service) = service {
            url.push_str("&service=");
            url.push_str(&query_escape(service));
        }
        let mut req = self.agent.get(&url);
        if let Some(auth) = &self.auth
            && auth.has_password()
        {
            req = req.header("Authorization", auth.basic_header());
        }
        let resp = req.call().map_err(|e| self.transport(e))?;
        match resp.status().as_u16() {
            200 => {}
            s @ (401 | 403) => {
                return Err(self.unauthorized(s, "the token service refused the credentials"));
            }
            s => {
                return Err(Error::Registry {
                    image: self.image.clone(),
                    status: s,
                    detail: format!("token service {realm}"),
                });
            }
        }
        let body = self.read_limited(resp, 1 << 20, "token response")?;
        #[derive(serde::Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let t: Token = serde_json::from_slice(&body)
            .map_err(|e| Error::corrupt(format!("token response of {realm}"), e.to_string()))?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(self.unauthorized(401, "the token service returned no token"));
        }
        Ok(token)
    }

    fn expect_ok(&self, resp: Response<Body>, what: &str) -> Result<Response<Body>, Error> {
        self.expect_status(resp, StatusCode::OK, what)
    }

    fn expect_status(
        &self,
        resp: Response<Body>,
        want: StatusCode,
        what: &str,
    ) -> Result<Response<Body>, Error> {
        let status = resp.status();
        if status == want || (want == StatusCode::OK && status.is_success()) {
            return Ok(resp);
        }
        let detail = registry_errors(resp);
        Err(match status.as_u16() {
            404 => Error::NotFound {
                reference: format!("{} ({what}: {detail})", self.image),
            },
            s @ (401 | 403) => self.unauthorized(s, &format!("{what}: {detail}")),
            s => Error::Registry {
                image: self.image.clone(),
                status: s,
                detail: format!("{what}: {detail}"),
            },
        })
    }

    fn read_limited(&self, resp: Response<Body>, limit: u64, what: &str) -> Result<Vec<u8>, Error> {
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| self.io_transport(e))?;
        if bytes.len() as u64 > limit {
            return Err(Error::TooLarge {
                what: what.to_owned(),
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(bytes)
    }

    fn unauthorized(&self, status: u16, detail: &str) -> Error {
        Error::Unauthorized {
            image: self.image.clone(),
            status,
            detail: detail.to_owned(),
        }
    }

    fn bad_request(&self, e: http::Error) -> Error {
        Error::invalid(&self.image, format!("cannot build a registry request: {e}"))
    }

    /// Maps a transport failure.
    pub(crate) fn transport(&self, e: ureq::Error) -> Error {
        match e {
            ureq::Error::Timeout(t) => Error::Timeout {
                image: self.image.clone(),
                detail: t.to_string(),
            },
            ureq::Error::Io(io) => self.io_transport(io),
            other => Error::Network {
                image: self.image.clone(),
                detail: format!("{} ({})", other, self.base),
            },
        }
    }

    /// Maps an error reading a response body.
    pub(crate) fn io_transport(&self, e: std::io::Error) -> Error {
        // ureq's body reader wraps its own errors (a per-read timeout among them) in io::Error.
        let wrapped_timeout = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)));
        if wrapped_timeout || e.kind() == std::io::ErrorKind::TimedOut {
            Error::Timeout {
                image: self.image.clone(),
                detail: e.to_string(),
            }
        } else {
            Error::Network {
                image: self.image.clone(),
                detail: format!("{e} ({})", self.base),
            }
        }
    }
}

/// Counts bytes read and reports the running total.
struct Progress<'a, R> {
    inner: R,
    done: u64,
    report: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.report)(self.done);
        Ok(n)
    }
}

pub(crate) fn content_length(resp: &Response<Body>) -> Option<u64> {
    resp.headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The first registry error of a response body (`{"errors":[{"code":..,"message":..}]}`), or its status.
fn registry_errors(resp: Response<Body>) -> String {
    let status = resp.status();
    let mut bytes = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(64 << 10)
        .read_to_end(&mut bytes);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    parsed
        .as_ref()
        .and_then(|v| v.get("errors")?.get(0).cloned())
        .map(|e| {
            format!(
                "{} {}",
                e.get("code").and_then(|c| c.as_str()).unwrap_or_default(),
                e.get("message")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
            )
        })
        .unwrap_or_else(|| status.to_string())
}

/// A manifest's media type from its content, for registries that send none.
fn sniff_media_type(bytes: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(t) = v.get("mediaType").and_then(|t| t.as_str()) {
        return t.to_owned();
    }
    if v.get("manifests").is_some() {
        INDEX_V1.to_owned()
    } else {
        MANIFEST_V1.to_owned()
    }
}

/// Loopback registries and configured insecure hosts are reached over plain HTTP.
fn is_plain_http(host: &str, insecure: &[String]) -> bool {
    let bare = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(bare, "localhost" | "127.0.0.1" | "::1")
        || insecure.iter().any(|h| h == host || h == bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_insecure_hosts_use_http() {
        let none: &[String] = &[];
        assert!(is_plain_http("127.0.0.1:5000", none));
        assert!(is_plain_http("localhost", none));
        assert!(is_plain_http("[::1]:5000", none));
        assert!(!is_plain_http("ghcr.io", none));
        assert!(is_plain_http("reg.lan:5000", &["reg.lan".into()]));
        assert!(is_plain_http("reg.lan:5000", &["reg.lan:5000".into()]));
    }

    #[test]
    fn docker_hub_is_reached_at_its_api_host() {
        let r = crate::normalize("busybox").unwrap();
        let reg = Registry::new(&r, None, &RegistryOptions::default());
        assert_eq!(reg.base, "https://registry-1.docker.io");
        assert_eq!(reg.repository, "library/busybox");
    }

    #[test]
    fn sniffs_media_types() {
        assert_eq!(sniff_media_type(br#"{"manifests":[]}"#), INDEX_V1);
        assert_eq!(sniff_media_type(br#"{"mediaType":"x"}"#), "x");
        assert_eq!(sniff_media_type(b"{}"), MANIFEST_V1);
    }
}
