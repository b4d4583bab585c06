//! Why an attempt did not deliver, as one of a few stable kinds. The kind's
//! code is what machines read (the attempt log's `failure_kind`, the
//! `kind` label of `callbacks_delivery_failures_total`); the reason text
//! beside it says the same for people, with the detail that helps
//! (`TLS error: certificate expired`, `HTTP 503`).

/// A failed attempt's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Not called: the URL, its scheme or its addresses are not allowed.
    Refused,
    /// The host name could not be resolved.
    Dns,
    /// Nothing listened on the port.
    ConnectionRefused,
    /// The endpoint closed the connection before answering.
    ConnectionReset,
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// No answer within the response timeout.
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// An answer that is not HTTP, or is cut short.
    InvalidResponse,
    /// Another failure to connect or exchange.
    Connection,
    /// A 3xx answer: redirects are not followed.
    Redirect,
    /// Any other answer that is not 2xx or 410.
    HttpStatus,
}

impl FailureKind {
    /// Every kind, for registering one metric series each.
    pub const ALL: [Self; 11] = [
        Self::Refused,
        Self::Dns,
        Self::ConnectionRefused,
        Self::ConnectionReset,
        Self::ConnectTimeout,
        Self::Timeout,
        Self::Tls,
        Self::InvalidResponse,
        Self::Connection,
        Self::Redirect,
        Self::HttpStatus,
    ];

    /// The stable code: never changed once published.
    pub fn code(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Dns => "dns",
            Self::ConnectionRefused => "connection_refused",
            Self::ConnectionReset => "connection_reset",
            Self::ConnectTimeout => "connect_timeout",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
            Self::InvalidResponse => "invalid_response",
            Self::Connection => "connection",
            Self::Redirect => "redirect",
            Self::HttpStatus => "http_status",
        }
    }

    /// The kind of `code`, if it names one.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let codes: std::collections::HashSet<_> =
            FailureKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), FailureKind::ALL.len());
        for kind in FailureKind::ALL {
            assert_eq!(FailureKind::parse(kind.code()), Some(kind));
        }
        assert_eq!(FailureKind::parse("teapot"), None);
    }
}
