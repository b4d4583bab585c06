//! An in-process webhook endpoint for end-to-end tests: a real HTTPS (or
//! plain HTTP) server on `127.0.0.1` that records every request it receives
//! and answers as the test scripted it, per path.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use test_support::{Reply, WebhookReceiver};
//!
//! let receiver = WebhookReceiver::start_https().await?;
//! // Trust `receiver.ca_pem()` in the client, deliver to `receiver.url("/a")`.
//! receiver.respond("/a", [Reply::status(500), Reply::status(500)]); // then 200 `ok`
//! receiver.set_default("/slow", Reply::hang());
//! let arrived = receiver.wait_for_requests(3, Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow};
use axum::body::{Body, to_bytes};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::tls::{TestCa, Validity};

/// A webhook endpoint listening on `127.0.0.1:<random port>`.
///
/// Dropping it stops the server: the listener closes and every connection
/// still open (hanging ones included) is cut.
#[derive(Debug)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    /// The PEM of the CA that signed the server certificate; `None` for HTTP.
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    accept_loop: JoinHandle<()>,
    /// Never sends; dropping it is the stop signal for every task the server
    /// spawned, including HTTP/2 streams that hyper spawns outside our reach.
    _stop: watch::Sender<()>,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: Method,
    /// The path with its query, as sent: `/hooks/a?x=1`.
    pub path_and_query: String,
    pub version: Version,
    pub headers: HeaderMap,
    /// The body, byte for byte.
    pub body: Bytes,
    /// When the request head arrived (before the body was read).
    pub received_at: Instant,
    /// The same moment on the wall clock.
    pub received_at_system: SystemTime,
}

impl ReceivedRequest {
    /// The path without its query: the key replies are scripted by.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path)
    }

    /// The first value of header `name`, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (invalid UTF-8 replaced), for assertions and messages.
    pub fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// How the receiver answers one request. Built with [`Reply::status`],
/// [`Reply::ok`], [`Reply::hang`] or [`Reply::disconnect`], refined with
/// [`header`](Reply::header), [`body`](Reply::body) and [`after`](Reply::after).
#[derive(Debug, Clone)]
pub struct Reply {
    action: Action,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum Action {
    Respond {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    },
    Hang,
    Disconnect,
}

impl Reply {
    /// The default answer: `200` with body `ok`.
    pub fn ok() -> Self {
        Self::status(200).body("ok")
    }

    /// Answer with `status` and an empty body (`Reply::status(410)` is "gone").
    ///
    /// # Panics
    /// If `status` is not a valid HTTP status code (100..=999): a bug in the test.
    pub fn status(status: u16) -> Self {
        let status = StatusCode::from_u16(status)
            .unwrap_or_else(|_| panic!("{status} is not an HTTP status code"));
        Self {
            action: Action::Respond {
                status,
                headers: Vec::new(),
                body: Bytes::new(),
            },
            delay: Duration::ZERO,
        }
    }

    /// Never answer: the connection stays open until the client gives up or
    /// the receiver is dropped.
    pub fn hang() -> Self {
        Self {
            action: Action::Hang,
            delay: Duration::ZERO,
        }
    }

    /// Close the connection (HTTP/2: reset the stream) without answering.
    pub fn disconnect() -> Self {
        Self {
            action: Action::Disconnect,
            delay: Duration::ZERO,
        }
    }

    /// Add a response header (repeatable, e.g. `retry-after`, `location`).
    /// Ignored by `hang` and `disconnect`.
    ///
    /// # Panics
    /// If `name` or `value` is not a valid header name or value: a bug in the test.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::try_from(name)
            .unwrap_or_else(|_| panic!("{name:?} is not a valid header name"));
        let value = HeaderValue::try_from(value)
            .unwrap_or_else(|_| panic!("{value:?} is not a valid header value"));
        if let Action::Respond { headers, .. } = &mut self.action {
            headers.push((name, value));
        }
        self
    }

    /// Set the response body. Ignored by `hang` and `disconnect`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        if let Action::Respond { body: b, .. } = &mut self.action {
            *b = body.into();
        }
        self
    }

    /// Wait `delay` after the request arrived before acting.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

impl Default for Reply {
    fn default() -> Self {
        Self::ok()
    }
}

/// State shared by the handle and the connection tasks.
#[derive(Debug)]
struct Shared {
    /// Every request so far, in arrival order; a watch channel so waiters
    /// wake on each arrival instead of polling.
    log: watch::Sender<Vec<ReceivedRequest>>,
    script: Mutex<Script>,
}

