//! What every Partner Callbacks binary does the same way, written once:
//! who may call its gRPC services ([`callers`], feature `grpc`), how it
//! knows its cached registry answers are current ([`freshness`]),
//! how it traces, logs and counts ([`telemetry`], [`grpc_layer`],
//! [`metrics`]), how it answers an oversized message ([`message_cap`]), how it learns to stop ([`shutdown_signal`]),
//! which addresses count as public ([`net`]), what settings share ([`settings`]), how a notification type's
//! payload schema applies ([`payload_schema`], feature `payload-schema`), how a service starts its own
//! database ([`db`], feature `db`), how validation errors look
//! ([`validation`]) and how an internal error is answered ([`status`],
//! feature `grpc`), and which reflection its gRPC servers offer
//! ([`reflection`], feature `grpc`). Services depend on this; it depends on no service.

#[cfg(feature = "grpc")]
pub mod callers;
#[cfg(feature = "db")]
pub mod db;
pub mod freshness;
pub mod grpc_layer;
pub mod message_cap;
pub mod metrics;
pub mod net;
#[cfg(feature = "payload-schema")]
pub mod payload_schema;
#[cfg(feature = "grpc")]
pub mod reflection;
pub mod settings;
#[cfg(feature = "grpc")]
pub mod status;
pub mod telemetry;
pub mod validation;

/// `text` for people, `json` for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Resolves on SIGINT or SIGTERM.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    // The handlers are installed now, not when the future is first polled:
    // a SIGTERM that arrives while the service starts serving (its port
    // answers before the future is polled) would otherwise meet the
    // default action, which ends the process at once.
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::terminate())
            .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
    };
    async move {
        #[cfg(unix)]
        match signals {
            Ok((mut term, mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}

/// Accepted connections with `TCP_NODELAY` set, for tonic servers served
/// from our own listener (tonic sets no socket options then). Without it,
/// an answer larger than one segment can sit out the peer's delayed ACK
/// (~40 ms) under Nagle's algorithm.
pub fn nodelay_incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        })
    })
}
