//! Why an attempt got no answer, in a few stable words: the reason becomes
//! the registration's `errorStateReason` and the attempt's `error`, which
//! partners read, so it names the cause (`connection refused`, `TLS error:
//! certificate expired`) without the changing details (times, addresses)
//! that would make every attempt's reason differ.
//!
//! The cause sits somewhere in a chain of wrappers (hyper's, a connector's
//! `io::Error` carrying the TLS stream's `io::Error` carrying rustls's),
//! and `io::Error` hides its payload from `source()`; [`layers`] opens it.

use std::error::Error;
use std::io;

use super::dns::{LookupFailed, OutboundRefused};
use crate::domain::FailureKind;

/// The kind of a request that got no answer, with a short, stable reason,
/// found by walking the error's whole cause chain for the types that name
/// a cause: the resolver's, rustls's, hyper's and `io::Error`'s kinds.
pub(super) fn classify(error: &(dyn Error + 'static)) -> (FailureKind, String) {
    let mut source: Option<&(dyn Error + 'static)> = Some(error);
    let mut io_kind = None;
    let mut innermost = error.to_string();
    while let Some(e) = source {
        for layer in layers(e) {
            if let Some(refused) = layer.downcast_ref::<OutboundRefused>() {
                return (FailureKind::Refused, refused.to_string());
            }
            if layer.is::<LookupFailed>() {
                return (FailureKind::Dns, "DNS lookup failed".into());
            }
            if let Some(tls) = layer.downcast_ref::<rustls::Error>() {
                return (FailureKind::Tls, format!("TLS error: {}", tls_reason(tls)));
            }
            if let Some(hyper) = layer.downcast_ref::<hyper::Error>()
                && (hyper.is_parse() || hyper.is_parse_status() || hyper.is_incomplete_message())
            {
                return (FailureKind::InvalidResponse, invalid_reason(hyper));
            }
            if let Some(io) = layer.downcast_ref::<io::Error>() {
                io_kind = Some(io.kind());
            }
        }
        innermost = e.to_string();
        source = e.source();
    }
    match io_kind {
        Some(io::ErrorKind::ConnectionRefused) => {
            (FailureKind::ConnectionRefused, "connection refused".into())
        }
        Some(io::ErrorKind::ConnectionReset) => {
            (FailureKind::ConnectionReset, "connection reset".into())
        }
        Some(io::ErrorKind::TimedOut) => (FailureKind::ConnectTimeout, "connect timeout".into()),
        _ => (
            FailureKind::Connection,
            format!("connection failed: {innermost}"),
        ),
    }
}

/// What was wrong with an answer hyper could not read, in hyper's words
/// (`message head is too large`, `invalid HTTP version parsed`,
/// `connection closed before message completed`): they carry no detail
/// that changes from one attempt to the next.
fn invalid_reason(error: &hyper::Error) -> String {
    format!("invalid response: {error}")
}

/// `error`, and the payloads of the `io::Error`s it is made of: an
/// `io::Error`'s `source()` is its payload's source, skipping the payload,
/// so an `io::Error` carrying an `io::Error` carrying rustls's error (as a
/// failed handshake reaches hyper) hides it from the chain.
fn layers<'a>(error: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut found = vec![error];
    while let Some(inner) = found
        .last()
        .and_then(|layer| layer.downcast_ref::<io::Error>())
        .and_then(io::Error::get_ref)
    {
        found.push(inner);
    }
    found
}

/// rustls's refusal, without the times and names its text carries.
fn tls_reason(error: &rustls::Error) -> String {
    use rustls::CertificateError as Cert;
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            Cert::Expired | Cert::ExpiredContext { .. } => "certificate expired".into(),
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                "certificate not valid yet".into()
            }
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                "certificate not valid for the URL's host".into()
            }
            Cert::UnknownIssuer => "certificate from an unknown issuer".into(),
            Cert::Revoked => "certificate revoked".into(),
            other => format!("invalid certificate ({other:?})"),
        },
        rustls::Error::NoApplicationProtocol => "no HTTP version in common (ALPN)".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrapper whose source is a boxed error, as hyper's client has.
    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Wrapper(#[source] Box<dyn Error + Send + Sync>);

    #[test]
    fn failures_are_named() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify(&refused),
            (FailureKind::ConnectionRefused, "connection refused".into())
        );
        let guard = io::Error::new(
            io::ErrorKind::PermissionDenied,
            OutboundRefused("x resolves to no public address".into()),
        );
        assert_eq!(
            classify(&guard),
            (
                FailureKind::Refused,
                "refused: x resolves to no public address".into()
            )
        );
        let lookup = io::Error::other(LookupFailed("no such host".into()));
        let wrapped = Wrapper(Box::new(lookup));
        assert_eq!(
            classify(&wrapped),
            (FailureKind::Dns, "DNS lookup failed".into())
        );
    }

    #[test]
    fn a_tls_refusal_is_found_inside_nested_io_errors_and_named_without_its_details() {
        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        let handshake = io::Error::new(io::ErrorKind::InvalidData, expired);
        let wrapped = Wrapper(Box::new(io::Error::other(handshake)));
        assert_eq!(
            classify(&wrapped),
            (FailureKind::Tls, "TLS error: certificate expired".into())
        );
        let wrong_host =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        let handshake = io::Error::new(io::ErrorKind::InvalidData, wrong_host);
        let wrapped = Wrapper(Box::new(io::Error::other(handshake)));
        assert_eq!(
            classify(&wrapped).1,
            "TLS error: certificate not valid for the URL's host"
        );
    }
}
