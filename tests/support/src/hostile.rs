//! Endpoints that misbehave the way real servers and attackers do, each on
//! its own loopback port behind TLS from a test CA: answers that trickle
//! or never end, invalid HTTP, a connection closed mid-answer, 100 MB,
//! certificates that must not be trusted, and a server that speaks only
//! HTTP/2. Each counts the connections it accepted.
//!
//! They run on a thread of their own at idle priority (`SCHED_IDLE`): on
//! a machine shared with the service under test, their own CPU (TLS,
//! writing endless answers) is spent only when the service's is not
//! needed, so what a test measures of the service is its own cost of
//! facing them, not theirs.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::tls::{TestCa, Validity};

/// One way to misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hostile {
    /// The answer one byte every 100 ms: a status line, then a header
    /// that never ends.
    Trickle,
    /// A status line, then header lines without end, as fast as read.
    EndlessHeaders,
    /// `500` with a chunked body without end.
    EndlessBody,
    /// Bytes that are not HTTP.
    NotHttp,
    /// Half a status line, then the connection closes.
    ClosesMidAnswer,
    /// `500` with a 100 MB body.
    HundredMegabytes,
    /// A certificate that expired in 2020.
    ExpiredCertificate,
    /// A certificate for another host name.
    WrongHostCertificate,
    /// TLS that offers only `h2`, answering 204: not hostile, only rare.
    Http2Only,
}

impl Hostile {
    pub const ALL: [Hostile; 9] = [
        Hostile::Trickle,
        Hostile::EndlessHeaders,
        Hostile::EndlessBody,
        Hostile::NotHttp,
        Hostile::ClosesMidAnswer,
        Hostile::HundredMegabytes,
        Hostile::ExpiredCertificate,
        Hostile::WrongHostCertificate,
        Hostile::Http2Only,
    ];
}

type Endpoints = BTreeMap<Hostile, (SocketAddr, Arc<AtomicUsize>)>;

/// Every [`Hostile`] endpoint, running until dropped.
#[derive(Debug)]
pub struct HostileEndpoints {
    ca_pem: String,
    endpoints: Endpoints,
    /// Dropping it ends the endpoints' thread.
    _stop: oneshot::Sender<()>,
}