#[derive(Debug, Default)]
struct Script {
    /// Used when a path has neither queued replies nor a default.
    global_default: Reply,
    paths: HashMap<String, PathScript>,
}

#[derive(Debug, Default)]
struct PathScript {
    queue: VecDeque<Reply>,
    default: Option<Reply>,
}

impl Script {
    fn next_reply(&mut self, path: &str) -> Reply {
        if let Some(script) = self.paths.get_mut(path) {
            if let Some(reply) = script.queue.pop_front() {
                return reply;
            }
            if let Some(reply) = &script.default {
                return reply.clone();
            }
        }
        self.global_default.clone()
    }
}

impl Shared {
    fn script(&self) -> MutexGuard<'_, Script> {
        // A panic while holding this lock cannot leave the script half-changed
        // in a way that matters to a test, so poisoning is ignored.
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WebhookReceiver {
    /// Start an HTTPS receiver (HTTP/1.1 and HTTP/2 by ALPN) whose
    /// certificate, for `localhost`, `127.0.0.1` and `::1`, is signed by a
    /// fresh CA: see [`ca_pem`](Self::ca_pem).
    pub async fn start_https() -> anyhow::Result<Self> {
        Self::start_https_at(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// As [`start_https`](Self::start_https), listening on `addr`: another
    /// loopback address stands for a public host in tests that resolve
    /// names (its certificate is also for [`crate::tls::TEST_HOST_NAME`]).
    pub async fn start_https_at(addr: SocketAddr) -> anyhow::Result<Self> {
        let (ca_pem, config) = tls_config()?;
        Self::start(addr, Some(ca_pem), Some(TlsAcceptor::from(config))).await
    }

    /// Start a plain HTTP receiver (HTTP/1.1, and HTTP/2 with prior knowledge).
    pub async fn start_http() -> anyhow::Result<Self> {
        Self::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), None, None).await
    }

    async fn start(
        addr: SocketAddr,
        ca_pem: Option<String>,
        tls: Option<TlsAcceptor>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the webhook receiver to {addr}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let shared = Arc::new(Shared {
            log: watch::Sender::new(Vec::new()),
            script: Mutex::default(),
        });
        let (stop, stopped) = watch::channel(());
        let executor = ScopedExecutor { stopped };
        let accept_loop = tokio::spawn(accept_loop(listener, tls, shared.clone(), executor));
        Ok(Self {
            addr,
            ca_pem,
            shared,
            accept_loop,
            _stop: stop,
        })
    }

    /// The address it listens on (`127.0.0.1` unless started elsewhere).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA to trust for this receiver; `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// `https://127.0.0.1:PORT{path}` (`http://` for plain HTTP).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme(), self.addr, slash(path))
    }

    /// `https://localhost:PORT{path}`: the name the certificate is for. Only
    /// `127.0.0.1` listens, so a client resolving `localhost` to `::1` first
    /// must fall back to IPv4 (hyper-util's connector does).
    pub fn localhost_url(&self, path: &str) -> String {
        format!(
            "{}://localhost:{}{}",
            self.scheme(),
            self.addr.port(),
            slash(path)
        )
    }

    fn scheme(&self) -> &'static str {
        if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Queue `replies` for requests to `path` (without query): they are used
    /// in order, one per request, before the path's default.
    pub fn respond(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut script = self.shared.script();
        let entry = script.paths.entry(path.to_owned()).or_default();
        entry.queue.extend(replies);
    }

    /// The reply for requests to `path` once its queue is empty.
    pub fn set_default(&self, path: &str, reply: Reply) {
        let mut script = self.shared.script();
        script.paths.entry(path.to_owned()).or_default().default = Some(reply);
    }

    /// The reply for any path with nothing scripted ([`Reply::ok`] at first).
    pub fn set_global_default(&self, reply: Reply) {
        self.shared.script().global_default = reply;
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.log.borrow().clone()
    }

