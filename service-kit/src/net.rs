//! Which addresses are public. Callback URLs must point at the public
//! internet: the registry checks the address a URL names, the dispatcher
//! checks every address a host name resolves to, both with this one rule,
//! widened only by networks the operator allows.
//!
//! IPv6 is judged by allowing, not by listing what to refuse: only global
//! unicast (`2000::/3`) is public, less the special ranges inside it, so
//! that a range nobody listed (IPv4-compatible `::a.b.c.d`, site-local
//! `fec0::/10`, local-use NAT64 `64:ff9b:1::/48`) is refused by default.
//! The addresses that carry an IPv4 address and reach it (IPv4-mapped, the
//! well-known NAT64 prefix) are judged by that address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Names the non-public range `ip` falls in, or `None` for a public address.
/// Covers the IANA special-purpose registries that matter for outbound calls.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(v4: Ipv4Addr) -> Option<&'static str> {
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

fn non_public_v6(v6: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let s = v6.segments();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return non_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    let named = if v6.is_unspecified() {
        "an unspecified address"
    } else if v6.is_loopback() {
        "a loopback address"
    } else if s[..6] == [0; 6] {
        "an IPv4-compatible (deprecated) address"
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        "a local-use NAT64 address"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "a unique local (private) address"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "a site-local (deprecated) address"
    } else if s[0] & 0xff00 == 0xff00 {
        "a multicast address"
    } else if s[..4] == [0x100, 0, 0, 0] {
        "a discard-only address"
    } else if s[0] & 0xe000 != 0x2000 {
        "an address outside global unicast"
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] < 0x1000) {
        "a documentation address"
    } else if s[0] == 0x2001 && s[1] == 0 {
        "a Teredo address"
    } else if s[0] == 0x2001 && s[1] < 0x200 {
        "an IETF protocol address"
    } else if s[0] == 0x2002 {
        "a 6to4 relay address"
    } else {
        return None;
    };
    Some(named)
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
    use proptest::prelude::*;

    /// The non-public IPv4 ranges, written out independently of the
    /// classifier (from the IANA registry), to test it against.
    const V4_BLOCKED: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ];

    fn v4_blocked(ip: Ipv4Addr) -> bool {
        V4_BLOCKED
            .iter()
            .any(|net| net.parse::<ipnet::Ipv4Net>().unwrap().contains(&ip))
    }

    fn blocked(ip: impl Into<IpAddr>) -> bool {
        non_public_range(ip.into()).is_some()
    }

    /// An address in `net`, the rest of its bits from `bits`.
    fn v6_in(net: &str, bits: u128) -> Ipv6Addr {
        let net: ipnet::Ipv6Net = net.parse().unwrap();
        let host = bits & !u128::from(net.netmask());
        Ipv6Addr::from(u128::from(net.network()) | host)
    }

    fn nat64(v4: Ipv4Addr) -> Ipv6Addr {
        let [a, b, c, d] = v4.octets();
        Ipv6Addr::new(
            0x64,
            0xff9b,
            0,
            0,
            0,
            0,
            u16::from_be_bytes([a, b]),
            u16::from_be_bytes([c, d]),
        )
    }

    fn compatible(v4: Ipv4Addr) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(u32::from(v4)))
    }

    proptest! {
        /// Every IPv4 address is judged as the independent table says, and
        /// the same in the spellings that reach it (IPv4-mapped, NAT64).
        #[test]
        fn ipv4_and_its_reaching_spellings_agree_with_the_table(raw in any::<u32>()) {
            let v4 = Ipv4Addr::from(raw);
            let expected = v4_blocked(v4);
            prop_assert_eq!(blocked(v4), expected, "{}", v4);
            prop_assert_eq!(blocked(v4.to_ipv6_mapped()), expected, "{}", v4.to_ipv6_mapped());
            prop_assert_eq!(blocked(nat64(v4)), expected, "{}", nat64(v4));
        }

        /// Spellings that embed an IPv4 address without reaching it
        /// publicly are refused whatever the address.
        #[test]
        fn embedding_spellings_are_refused_for_any_ipv4(raw in any::<u32>(), bits in any::<u128>()) {
            let v4 = Ipv4Addr::from(raw);
            prop_assert!(blocked(compatible(v4)), "{}", compatible(v4));
            let [a, b, c, d] = v4.octets();
            let six_to_four = v6_in("2002::/16", bits).segments();
            let six_to_four = Ipv6Addr::new(
                0x2002,
                u16::from_be_bytes([a, b]),
                u16::from_be_bytes([c, d]),
                six_to_four[3], six_to_four[4], six_to_four[5], six_to_four[6], six_to_four[7],
            );
            prop_assert!(blocked(six_to_four), "{}", six_to_four);
            let teredo = v6_in("2001::/32", bits);
            prop_assert!(blocked(teredo), "{}", teredo);
        }

        /// Every address of every non-public IPv6 range is refused.
        #[test]
        fn non_public_ipv6_ranges_are_refused_throughout(bits in any::<u128>()) {
            for net in [
                "::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
                "2002::/16", "3fff::/20", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
                "::/3", "4000::/2", "8000::/1",
            ] {
                let ip = v6_in(net, bits);
                prop_assert!(blocked(ip), "{} in {}", ip, net);
            }
        }

        /// Global unicast outside the special ranges is public.
        #[test]
        fn global_unicast_is_public(bits in any::<u128>()) {
            for net in ["2400::/6", "2600::/7", "2a00::/8", "2c00::/6", "3000::/5"] {
                let ip = v6_in(net, bits);
                prop_assert_eq!(non_public_range(ip.into()), None, "{} in {}", ip, net);
            }
        }
    }

    #[test]
    fn named_examples() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(non_public_range(ip.parse().unwrap()), None, "{ip}");
        }
        for (ip, range) in [
            ("::127.0.0.1", "an IPv4-compatible (deprecated) address"),
            ("64:ff9b:1::808:808", "a local-use NAT64 address"),
            ("2001:0:4136:e378::1", "a Teredo address"),
            ("fec0::1", "a site-local (deprecated) address"),
            ("3fff::1", "a documentation address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("64:ff9b::a00:1", "a private address"),
        ] {
            assert_eq!(non_public_range(ip.parse().unwrap()), Some(range), "{ip}");
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
