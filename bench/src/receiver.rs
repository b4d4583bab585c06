//! The fastest honest webhook endpoint we can write: hyper, HTTP/1.1
//! keep-alive, answers 204 at once (or never, under `/hang/`), and notes
//! each request's `webhook-id` and arrival time. It runs in the bench
//! process, on loopback, over plain HTTP or over TLS (rustls, a
//! certificate from a CA the bench makes), and counts the connections it
//! accepts and the TLS handshakes it completes, so that a scenario can say
//! how many requests reused a connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::HandshakeKind;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct Receiver {
    arrivals: Mutex<Vec<(Uuid, Instant)>>,
    count: AtomicUsize,
    addr: Mutex<Option<SocketAddr>>,
    tls: AtomicBool,
    connections: Connections,
}

/// What the receiver counted of its connections since the last
/// [`Receiver::take_connections`].
#[derive(Debug, Default)]
struct Connections {
    accepted: AtomicUsize,
    full_handshakes: AtomicUsize,
    resumed_handshakes: AtomicUsize,
    failed_handshakes: AtomicUsize,
}

/// The receiver's connections over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCount {
    /// TCP connections accepted.
    pub accepted: usize,
    /// TLS handshakes completed: full ones, and resumptions of an earlier
    /// session (cheaper: no certificate is sent or checked).
    pub full_handshakes: usize,
    pub resumed_handshakes: usize,
    /// TLS handshakes that failed: a client that gave up, or distrusted us.
    pub failed_handshakes: usize,
}

impl ConnectionCount {
    pub fn handshakes(&self) -> usize {
        self.full_handshakes + self.resumed_handshakes
    }
}

impl Receiver {
    /// Serves on the calling runtime (the bench's, one worker per core).
    pub async fn start() -> anyhow::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Arc::new(Self::default());
        *receiver.addr.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener.local_addr()?);
        tokio::spawn(receiver.clone().serve(listener, None));
        Ok(receiver)
    }

    /// Serves HTTPS on the calling runtime with `config` (HTTP/1.1: the
    /// configuration's ALPN should offer nothing else, since the receiver
    /// speaks nothing else).
    pub async fn start_tls(config: Arc<ServerConfig>) -> anyhow::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Arc::new(Self::default());
        *receiver.addr.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener.local_addr()?);
        receiver.tls.store(true, Ordering::Relaxed);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(receiver.clone().serve(listener, Some(acceptor)));
        Ok(receiver)
    }

    /// Serves on a thread of its own, like the one-thread server of the
    /// issue's reference ceiling. The thread lives as long as the bench
    /// process (a bench, not a library: nothing stops it).
    pub fn start_on_one_thread() -> anyhow::Result<Arc<Self>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let receiver = Arc::new(Self::default());
        *receiver.addr.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener.local_addr()?);
        let listener = {
            let _inside = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let serving = receiver.clone();
        std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || runtime.block_on(serving.serve(listener, None)))?;
        Ok(receiver)
    }

    async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener, tls: Option<TlsAcceptor>) {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            self.connections.accepted.fetch_add(1, Ordering::Relaxed);
            let receiver = self.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => receiver.serve_connection(stream).await,
                    Some(acceptor) => receiver.serve_tls(&acceptor, stream).await,
                }
            });
        }
    }

    /// Completes the TLS handshake on `stream`, counting it, then serves
    /// the connection.
    async fn serve_tls(self: Arc<Self>, acceptor: &TlsAcceptor, stream: tokio::net::TcpStream) {
        let counts = &self.connections;
        let Ok(stream) = acceptor.accept(stream).await else {
            counts.failed_handshakes.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let counter = match stream.get_ref().1.handshake_kind() {
            Some(HandshakeKind::Resumed) => &counts.resumed_handshakes,
            _ => &counts.full_handshakes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.serve_connection(stream).await;
    }

    async fn serve_connection<S>(self: Arc<Self>, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = service_fn(move |request| self.clone().answer(request));
        // A peer that goes away mid-request is no concern of the bench's.
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    async fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Empty<Bytes>>, hyper::Error> {
        let arrived = Instant::now();
        let path = request.uri().path();
        let hang = path.starts_with("/hang/");
        // Endpoints that say "slow down" (429, retry after a second) and
        // endpoints that fail everything (500).
        let status = if path.starts_with("/throttle/") {
            StatusCode::TOO_MANY_REQUESTS
        } else if path.starts_with("/fail/") {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::NO_CONTENT
        };
        let id = request
            .headers()
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::try_parse(v).ok());
        // Read the body, as a real receiver would.
        let _ = request.into_body().collect().await?;
        if let Some(id) = id {
            self.arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id, arrived));
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        if hang {
            std::future::pending::<()>().await;
        }
        let mut response = Response::new(Empty::new());
        *response.status_mut() = status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
        }
        Ok(response)
    }

    pub fn url(&self, path: &str) -> String {
        let addr = self
            .addr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expect("bound at start");
        format!("{}://{addr}{path}", self.scheme())
    }

    /// A URL of this receiver under host name `host` (which must resolve
    /// to its address for whoever calls it).
    pub fn url_at(&self, host: &str, path: &str) -> String {
        format!("{}://{host}:{}{path}", self.scheme(), self.addr().port())
    }

    fn scheme(&self) -> &'static str {
        if self.tls.load(Ordering::Relaxed) {
            "https"
        } else {
            "http"
        }
    }

    /// Takes the connection counts so far, leaving them at zero.
    pub fn take_connections(&self) -> ConnectionCount {
        let take = |counter: &AtomicUsize| counter.swap(0, Ordering::Relaxed);
        let counts = &self.connections;
        ConnectionCount {
            accepted: take(&counts.accepted),
            full_handshakes: take(&counts.full_handshakes),
            resumed_handshakes: take(&counts.resumed_handshakes),
            failed_handshakes: take(&counts.failed_handshakes),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expect("bound at start")
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Takes the arrivals noted so far, leaving none.
    pub fn take(&self) -> Vec<(Uuid, Instant)> {
        self.count.store(0, Ordering::Relaxed);
        std::mem::take(&mut *self.arrivals.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until every one of `ids` has arrived, or `limit` passed;
    /// answers whether they all came. (Counting arrivals is not enough when
    /// other traffic, such as to hanging endpoints, arrives too.)
    pub async fn wait_for_ids(
        &self,
        ids: &std::collections::HashSet<Uuid>,
        limit: Duration,
    ) -> bool {
        let deadline = Instant::now() + limit;
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        loop {
            let arrived = {
                let arrivals = self.arrivals.lock().unwrap_or_else(|p| p.into_inner());
                let seen: std::collections::HashSet<&Uuid> =
                    arrivals.iter().map(|(id, _)| id).collect();
                ids.iter().all(|id| seen.contains(id))
            };
            if arrived {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            ticks.tick().await;
        }
    }

    /// Waits until `n` arrivals were noted, or `limit` passed; answers
    /// whether they all came.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        while self.count() < n {
            if Instant::now() > deadline {
                return false;
            }
            ticks.tick().await;
        }
        true
    }
}