    /// The requests received so far whose path (without query) is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<ReceivedRequest> {
        matching(&self.shared.log.borrow(), Some(path))
    }

    /// Wait until at least `n` requests have arrived, then return them all;
    /// an error saying what did arrive if that takes longer than `timeout`.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedRequest>> {
        self.wait_for(None, n, timeout).await
    }

    /// Like [`wait_for_requests`](Self::wait_for_requests), counting (and
    /// returning) only requests to `path`.
    pub async fn wait_for_requests_to(
        &self,
        path: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedRequest>> {
        self.wait_for(Some(path), n, timeout).await
    }

    async fn wait_for(
        &self,
        path: Option<&str>,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedRequest>> {
        let count = |log: &[ReceivedRequest]| {
            log.iter()
                .filter(|r| path.is_none_or(|p| r.path() == p))
                .count()
        };
        let mut log = self.shared.log.subscribe();
        let waited = tokio::time::timeout(timeout, log.wait_for(|log| count(log) >= n)).await;
        match waited {
            Ok(Ok(log)) => Ok(matching(&log, path)),
            // The sender lives in `self.shared`, so it cannot be gone while
            // `self` is borrowed; reported rather than assumed all the same.
            Ok(Err(_)) => Err(anyhow!("the webhook receiver's request log closed")),
            Err(_) => {
                let log = self.shared.log.borrow();
                let seen: Vec<String> = log
                    .iter()
                    .map(|r| format!("{} {}", r.method, r.path_and_query))
                    .collect();
                Err(anyhow!(
                    "expected at least {n} request(s){} within {timeout:?}, but {} arrived \
                     (all requests: {seen:?})",
                    path.map(|p| format!(" to {p}")).unwrap_or_default(),
                    count(&log),
                ))
            }
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        // Closes the listener now; `_stop` being dropped ends the connections.
        self.accept_loop.abort();
    }
}

fn slash(path: &str) -> Cow<'_, str> {
    if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    }
}

fn matching(log: &[ReceivedRequest], path: Option<&str>) -> Vec<ReceivedRequest> {
    log.iter()
        .filter(|r| path.is_none_or(|p| r.path() == p))
        .cloned()
        .collect()
}

/// A fresh CA and a server certificate signed by it; returns the CA's PEM
/// and a server config presenting the certificate chain.
fn tls_config() -> anyhow::Result<(String, Arc<ServerConfig>)> {
    let ca = TestCa::new()?;
    let config = ca.server_config(Validity::Valid, &[b"h2", b"http/1.1"])?;
    Ok((ca.pem().to_owned(), config))
}

/// Spawns tasks that end when the receiver is dropped, so that nothing it
/// started (a hanging HTTP/2 stream, say) outlives it.
#[derive(Debug, Clone)]
struct ScopedExecutor {
    stopped: watch::Receiver<()>,
}

impl ScopedExecutor {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut stopped = self.stopped.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = task => {}
                // Nothing is ever sent: this resolves when the sender drops.
                _ = stopped.changed() => {}
            }
        });
    }
}

impl<F> hyper::rt::Executor<F> for ScopedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.spawn(async move {
            future.await;
        });
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    executor: ScopedExecutor,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => executor.spawn(serve_connection(
                stream,
                tls.clone(),
                shared.clone(),
                executor.clone(),
            )),
            // Typically out of file descriptors: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    executor: ScopedExecutor,
) {
    // Small request/response exchanges: do not let Nagle delay them.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| handle(shared.clone(), request));
    let builder = auto::Builder::new(executor);
    // Errors here are the peer going away or speaking nonsense (a failed
    // handshake, a malformed request); the connection is simply dropped.
    let _ = match tls {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => {
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            }
            Err(_) => return,
        },
        None => {
            builder
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
    };
}

