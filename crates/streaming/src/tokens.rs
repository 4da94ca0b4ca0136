//! One-time tokens, as kubelet's streaming server hands them out: a CRI Exec/Attach/PortForward
//! call stores its validated request under a random token and answers with a URL naming it; the
//! first HTTP request for that URL consumes it. Unused tokens expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::backend::{AttachRequest, ExecRequest, PortForwardRequest};
use crate::error::Error;

/// A request waiting for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

/// At most this many unused tokens at once (kubelet's `MaxInFlight`).
const MAX_PENDING: usize = 1000;

pub(crate) struct Tokens {
    ttl: Duration,
    pending: Mutex<HashMap<String, (Instant, Pending)>>,
}

impl Tokens {
    pub fn new(ttl: Duration) -> Tokens {
        Tokens {
            ttl,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Pending)>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `request` under a new token (128 random bits, URL-safe base64).
    pub fn insert(&self, request: Pending) -> Result<String, Error> {
        let now = Instant::now();
        let mut pending = self.lock();
        pending.retain(|_, (expires, _)| *expires > now);
        if pending.len() >= MAX_PENDING {
            return Err(Error::TooManyPending(pending.len()));
        }
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        pending.insert(token.clone(), (now + self.ttl, request));
        Ok(token)
    }

    /// Takes the request of `token` out, if it exists and has not expired.
    pub fn consume(&self, token: &str) -> Option<Pending> {
        let (expires, request) = self.lock().remove(token)?;
        (expires > Instant::now()).then_some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf() -> Pending {
        Pending::PortForward(PortForwardRequest {
            sandbox_id: "s".into(),
            ports: vec![],
        })
    }

    #[test]
    fn a_token_is_used_once() {
        let tokens = Tokens::new(Duration::from_secs(60));
        let t = tokens.insert(pf()).unwrap();
        assert_eq!(t.len(), 22);
        assert_eq!(tokens.consume(&t), Some(pf()));
        assert_eq!(tokens.consume(&t), None);
        assert_eq!(tokens.consume("nope"), None);
    }

    #[test]
    fn tokens_expire() {
        let tokens = Tokens::new(Duration::from_millis(1));
        let t = tokens.insert(pf()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(tokens.consume(&t), None);
    }

    #[test]
    fn pending_tokens_are_bounded() {
        let tokens = Tokens::new(Duration::from_secs(60));
        for _ in 0..MAX_PENDING {
            tokens.insert(pf()).unwrap();
        }
        assert!(matches!(tokens.insert(pf()), Err(Error::TooManyPending(_))));
    }
}
