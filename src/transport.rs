//! A connection that sends the answers ready at one moment in one write.
//!
//! h2 hands each DATA frame longer than 256 bytes to the socket on its own
//! and flushes before it takes the next one, so every RecordConsent answer
//! cost a `writev` of its own, although the batch writer answers a whole
//! batch at once. `CoalescedWrites` keeps what h2 writes and, while more
//! keeps arriving, lets a flush pass without sending: the tasks still
//! answering calls add their frames to the same write.
//!
//! Built for h2 and only for it: its `poll_flush` may return Ready with
//! bytes still held. That is safe because h2 flushes again at the end of
//! every poll of its connection, and the deferring flush wakes that task;
//! a caller that takes Ready from a flush as "sent" must not use it.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Writes held beyond this go out at once: the buffer stays small and a
/// large export streams as before.
const HELD_BYTES: usize = 64 * 1024;

/// Held bytes go out at the latest at the flush after this many deferred
/// ones. h2 flushes before each large frame and at the end of each poll,
/// so this bounds both how many answers share a write and how many
/// scheduler rounds the first of them waits.
const MAX_DEFERRALS: u32 = 8;

pub struct CoalescedWrites<T> {
    inner: T,
    held: Vec<u8>,
    /// How much of `held` the socket has taken.
    sent: usize,
    /// How many flushes in a row let other tasks run first, and how much
    /// was held at the last of them.
    deferred: u32,
    held_when_deferred: usize,
}

impl<T> CoalescedWrites<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            held: Vec::new(),
            sent: 0,
            deferred: 0,
            held_when_deferred: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> CoalescedWrites<T> {
    /// Writes out everything held.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        if self.held.capacity() > HELD_BYTES {
            self.held.shrink_to(HELD_BYTES);
        }
        self.sent = 0;
        self.deferred = 0;
        self.held_when_deferred = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes; false when they are too many to
    /// hold at all and should go straight to the socket.
    fn poll_room_for(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.held.len() + len > HELD_BYTES {
            ready!(self.poll_send_held(cx))?;
        }
        Poll::Ready(Ok(len <= HELD_BYTES))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if !ready!(this.poll_room_for(cx, len))? {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for buf in bufs {
            this.held.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Hold on while frames keep arriving between flushes: more answers
        // are being written. Waking the task guarantees h2 another flush,
        // and the tasks already queued run before it.
        let growing = this.held.len() > this.held_when_deferred;
        if growing && this.held.len() < HELD_BYTES / 2 && this.deferred < MAX_DEFERRALS {
            this.deferred += 1;
            this.held_when_deferred = this.held.len();
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedWrites<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: Connected> Connected for CoalescedWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::Wake,
    };

    use super::*;

    /// A socket that keeps each write apart. A slow one takes at most 5
    /// bytes a call and refuses every other call, waking the writer as a
    /// real one would.
    #[derive(Default)]
    struct Socket {
        writes: Vec<Vec<u8>>,
        shut: bool,
        slow: bool,
        calls: usize,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.calls += 1;
            if this.slow && this.calls % 2 == 1 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = if this.slow {
                buf.len().min(5)
            } else {
                buf.len()
            };
            this.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().shut = true;
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn ready<T>(poll: Poll<io::Result<T>>) -> T {
        match poll {
            Poll::Ready(result) => result.expect("io"),
            Poll::Pending => panic!("pending"),
        }
    }

    #[test]
    fn frames_written_between_flushes_go_out_in_one_write() {
        let wakes = Arc::new(Wakes::default());
        let waker = wakes.clone().into();
        let mut cx = Context::from_waker(&waker);
        let mut connection = CoalescedWrites::new(Socket::default());
        let mut pinned = Pin::new(&mut connection);

        ready(pinned.as_mut().poll_write(&mut cx, b"first answer;"));
        ready(pinned.as_mut().poll_flush(&mut cx));
        assert!(
            pinned.inner.writes.is_empty(),
            "the first flush waits a round"
        );
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "and asks for that round");

        let parts = [io::IoSlice::new(b"second "), io::IoSlice::new(b"answer;")];
        ready(pinned.as_mut().poll_write_vectored(&mut cx, &parts));
        ready(pinned.as_mut().poll_flush(&mut cx));
        ready(pinned.as_mut().poll_flush(&mut cx));
        assert_eq!(
            pinned.inner.writes,
            [b"first answer;second answer;".to_vec()]
        );

        ready(pinned.as_mut().poll_flush(&mut cx));
        assert_eq!(
            pinned.inner.writes.len(),
            1,
            "nothing held, nothing written"
        );
    }

    #[test]
    fn a_steady_trickle_still_goes_out() {
        let waker = Arc::new(Wakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut connection = CoalescedWrites::new(Socket::default());
        let mut pinned = Pin::new(&mut connection);
        for _ in 0..MAX_DEFERRALS {
            ready(pinned.as_mut().poll_write(&mut cx, b"answer;"));
            ready(pinned.as_mut().poll_flush(&mut cx));
        }
        assert!(pinned.inner.writes.is_empty());
        ready(pinned.as_mut().poll_write(&mut cx, b"answer;"));
        ready(pinned.as_mut().poll_flush(&mut cx));
        assert_eq!(pinned.inner.writes.len(), 1);
        assert_eq!(
            pinned.inner.writes[0].len(),
            7 * (MAX_DEFERRALS as usize + 1)
        );
    }

    #[test]
    fn large_writes_and_shutdown_are_not_held() {
        let waker = Arc::new(Wakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut connection = CoalescedWrites::new(Socket::default());
        let mut pinned = Pin::new(&mut connection);

        ready(pinned.as_mut().poll_write(&mut cx, b"small;"));
        let large = vec![7u8; HELD_BYTES + 1];
        assert_eq!(
            ready(pinned.as_mut().poll_write(&mut cx, &large)),
            large.len()
        );
        assert_eq!(pinned.inner.writes, [b"small;".to_vec(), large]);

        ready(pinned.as_mut().poll_write(&mut cx, b"last;"));
        ready(pinned.as_mut().poll_shutdown(&mut cx));
        assert_eq!(pinned.inner.writes.last().unwrap(), b"last;");
        assert!(pinned.inner.shut);
    }

    #[test]
    fn partial_and_refused_writes_deliver_every_byte_in_order() {
        let waker = Arc::new(Wakes::default()).into();
        let mut cx = Context::from_waker(&waker);
        let mut connection = CoalescedWrites::new(Socket {
            slow: true,
            ..Socket::default()
        });
        let mut pinned = Pin::new(&mut connection);
        let mut expected = Vec::new();
        for n in 0..20 {
            let answer = format!("answer {n};");
            let parts = [
                io::IoSlice::new(b"head:"),
                io::IoSlice::new(answer.as_bytes()),
            ];
            let len = ready(pinned.as_mut().poll_write_vectored(&mut cx, &parts));
            assert_eq!(len, 5 + answer.len());
            expected.extend_from_slice(b"head:");
            expected.extend_from_slice(answer.as_bytes());
            let _ = pinned.as_mut().poll_flush(&mut cx);
        }
        let large = vec![b'x'; HELD_BYTES + 3];
        let mut written = 0;
        while written < large.len() {
            if let Poll::Ready(n) = pinned.as_mut().poll_write(&mut cx, &large[written..]) {
                written += n.unwrap();
            }
        }
        expected.extend_from_slice(&large);
        while pinned.as_mut().poll_flush(&mut cx).is_pending() || !pinned.held.is_empty() {}
        assert_eq!(pinned.inner.writes.concat(), expected);
    }
}