impl HostileEndpoints {
    pub async fn start() -> anyhow::Result<Self> {
        let (ready, started) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("hostile-endpoints".into())
            .spawn(move || match idle_runtime() {
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
                Ok(runtime) => runtime.block_on(async move {
                    match listen().await {
                        Ok((ca_pem, endpoints, tasks)) => {
                            if ready.send(Ok((ca_pem, endpoints))).is_ok() {
                                let _ = stopped.await;
                            }
                            drop(tasks);
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                }),
            })
            .context("starting the hostile endpoints' thread")?;
        let (ca_pem, endpoints) = started
            .await
            .context("the hostile endpoints' thread ended")??;
        Ok(Self {
            ca_pem,
            endpoints,
            _stop: stop,
        })
    }

    /// The CA that signed every certificate here.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `https://127.0.0.1:<port>/<path>` of one endpoint.
    pub fn url(&self, hostile: Hostile, path: &str) -> String {
        format!(
            "https://{}/{}",
            self.endpoints[&hostile].0,
            path.trim_start_matches('/')
        )
    }

    /// How many connections the endpoint accepted.
    pub fn connections(&self, hostile: Hostile) -> usize {
        self.endpoints[&hostile].1.load(Ordering::Relaxed)
    }
}

/// A runtime on this thread, which is moved to `SCHED_IDLE` first (with
/// util-linux's `chrt`: the standard library cannot, and this crate has
/// no unsafe code).
fn idle_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let me = std::fs::read_link("/proc/thread-self").context("finding this thread's id")?;
    let tid = me
        .file_name()
        .and_then(|name| name.to_str())
        .context("reading this thread's id")?
        .to_owned();
    let status = std::process::Command::new("chrt")
        .args(["--idle", "--pid", "0", &tid])
        .status()
        .context("running chrt (util-linux)")?;
    anyhow::ensure!(status.success(), "chrt --idle failed: {status}");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the hostile endpoints' runtime")
}

/// Binds and serves every endpoint on the current runtime.
async fn listen() -> anyhow::Result<(String, Endpoints, JoinSet<()>)> {
    let ca = TestCa::new()?;
    let mut tasks = JoinSet::new();
    let mut endpoints = BTreeMap::new();
    for hostile in Hostile::ALL {
        let (validity, alpn): (_, &[&[u8]]) = match hostile {
            Hostile::ExpiredCertificate => (Validity::Expired, &[b"http/1.1"]),
            Hostile::WrongHostCertificate => (Validity::WrongHost, &[b"http/1.1"]),
            Hostile::Http2Only => (Validity::Valid, &[b"h2"]),
            _ => (Validity::Valid, &[b"http/1.1"]),
        };
        let tls = TlsAcceptor::from(ca.server_config(validity, alpn)?);
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding a hostile endpoint")?;
        let accepted = Arc::new(AtomicUsize::new(0));
        endpoints.insert(hostile, (listener.local_addr()?, accepted.clone()));
        tasks.spawn(serve(listener, tls, hostile, accepted));
    }
    Ok((ca.pem().to_owned(), endpoints, tasks))
}

async fn serve(
    listener: TcpListener,
    tls: TlsAcceptor,
    hostile: Hostile,
    accepted: Arc<AtomicUsize>,
) {
    let mut connections = JoinSet::new();
    while let Ok((tcp, _)) = listener.accept().await {
        accepted.fetch_add(1, Ordering::Relaxed);
        let tls = tls.clone();
        connections.spawn(async move {
            // A refused handshake (the certificate cases) ends here.
            if let Ok(stream) = tls.accept(tcp).await {
                let _ = misbehave(stream, hostile).await;
            }
        });
    }
}

async fn misbehave<S>(mut stream: S, hostile: Hostile) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if hostile == Hostile::Http2Only {
        let service = service_fn(|_request| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(http_body_util::Empty::<Bytes>::new())
                    .expect("a static response"),
            )
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await;
        return Ok(());
    }
    read_head(&mut stream).await?;
    match hostile {
        Hostile::Trickle => {
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            let head = b"HTTP/1.1 200 OK\r\nX-Slow: ".iter();
            for byte in head.chain(std::iter::repeat(&b'a')) {
                ticks.tick().await;
                stream.write_all(&[*byte]).await?;
                stream.flush().await?;
            }
        }
        Hostile::EndlessHeaders => {
            stream.write_all(b"HTTP/1.1 200 OK\r\n").await?;
            let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
            loop {
                stream.write_all(line.as_bytes()).await?;
            }
        }
        Hostile::EndlessBody => {
            stream
                .write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n",
                )
                .await?;
            let chunk = format!("4000\r\n{}\r\n", "b".repeat(0x4000));
            loop {
                stream.write_all(chunk.as_bytes()).await?;
            }
        }
        Hostile::NotHttp => {
            stream
                .write_all(b"220 smtp.example.com ESMTP ready\r\n\r\n")
                .await?;
            stream.flush().await?;
        }
        Hostile::ClosesMidAnswer => {
            stream.write_all(b"HTTP/1.1 2").await?;
            stream.flush().await?;
        }
        Hostile::HundredMegabytes => {
            stream
                .write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 104857600\r\n\r\n",
                )
                .await?;
            let block = vec![b'z'; 1 << 20];
            for _ in 0..100 {
                stream.write_all(&block).await?;
            }
        }
        Hostile::ExpiredCertificate | Hostile::WrongHostCertificate | Hostile::Http2Only => {}
    }
    stream.shutdown().await
}

/// Reads until the end of the request head (or 64 KiB, or the end).
async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(())
}
