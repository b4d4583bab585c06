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

    fn admitted(&self, ip: IpAddr) -> bool {
        self.allowed_networks.iter().any(|net| net.contains(&ip))
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), FieldViolation> {
        match non_public_range(ip) {
            Some(range) if !self.admitted(ip) => Err(FieldViolation::new(
                FIELD,
                format!("host must be a public address; {ip} is {range}"),
            )),
            _ => Ok(()),
        }
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

/// Names the non-public range `ip` falls in, or `None` for a public address.
/// Covers the IANA special-purpose registries that matter for outbound calls;
/// IPv4-mapped and NAT64 IPv6 addresses are judged by the IPv4 inside.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            match (a, b, c) {
                (0, _, _) => Some("an unspecified (\"this network\") address"),
                (10, _, _) => Some("a private address"),
                (100, 64..=127, _) => Some("a shared (carrier-grade NAT) address"),
                (127, _, _) => Some("a loopback address"),
                (169, 254, _) => Some("a link-local address"),
                (172, 16..=31, _) => Some("a private address"),
                (192, 0, 0) => Some("an IETF protocol address"),
                (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Some("a documentation address"),
                (192, 88, 99) => Some("a relay (6to4) address"),
                (192, 168, _) => Some("a private address"),
                (198, 18..=19, _) => Some("a benchmarking address"),
                (224..=239, _, _) => Some("a multicast address"),
                (240..=255, _, _) => Some("a reserved or broadcast address"),
                _ => None,
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_range(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return non_public_range(IpAddr::from([a, b, c, d]));
            }
            if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if segments[0] & 0xfe00 == 0xfc00 {
                Some("a unique local (private) address")
            } else if segments[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if segments[0] & 0xff00 == 0xff00 {
                Some("a multicast address")
            } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
                Some("a documentation address")
            } else if segments[..4] == [0x100, 0, 0, 0] {
                Some("a discard-only address")
            } else if segments[0] == 0x2002 {
                Some("a 6to4 relay address")
            } else {
                None
            }
        }
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

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert_eq!(non_public_range(ip.parse().unwrap()), None, "{ip}");
        }
        for ip in [
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "64:ff9b::a00:1",
        ] {
            assert!(non_public_range(ip.parse().unwrap()).is_some(), "{ip}");
        }
    }
}
