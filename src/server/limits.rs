//! What one call may take: a place among the calls served at once, time
//! up to the caller's deadline, and messages up to a size.
//!
//! [`LimitsLayer`] wraps every route:
//! - beyond `max_concurrent_requests` calls in flight (a stream counts
//!   until it ends), a call gets RESOURCE_EXHAUSTED at once instead of a
//!   place in a queue, so an overloaded replica answers quickly and the
//!   client can go elsewhere. Health checks are never refused: a probe
//!   must not fail because the replica is busy.
//! - a `grpc-timeout` becomes the deadline of the SQL the call runs (see
//!   [`crate::store::deadline`]); when it passes, the call answers
//!   DEADLINE_EXCEEDED, and a stream still running ends with it.
//! - a request message above `max_request_bytes` is refused with
//!   RESOURCE_EXHAUSTED, read from its length prefix before its body is
//!   buffered. gRPC's status table gives RESOURCE_EXHAUSTED for a message
//!   over a limit; tonic's own size checks answer OUT_OF_RANGE, which no
//!   handler here sends, so that code is rewritten on the way out.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
use tonic::{Code, Status, body::Body};
use tower::{Layer, Service};

use crate::{config::LimitsConfig, store::deadline};

/// Limits on calls and connections.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Calls served at once; more get RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Largest request message accepted, in bytes.
    pub max_request_bytes: usize,
    /// Largest response message sent, in bytes.
    pub max_response_bytes: usize,
    /// How often an idle connection is pinged (HTTP/2 PING).
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Age at which a connection is asked to go away (GOAWAY, calls in
    /// flight finish), so clients reconnect and spread over new replicas.
    /// `None`: connections live as long as their clients keep them. tonic
    /// applies it without the jitter gRPC recommends, and without a grace
    /// period: a stream still open keeps its aged connection until it ends.
    pub max_connection_age: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 256,
            max_request_bytes: 4 * 1024 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_connection_age: Some(Duration::from_secs(30 * 60)),
        }
    }
}

impl Limits {
    pub fn from_config(config: &LimitsConfig) -> Self {
        Self {
            max_concurrent_requests: config.max_concurrent_requests,
            max_request_bytes: config.max_request_bytes,
            max_response_bytes: config.max_response_bytes,
            keepalive_interval: config.keepalive_interval,
            keepalive_timeout: config.keepalive_timeout,
            max_connection_age: Some(config.max_connection_age).filter(|age| !age.is_zero()),
        }
    }
}

/// Calls under this path are never refused for load.
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

/// How much sooner than the caller's deadline we give up. tonic runs a
/// timer of its own for `grpc-timeout`, started a moment before ours, that
/// answers CANCELLED; ours must fire first so the caller hears
/// DEADLINE_EXCEEDED. Tokio's timers tick in milliseconds.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1);

#[derive(Clone)]
pub struct LimitsLayer {
    permits: Arc<Semaphore>,
    max_request_bytes: usize,
}

impl LimitsLayer {
    pub fn new(limits: &Limits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1))),
            max_request_bytes: limits.max_request_bytes,
        }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = LimitsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitsService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct LimitsService<S> {
    inner: S,
    layer: LimitsLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for LimitsService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if !is_grpc(request.headers()) {
            return Box::pin(std::future::ready(Ok(not_grpc())));
        }
        let permit = if request.uri().path().starts_with(HEALTH_PATH) {
            None
        } else {
            match self.layer.permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let refused = Status::resource_exhausted(
                        "too many calls in flight on this replica; retry with backoff",
                    );
                    return Box::pin(std::future::ready(Ok(refused.into_http())));
                }
            }
        };
        let cutoff = grpc_timeout(request.headers())
            .map(|timeout| Instant::now() + timeout.saturating_sub(DEADLINE_MARGIN));
        let max_request_bytes = self.layer.max_request_bytes;
        let request = request.map(|body| Body::new(RequestLimit::new(body, max_request_bytes)));
        // The clone that was polled ready serves this call (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let work = deadline::scope(cutoff, async move { inner.call(request).await });
            let response = match cutoff {
                Some(cutoff) => match tokio::time::timeout_at(cutoff, work).await {
                    Ok(response) => response?,
                    Err(_) => {
                        return Ok(
                            Status::deadline_exceeded("the call's deadline passed").into_http()
                        );
                    }
                },
                None => work.await?,
            };
            let (mut parts, body) = response.into_parts();
            size_limit_status(&mut parts.headers);
            let body = ResponseLimit {
                inner: body,
                _permit: permit,
                cutoff: cutoff.map(|cutoff| Box::pin(tokio::time::sleep_until(cutoff))),
                ended: false,
            };
            Ok(http::Response::from_parts(parts, Body::new(body)))
        })
    }
}

/// Whether a request says it is gRPC: `application/grpc`, alone or with
/// `+proto` or parameters. tonic serves any content type, so a JSON or
/// text body would otherwise be read as gRPC frames (and a gRPC frame sent
/// as text/plain be served).
fn is_grpc(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes();
    let prefix = b"application/grpc";
    value.len() >= prefix.len()
        && value[..prefix.len()].eq_ignore_ascii_case(prefix)
        && matches!(value.get(prefix.len()), None | Some(b'+' | b';'))
}

