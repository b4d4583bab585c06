//! Which addresses are public. Callback URLs must point at the public
//! internet: the registry checks the address a URL names, the dispatcher
//! checks every address a host name resolves to, both with this one rule,
//! widened only by networks the operator allows.

use std::net::IpAddr;

use ipnet::IpNet;

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

/// Whether `ip` may be called: public, or inside a network the operator
/// allowed. `Err` names the range that refused it.
pub fn check_outbound(ip: IpAddr, allowed: &[IpNet]) -> Result<(), &'static str> {
    match non_public_range(ip) {
        Some(range) if !allowed.iter().any(|net| net.contains(&ip)) => Err(range),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn allowed_networks_widen() {
        let loopback: IpNet = "127.0.0.0/8".parse().unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(check_outbound(ip, &[]), Err("a loopback address"));
        assert_eq!(check_outbound(ip, &[loopback]), Ok(()));
        assert_eq!(check_outbound("8.8.8.8".parse().unwrap(), &[]), Ok(()));
    }
}