/// Records the request, then carries out the next scripted reply for its path.
async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, std::io::Error> {
    let received_at = Instant::now();
    let received_at_system = SystemTime::now();
    let (parts, body) = request.into_parts();
    let body = to_bytes(Body::new(body), usize::MAX)
        .await
        .map_err(|e| std::io::Error::other(format!("reading the request body: {e}")))?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let recorded = ReceivedRequest {
        method: parts.method,
        path_and_query,
        version: parts.version,
        headers: parts.headers,
        body,
        received_at,
        received_at_system,
    };
    let reply = shared.script().next_reply(recorded.path());
    // Recorded before any delay or hang, so a test can see the request arrive.
    shared.log.send_modify(|log| log.push(recorded));

    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    match reply.action {
        Action::Respond {
            status,
            headers,
            body,
        } => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            for (name, value) in headers {
                response.headers_mut().append(name, value);
            }
            Ok(response)
        }
        Action::Hang => std::future::pending().await,
        // An error from the service makes hyper drop the connection (HTTP/1)
        // or reset the stream (HTTP/2) without a response.
        Action::Disconnect => Err(std::io::Error::other("scripted disconnect")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use hyper::client::conn::{http1, http2};
    use hyper_util::rt::TokioExecutor;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, RootCertStore};
    use tokio_rustls::TlsConnector;

    const DEADLINE: Duration = Duration::from_secs(5);

    /// A client config trusting exactly the receiver's CA.
    fn client_config(ca_pem: &str, alpn: &[u8]) -> anyhow::Result<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let mut config =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(config)
    }

    async fn tls_stream(
        addr: SocketAddr,
        ca_pem: &str,
        server_name: &str,
        alpn: &[u8],
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let config = client_config(ca_pem, alpn)?;
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(server_name.to_owned())?;
        Ok(TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?)
    }

    /// One HTTP/1.1 request on a fresh connection to the receiver (TLS when
    /// it has a CA, trusting only that CA).
    async fn send(
        receiver: &WebhookReceiver,
        request: Request<Body>,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        send_to(receiver.addr(), receiver.ca_pem(), request).await
    }

    async fn send_to(
        addr: SocketAddr,
        ca_pem: Option<&str>,
        request: Request<Body>,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        let response = match ca_pem {
            Some(ca) => {
                let stream = tls_stream(addr, ca, "localhost", b"http/1.1").await?;
                exchange_h1(TokioIo::new(stream), request).await?
            }
            None => {
                let stream = TcpStream::connect(addr).await?;
                exchange_h1(TokioIo::new(stream), request).await?
            }
        };
        let (parts, body) = response.into_parts();
        Ok((
            parts.status,
            parts.headers,
            to_bytes(body, usize::MAX).await?,
        ))
    }

    async fn exchange_h1<T>(io: T, request: Request<Body>) -> anyhow::Result<Response<Body>>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, connection) = http1::handshake(io).await?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        Ok(response.map(Body::new))
    }

    fn post(path: &str, body: &'static [u8]) -> Request<Body> {
        Request::post(path)
            .header("host", "localhost")
            .body(Body::from(body))
            .expect("a valid request")
    }

    async fn status_of(receiver: &WebhookReceiver, path: &str) -> anyhow::Result<u16> {
        let (status, _, _) = send(receiver, post(path, b"{}")).await?;
        Ok(status.as_u16())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn https_request_trusting_only_the_ca_is_recorded_exactly() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_https().await?;
        assert!(receiver.url("/x").starts_with("https://127.0.0.1:"));
        assert_eq!(
            receiver.localhost_url("x"),
            format!("https://localhost:{}/x", receiver.addr().port())
        );
        let body: &'static [u8] = b"{\"event\":\"paid\"}\xff\x00raw";
        let request = Request::post("/hooks/a?attempt=1")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("x-signature", "v1=abc")
            .header("x-multi", "one")
            .header("x-multi", "two")
            .body(Body::from(body))?;
        let before = Instant::now();
        let (status, _, response_body) = send(&receiver, request).await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&response_body[..], b"ok");

        let got = receiver.wait_for_requests(1, DEADLINE).await?;
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path_and_query, "/hooks/a?attempt=1");
        assert_eq!(r.path(), "/hooks/a");
        assert_eq!(r.version, Version::HTTP_11);
        assert_eq!(&r.body[..], body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-signature"), Some("v1=abc"));
        let multi: Vec<_> = r.headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
        assert!(r.received_at >= before);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn https_serves_http2_by_alpn_on_the_ip_address() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_https().await?;
        let ca = receiver.ca_pem().context("an https receiver has a CA")?;
        // The IP SAN: the server name is 127.0.0.1, not localhost.
        let stream = tls_stream(receiver.addr(), ca, "127.0.0.1", b"h2").await?;
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, connection) =
            http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender
            .send_request(Request::post(receiver.url("/h2")).body(Body::from("hi"))?)
            .await?;
        assert_eq!(response.status(), StatusCode::OK);

        let got = receiver.wait_for_requests_to("/h2", 1, DEADLINE).await?;
        assert_eq!(got[0].version, Version::HTTP_2);
        assert_eq!(got[0].body_text(), "hi");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_trusting_another_ca_is_refused() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_https().await?;
        let other = WebhookReceiver::start_https().await?;
        let wrong_ca = other.ca_pem().context("an https receiver has a CA")?;
        let handshake = tls_stream(receiver.addr(), wrong_ca, "localhost", b"http/1.1").await;
        assert!(handshake.is_err(), "a certificate from an untrusted CA");
        assert!(receiver.requests().is_empty());
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_replies_are_used_in_order_then_the_default() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_http().await?;
        assert!(receiver.ca_pem().is_none());
        assert!(receiver.url("/q").starts_with("http://127.0.0.1:"));
        receiver.respond(
            "/q",
            [
                Reply::status(500),
                Reply::status(429).header("retry-after", "2"),
            ],
        );
        receiver.respond(
            "/q",
            [Reply::status(302).header("location", "https://10.0.0.1/x")],
        );

        let (status, _, _) = send(&receiver, post("/q", b"1")).await?;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (status, headers, _) = send(&receiver, post("/q", b"2")).await?;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "2");
        let (status, headers, _) = send(&receiver, post("/q", b"3")).await?;
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(headers["location"], "https://10.0.0.1/x");
        let (status, _, body) = send(&receiver, post("/q", b"4")).await?;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));

        let bodies: Vec<_> = receiver
            .requests_to("/q")
            .iter()
            .map(|r| r.body_text().into_owned())
            .collect();
        assert_eq!(bodies, ["1", "2", "3", "4"]);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_are_per_path_with_a_global_fallback() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_https().await?;
        receiver.set_global_default(Reply::status(503));
        receiver.set_default("/gone", Reply::status(410));
        receiver.respond("/a", [Reply::status(500)]);
        receiver.set_default("/a", Reply::status(201).body("created"));

        assert_eq!(status_of(&receiver, "/gone").await?, 410);
        assert_eq!(status_of(&receiver, "/gone").await?, 410);
        assert_eq!(status_of(&receiver, "/a").await?, 500);
        let (status, _, body) = send(&receiver, post("/a?x=1", b"")).await?;
        assert_eq!((status.as_u16(), &body[..]), (201, &b"created"[..]));
        assert_eq!(status_of(&receiver, "/other").await?, 503);
        assert_eq!(receiver.requests().len(), 5);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hanging_path_is_recorded_and_does_not_block_another() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_https().await?;
        receiver.set_default("/hang", Reply::hang());

        let (addr, ca) = (receiver.addr(), receiver.ca_pem().map(str::to_owned));
        let hanging =
            tokio::spawn(async move { send_to(addr, ca.as_deref(), post("/hang", b"h")).await });
        let arrived = receiver.wait_for_requests_to("/hang", 1, DEADLINE).await?;
        assert_eq!(arrived[0].body_text(), "h");

        let fast = tokio::time::timeout(DEADLINE, status_of(&receiver, "/fast")).await??;
        assert_eq!(fast, 200);
        assert!(!hanging.is_finished(), "the hanging request got an answer");

        // Dropping the receiver cuts the hanging connection: the client sees
        // an error rather than waiting forever.
        drop(receiver);
        let outcome = tokio::time::timeout(DEADLINE, hanging).await??;
        assert!(outcome.is_err(), "a dropped receiver answered: {outcome:?}");
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delayed_reply_arrives_after_its_delay() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_http().await?;
        let delay = Duration::from_millis(150);
        receiver.respond("/slow", [Reply::status(200).after(delay)]);
        assert_eq!(status_of(&receiver, "/slow").await?, 200);
        let answered = Instant::now();
        // Recorded on arrival, answered no sooner than `delay` later.
        let got = receiver.requests();
        assert!(answered - got[0].received_at >= delay);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scripted_disconnect_gives_no_response() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_https().await?;
        receiver.respond("/cut", [Reply::disconnect()]);
        assert!(send(&receiver, post("/cut", b"")).await.is_err());
        assert_eq!(status_of(&receiver, "/cut").await?, 200);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_times_out_with_what_arrived() -> anyhow::Result<()> {
        let receiver = WebhookReceiver::start_http().await?;
        let timeout = Duration::from_millis(300);
        let err = receiver
            .wait_for_requests(1, timeout)
            .await
            .expect_err("nothing was sent");
        assert!(err.to_string().contains("but 0 arrived"), "{err}");

        assert_eq!(status_of(&receiver, "/b").await?, 200);
        let err = receiver
            .wait_for_requests_to("/a", 1, timeout)
            .await
            .expect_err("nothing was sent to /a");
        let message = err.to_string();
        assert!(message.contains("to /a") && message.contains("but 0 arrived"));
        assert!(message.contains("POST /b"), "{message}");
        Ok(())
    }
}
