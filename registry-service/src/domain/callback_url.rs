//! A callback URL that passed every rule of the public contract: absolute,
//! `https` (plain `http` only when the operator allows it, for local use), no
//! user-info, no fragment, at most 2,048 characters, and a host that is not a
//! private, loopback, link-local or otherwise non-public address.
//!
//! Registration can only check what the URL says. A public name may still
//! resolve to a private address; the dispatcher checks the resolved address
//! again at delivery time, which is the check that protects the network.

use std::net::IpAddr;

use ipnet::IpNet;
use service_kit::net::check_outbound;
use url::{Host, Url};

use super::FieldViolation;

pub const MAX_URL_LENGTH: usize = 2048;
const FIELD: &str = "callback_url";

/// The operator's choices that widen the defaults.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    /// Accept `http://` as well as `https://` (local use only).
    pub allow_http: bool,
    /// Non-public ranges the operator admits anyway (tests admit loopback).
    pub allowed_networks: Vec<IpNet>,
}

/// A URL that satisfied [`UrlPolicy::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrl(Url);

impl CallbackUrl {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl UrlPolicy {
    pub fn parse(&self, raw: &str) -> Result<CallbackUrl, FieldViolation> {
        let violation = |rule: String| FieldViolation::new(FIELD, rule);
        if raw.is_empty() {
            return Err(violation("is required".into()));
        }
        if raw.len() > MAX_URL_LENGTH {
            return Err(violation(format!(
                "must be at most {MAX_URL_LENGTH} characters"
            )));
        }
        if raw.trim() != raw {
            return Err(violation("must not have leading or trailing spaces".into()));
        }
        let url =
            Url::parse(raw).map_err(|e| violation(format!("must be an absolute URL ({e})")))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err(violation("must use https".into())),
            other => return Err(violation(format!("must use https, not {other}"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(violation(
                "must not contain user-info; send credentials as callback_user_name and callback_password"
                    .into(),
            ));
        }
        if url.fragment().is_some() {
            return Err(violation("must not contain a fragment".into()));
        }
        // The URL parser normalises (e.g. percent-encodes); the normalised form
        // must still fit.
        if url.as_str().len() > MAX_URL_LENGTH {
            return Err(violation(format!(
                "must be at most {MAX_URL_LENGTH} characters once normalised"
            )));
        }
        match url.host() {
            None => return Err(violation("must have a host".into())),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) => self.check_name(name)?,
        }
        Ok(CallbackUrl(url))
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), FieldViolation> {
        check_outbound(ip, &self.allowed_networks).map_err(|range| {
            FieldViolation::new(
                FIELD,
                format!("host must be a public address; {ip} is {range}"),
            )
        })
    }

    fn check_name(&self, name: &str) -> Result<(), FieldViolation> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            // "localhost" is loopback by definition (RFC 6761).
            return self.check_ip(IpAddr::from([127, 0, 0, 1]));
        }
        const INTERNAL_SUFFIXES: [&str; 4] = [".local", ".internal", ".lan", ".home.arpa"];
        if !name.contains('.') || INTERNAL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            return Err(FieldViolation::new(
                FIELD,
                format!("host must be a public domain name; {name} is a local name"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> UrlPolicy {
        UrlPolicy::default()
    }

    fn rule(policy: &UrlPolicy, raw: &str) -> String {
        policy.parse(raw).unwrap_err().rule
    }

    #[test]
    fn accepts_public_https() {
        let url = strict()
            .parse("https://hooks.example.com/callbacks?x=1")
            .unwrap();
        assert_eq!(url.as_str(), "https://hooks.example.com/callbacks?x=1");
        assert!(strict().parse("https://93.184.216.34:8443/cb").is_ok());
        assert!(strict().parse("https://[2606:2800:220:1::1]/cb").is_ok());
    }

    #[test]
    fn refuses_each_broken_rule() {
        let p = strict();
        assert_eq!(rule(&p, ""), "is required");
        assert!(rule(&p, "/relative/path").starts_with("must be an absolute URL"));
        assert_eq!(rule(&p, "http://hooks.example.com/"), "must use https");
        assert_eq!(
            rule(&p, "ftp://hooks.example.com/"),
            "must use https, not ftp"
        );
        assert!(
            rule(&p, "https://user:pw@hooks.example.com/")
                .starts_with("must not contain user-info")
        );
        assert_eq!(
            rule(&p, "https://hooks.example.com/#frag"),
            "must not contain a fragment"
        );
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert_eq!(rule(&p, &long), "must be at most 2048 characters");
        assert!(rule(&p, "https://10.1.2.3/").contains("private"));
        assert!(rule(&p, "https://127.0.0.1/").contains("loopback"));
        assert!(rule(&p, "https://169.254.169.254/").contains("link-local"));
        assert!(rule(&p, "https://[::1]/").contains("loopback"));
        assert!(rule(&p, "https://[fd00::1]/").contains("private"));
        assert!(rule(&p, "https://[::ffff:10.0.0.1]/").contains("private"));
        assert!(rule(&p, "https://localhost/").contains("loopback"));
        assert!(rule(&p, "https://intranet/").contains("local name"));
        assert!(rule(&p, "https://printer.local/").contains("local name"));
        assert!(rule(&p, "https://0.0.0.0/").contains("unspecified"));
    }

    #[test]
    fn operator_can_widen() {
        let p = UrlPolicy {
            allow_http: true,
            allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(p.parse("http://127.0.0.1:8080/cb").is_ok());
        assert!(p.parse("https://localhost:8443/cb").is_ok());
        assert!(rule(&p, "http://10.0.0.1/").contains("private"));
    }
}
