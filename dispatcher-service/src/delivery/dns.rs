//! Resolving callback hosts, and refusing the ones we may not call.
//!
//! The connector connects only to the addresses [`GuardedResolver`]
//! returns, so the address checked is the address called: a name that
//! answered a public address when the partner registered it and a private
//! one now (DNS rebinding) is refused at this lookup, with no window
//! between the check and the connection.
//!
//! An answer that mixes public and non-public addresses is refused whole:
//! a public host has no reason to publish an internal address, and
//! dropping the private ones would leave an attacker's name server free to
//! try them on the next lookup.
//!
//! Names are resolved by the system (`getaddrinfo`), or, when the operator
//! names servers (`DISPATCHER_DNS_SERVERS`), by those alone: e.g. a
//! resolver that knows only public names, so that internal names never
//! resolve at all.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;
use service_kit::net::check_outbound;

/// Why a host was not called; partners read it in the attempt's error.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub(crate) struct OutboundRefused(pub(super) String);

/// A host name that could not be resolved; carried inside the
/// `io::Error` the connector sees, so that the attempt's failure is known
/// to be the lookup's by its type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LookupFailed(pub(super) String);

impl LookupFailed {
    fn io(kind: io::ErrorKind, reason: impl ToString) -> io::Error {
        io::Error::new(kind, Self(reason.to_string()))
    }
}

/// Where host names are looked up.
#[derive(Clone)]
enum Lookup {
    System,
    Servers(Arc<TokioResolver>),
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::System => f.write_str("System"),
            Self::Servers(_) => f.write_str("Servers"),
        }
    }
}

impl Lookup {
    fn new(servers: &[SocketAddr]) -> anyhow::Result<Self> {
        if servers.is_empty() {
            return Ok(Self::System);
        }
        let name_servers = servers
            .iter()
            .map(|server| {
                let connection = |mut c: ConnectionConfig| {
                    c.port = server.port();
                    c
                };
                NameServerConfig::new(
                    server.ip(),
                    true,
                    vec![
                        connection(ConnectionConfig::udp()),
                        connection(ConnectionConfig::tcp()),
                    ],
                )
            })
            .collect();
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        );
        // Both families, so that every address the name has is checked.
        builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        Ok(Self::Servers(Arc::new(builder.build()?)))
    }

    async fn addresses(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        match self {
            Self::System => Ok(tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| LookupFailed::io(e.kind(), e))?
                .map(|addr| addr.ip())
                .collect()),
            Self::Servers(resolver) => match resolver.lookup_ip(host).await {
                Ok(found) => Ok(found.iter().collect()),
                Err(e) => Err(LookupFailed::io(io::ErrorKind::Other, e)),
            },
        }
    }
}

/// Resolves host names and returns their addresses only if every one of
/// them may be called.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    allowed: Arc<Vec<IpNet>>,
    lookup: Lookup,
}

impl GuardedResolver {
    /// `allowed`: non-public networks the operator lets deliveries reach;
    /// `servers`: name servers to ask instead of the system's resolver.
    pub(crate) fn new(allowed: Vec<IpNet>, servers: &[SocketAddr]) -> anyhow::Result<Self> {
        Ok(Self {
            allowed: Arc::new(allowed),
            lookup: Lookup::new(servers)?,
        })
    }
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            let found = this.lookup.addresses(host).await?;
            admit(host, found, &this.allowed).map(Vec::into_iter)
        })
    }
}

/// The addresses to connect to, or why none may be.
fn admit(host: &str, found: Vec<IpAddr>, allowed: &[IpNet]) -> io::Result<Vec<SocketAddr>> {
    if found.is_empty() {
        return Err(LookupFailed::io(
            io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    let refused: Vec<String> = found
        .iter()
        .filter_map(|ip| {
            check_outbound(*ip, allowed)
                .err()
                .map(|range| format!("{ip} is {range}"))
        })
        .collect();
    if refused.is_empty() {
        return Ok(found.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect());
    }
    let reason = if refused.len() == found.len() {
        format!("{host} resolves to no public address")
    } else {
        format!("{host} resolves to public and non-public addresses")
    };
    // The addresses stay in our log: partners read the attempt's error,
    // and it must not map internal names for them.
    tracing::warn!(host = %host, refused = %refused.join(", "), "callback host refused: {reason}");
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        OutboundRefused(reason),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    fn reason(result: io::Result<Vec<SocketAddr>>) -> String {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        error.into_inner().unwrap().to_string()
    }

    #[test]
    fn public_answers_are_admitted_whole() {
        let found = ips(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]);
        let admitted = admit("example.com", found.clone(), &[]).unwrap();
        let admitted: Vec<IpAddr> = admitted.iter().map(SocketAddr::ip).collect();
        assert_eq!(admitted, found);
    }

    #[test]
    fn an_answer_with_any_non_public_address_is_refused_whole() {
        assert_eq!(
            reason(admit("a.test", ips(&["127.0.0.1"]), &[])),
            "refused: a.test resolves to no public address"
        );
        assert_eq!(
            reason(admit("a.test", ips(&["93.184.215.14", "10.1.2.3"]), &[])),
            "refused: a.test resolves to public and non-public addresses"
        );
        assert_eq!(
            reason(admit(
                "a.test",
                ips(&["::ffff:169.254.169.254", "93.184.215.14"]),
                &[]
            )),
            "refused: a.test resolves to public and non-public addresses"
        );
    }

    #[test]
    fn the_operators_networks_count_as_public() {
        let allowed: Vec<IpNet> = vec!["127.0.0.2/32".parse().unwrap()];
        assert_eq!(
            admit("a.test", ips(&["127.0.0.2"]), &allowed)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            reason(admit("a.test", ips(&["127.0.0.2", "127.0.0.1"]), &allowed)),
            "refused: a.test resolves to public and non-public addresses"
        );
    }
}
