//! Registry credentials as the CRI `AuthConfig` carries them, and the parsing of the
//! `WWW-Authenticate` challenges a registry answers a 401 with (Basic, or Bearer with a token realm).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Credentials for one registry: a username and password (also given as docker's base64
/// `auth`), or a registry token used as the bearer token directly.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    pub username: String,
    pub password: String,
    /// A bearer token for the registry itself (CRI `registry_token`), used without a token exchange.
    pub registry_token: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Auth {
            username: username.into(),
            password: password.into(),
            registry_token: String::new(),
        }
    }

    /// From the CRI `AuthConfig` fields: `username`/`password`, else docker's `auth`
    /// (base64 of `user:password`), else `registry_token`. `None` if all are empty.
    pub fn from_cri(
        username: &str,
        password: &str,
        auth: &str,
        registry_token: &str,
    ) -> Result<Option<Self>, String> {
        if !username.is_empty() || !password.is_empty() {
            return Ok(Some(Auth::basic(username, password)));
        }
        if !auth.is_empty() {
            let decoded = STANDARD
                .decode(auth.trim())
                .map_err(|e| format!("auth is not base64: {e}"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| "auth is not UTF-8".to_owned())?;
            let (user, pass) = decoded
                .split_once(':')
                .ok_or_else(|| "auth is not base64 of user:password".to_owned())?;
            return Ok(Some(Auth::basic(user, pass)));
        }
        if !registry_token.is_empty() {
            return Ok(Some(Auth {
                registry_token: registry_token.to_owned(),
                ..Auth::default()
            }));
        }
        Ok(None)
    }

    pub(crate) fn has_password(&self) -> bool {
        !self.username.is_empty() || !self.password.is_empty()
    }

    /// `Basic <base64(user:password)>`.
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", STANDARD.encode(raw))
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Basic realm="x"` or `Bearer realm="https://auth/token",service="s",scope="repository:a:pull"`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    let params = parse_params(params);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `k="v",k2=v2` (quoted values may hold commas).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (
                quoted[..end].to_owned(),
                quoted.get(end + 1..).unwrap_or(""),
            )
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Percent-encodes a query parameter value.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_and_basic_challenges() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#;
        assert_eq!(
            parse_challenge(h),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn reads_cri_auth_configs() {
        assert_eq!(Auth::from_cri("", "", "", "").unwrap(), None);
        let a = Auth::from_cri("", "", &STANDARD.encode("me:p:w"), "")
            .unwrap()
            .unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("me", "p:w"));
        assert_eq!(
            a.basic_header(),
            format!("Basic {}", STANDARD.encode("me:p:w"))
        );
        assert!(Auth::from_cri("", "", "!!", "").is_err());
        let t = Auth::from_cri("", "", "", "tok").unwrap().unwrap();
        assert_eq!(t.registry_token, "tok");
        assert!(
            !format!("{a:?}").contains("p:w"),
            "Debug hides the password"
        );
        assert_eq!(
            query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
