//! Connections: a bound on how many are open at once (one more is closed as soon as it is
//! accepted), so a client that opens sockets without end cannot exhaust the process's files.
//! The header read timeout is set on the HTTP builder in [`crate::serve`].

use axum_server::accept::Accept;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// An acceptor that admits at most `max` open connections, then hands them to `inner` (plain
/// TCP, or TLS).
#[derive(Clone, Debug)]
pub struct Limited<A> {
    slots: Arc<Semaphore>,
    inner: A,
}

impl<A> Limited<A> {
    pub fn new(max: usize, inner: A) -> Limited<A> {
        Limited {
            slots: Arc::new(Semaphore::new(max.max(1))),
            inner,
        }
    }
}

/// A stream that holds one of the connection slots until it is dropped.
pub struct Counted<I> {
    inner: I,
    _slot: OwnedSemaphorePermit,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = io::Result<T>> + Send>>;

impl<I, S, A> Accept<I, S> for Limited<A>
where
    I: Send + 'static,
    S: Send + 'static,
    A: Accept<Counted<I>, S> + Clone + Send + Sync + 'static,
    A::Future: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = BoxFuture<(A::Stream, A::Service)>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let slot = self.slots.clone().try_acquire_owned();
        let inner = self.inner.clone();
        Box::pin(async move {
            let Ok(slot) = slot else {
                tracing::warn!("connection refused: too many open connections");
                return Err(io::Error::other("too many open connections"));
            };
            inner
                .accept(
                    Counted {
                        inner: stream,
                        _slot: slot,
                    },
                    service,
                )
                .await
        })
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
