//! The idle timeout of a streaming session (containerd's and kubelet's `stream_idle_timeout`,
//! 4 hours by default): [`IdleIo`] wraps an upgraded connection and, once no byte has gone either
//! way for the timeout, fails its reads and writes. The session's read loop then ends as if the
//! client had gone away, so everything the session started is torn down the same way (the exec
//! killed, the attach detached, the port-forward connections closed).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// containerd's default `stream_idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);

pub(crate) struct IdleIo<T> {
    inner: T,
    /// `None`: never idle.
    timeout: Option<Duration>,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    expired: bool,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, timeout: Option<Duration>) -> IdleIo<T> {
        let last = Instant::now();
        // A timeout too long to add to a clock reading is no timeout.
        let timeout = timeout.filter(|t| last.checked_add(*t).is_some());
        let timer = Box::pin(tokio::time::sleep_until(last + timeout.unwrap_or_default()));
        IdleIo { inner, timeout, last, timer, expired: false }
    }

    fn expired_error(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, format!("no traffic for {:?} (the stream idle timeout)", self.timeout.unwrap_or_default()))
    }

    /// Ready with the error once the session has been idle for the timeout; else registers the
    /// waker with the timer.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(timeout) = self.timeout else { return Poll::Pending };
        loop {
            if self.expired {
                return Poll::Ready(self.expired_error());
            }
            let deadline = self.last + timeout;
            if Instant::now() >= deadline {
                self.expired = true;
                tracing::info!(?timeout, "streaming session idle: closed");
                continue;
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            ready!(self.timer.as_mut().poll(cx));
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(Err(this.expired_error()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(Err(this.expired_error()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if n > 0 {
            this.last = Instant::now();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn traffic_either_way_keeps_it_open_silence_closes_it() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut io = IdleIo::new(ours, Some(Duration::from_secs(10)));
        let mut buf = [0u8; 8];
        // Writes at 6 s and reads at 12 s keep it alive past the first 10 s.
        tokio::time::sleep(Duration::from_secs(6)).await;
        io.write_all(b"out").await.unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        theirs.write_all(b"in").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        // Then 10 s of silence: a pending read fails, and so does everything after.
        let started = Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(io.write_all(b"late").await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timeout_it_never_expires() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut io = IdleIo::new(ours, None);
        tokio::time::sleep(Duration::from_secs(365 * 24 * 3600)).await;
        theirs.write_all(b"x").await.unwrap();
        assert_eq!(io.read(&mut [0u8; 1]).await.unwrap(), 1);
        assert!(IdleIo::new(tokio::io::empty(), Some(Duration::MAX)).timeout.is_none());
    }
}