/// HTTP 415, as gRPC over HTTP/2 asks for another content type, with a
/// gRPC status too, for clients that read only that.
fn not_grpc() -> http::Response<Body> {
    let mut response =
        Status::invalid_argument("content-type must be application/grpc").into_http();
    *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
    response
}

/// The `grpc-timeout` of a request: up to 8 digits and a unit.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Rewrites tonic's OUT_OF_RANGE for a message over a size limit into
/// RESOURCE_EXHAUSTED, the code gRPC gives it.
fn size_limit_status(headers: &mut HeaderMap) {
    const OUT_OF_RANGE: &str = "11";
    if headers
        .get("grpc-status")
        .is_some_and(|code| code == OUT_OF_RANGE)
    {
        let code = (Code::ResourceExhausted as i32).to_string();
        headers.insert("grpc-status", HeaderValue::from_str(&code).expect("digits"));
    }
}

/// A request body that fails with RESOURCE_EXHAUSTED at the length prefix
/// of a message above the limit. Messages are framed as one flag byte and
/// a 4-byte big-endian length, then the message.
struct RequestLimit {
    inner: Body,
    max: usize,
    /// Bytes of the message being passed through still to come.
    remaining: u64,
    /// The length prefix read so far.
    prefix: [u8; 5],
    prefix_len: usize,
}

impl RequestLimit {
    fn new(inner: Body, max: usize) -> Self {
        Self {
            inner,
            max,
            remaining: 0,
            prefix: [0; 5],
            prefix_len: 0,
        }
    }

    /// Follows the framing through `data`; the first oversized message
    /// length, if any.
    fn scan(&mut self, data: &Bytes) -> Option<u64> {
        let mut data = data.clone();
        while data.has_remaining() {
            if self.remaining > 0 {
                let skip = self.remaining.min(data.remaining() as u64);
                data.advance(skip as usize);
                self.remaining -= skip;
                continue;
            }
            let take = (5 - self.prefix_len).min(data.remaining());
            data.copy_to_slice(&mut self.prefix[self.prefix_len..self.prefix_len + take]);
            self.prefix_len += take;
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let len = u32::from_be_bytes(self.prefix[1..].try_into().expect("4 bytes"));
                if u64::from(len) > self.max as u64 {
                    return Some(len.into());
                }
                self.remaining = len.into();
            }
        }
        None
    }
}

/// What both limited bodies give when polled: a frame, a failure the
/// client reads as a gRPC status, or the end.
type Polled = Poll<Option<Result<Frame<Bytes>, Status>>>;

impl http_body::Body for RequestLimit {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Some(len) = this.scan(data)
        {
            return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                "the request message has {len} bytes, more than the {} this server accepts",
                this.max
            )))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that holds the call's place until it ends, ends a
/// stream still waiting when the deadline passes, and gives a size-limit
/// failure its gRPC code.
struct ResponseLimit {
    inner: Body,
    _permit: Option<OwnedSemaphorePermit>,
    cutoff: Option<Pin<Box<Sleep>>>,
    ended: bool,
}

impl http_body::Body for ResponseLimit {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        // What is ready goes out first: the deadline only ends a stream
        // that is still waiting for its next message.
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(mut frame))) => {
                if let Some(trailers) = frame.trailers_mut() {
                    size_limit_status(trailers);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let Some(cutoff) = this.cutoff.as_mut() else {
                    return Poll::Pending;
                };
                ready!(cutoff.as_mut().poll(cx));
                this.ended = true;
                this.inner = Body::empty();
                let status = Status::deadline_exceeded("the call's deadline passed");
                let mut trailers = HeaderMap::new();
                trailers.insert(
                    "grpc-status",
                    HeaderValue::from_str(&(status.code() as i32).to_string()).expect("digits"),
                );
                trailers.insert(
                    "grpc-message",
                    HeaderValue::from_static("the call's deadline passed"),
                );
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_nonsense_is_ignored() {
        let timeout = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-timeout", HeaderValue::from_static(value));
            grpc_timeout(&headers)
        };
        assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout("4S"), Some(Duration::from_secs(4)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in ["", "m", "123456789m", "12x", "-1S", "1.5S", "S1"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn the_length_prefix_is_followed_across_chunks() {
        let mut limit = RequestLimit::new(Body::empty(), 10);
        let framed = |len: u32| {
            let mut bytes = vec![0u8];
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend(std::iter::repeat_n(7u8, len as usize));
            bytes
        };
        let mut stream = framed(10);
        stream.extend(framed(3));
        stream.extend(framed(11));
        // One byte at a time: prefixes and messages split everywhere.
        let mut found = None;
        for byte in stream {
            if let Some(len) = limit.scan(&Bytes::from(vec![byte])) {
                found = Some(len);
                break;
            }
        }
        assert_eq!(found, Some(11), "the third message is over the limit");

        let mut limit = RequestLimit::new(Body::empty(), 10);
        let mut stream = framed(10);
        stream.extend(framed(0));
        assert_eq!(limit.scan(&Bytes::from(stream)), None);
    }
}
