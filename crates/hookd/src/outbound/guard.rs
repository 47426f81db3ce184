//! Which destinations a delivery may reach.
//!
//! A webhook sender connects to URLs that strangers choose, from inside the platform's network.
//! Unless the operator allows a range (`HOOKD_ALLOW_DESTINATIONS`), hookd refuses every address
//! that is not globally routable: loopback, private, link-local (cloud metadata lives there),
//! CGNAT, unique-local, multicast, reserved and documentation ranges, and the IPv6 forms that
//! embed an IPv4 address (mapped, compatible, NAT64, 6to4) when the embedded address is refused.
//! This is hand-written because the check must run on the addresses actually connected to,
//! inside the resolver, which no general-purpose crate does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The guard's answer for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Blocked(String),
}

/// Destinations refused unless allowed, with the operator's exceptions.
#[derive(Debug, Clone, Default)]
pub struct DestinationGuard {
    allowed: Vec<IpNet>,
}

impl DestinationGuard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// Judges one address.
    pub fn check_ip(&self, ip: IpAddr) -> Verdict {
        // An IPv6 form of an allowed IPv4 address is allowed too, as it is refused alike.
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let allowed = |candidate: IpAddr| self.allowed.iter().any(|net| net.contains(&candidate));
        if allowed(ip) || embedded.is_some_and(allowed) {
            return Verdict::Allowed;
        }
        match refused_range(ip) {
            Some(range) => Verdict::Blocked(format!("{ip} is in a refused range: {range}")),
            None => Verdict::Allowed,
        }
    }

    /// Judges a URL whose host is an IP literal; host names are judged when resolved.
    pub fn check_url(&self, url: &url::Url) -> Verdict {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            _ => Verdict::Allowed,
        }
    }
}

/// The name of the refused range `ip` falls in, if any.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let range = match (a, b, c) {
        (0, _, _) => "\"this network\" (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared CGNAT (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignment (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(range)
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(embedded) = embedded_v4(ip) {
        return refused_v4(embedded).map(|_| "an IPv6 form of a refused IPv4 address");
    }
    let segments = ip.segments();
    let range = match segments {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified (::)",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback (::1)",
        [0x0100, 0, 0, 0, ..] => "discard-only (100::/64)",
        [0x2001, 0x0db8, ..] => "documentation (2001:db8::/32)",
        [0x2001, 0, ..] => "Teredo (2001::/32)",
        [0x0064, 0xff9b, 0x0001, ..] => "local-use NAT64 (64:ff9b:1::/48)",
        [first, ..] if first & 0xfe00 == 0xfc00 => "unique-local (fc00::/7)",
        [first, ..] if first & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        [first, ..] if first & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        [first, ..] if first & 0xff00 == 0xff00 => "multicast (ff00::/8)",
        _ => return None,
    };
    Some(range)
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 address.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; :: and ::1 are not IPv4).
        [0, 0, 0, 0, 0, 0xffff, ..] => Some(low),
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        // 64:ff9b::a.b.c.d, the well-known NAT64 prefix.
        [0x0064, 0xff9b, 0, 0, 0, 0, ..] => Some(low),
        // 2002:AABB:CCDD::/48, 6to4.
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Resolves host names and passes on only the addresses the guard allows.
pub struct GuardedResolver {
    guard: Arc<DestinationGuard>,
}

impl GuardedResolver {
    pub fn new(guard: Arc<DestinationGuard>) -> Self {
        Self { guard }
    }
}

/// The error a resolution ends with when every address was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BlockedDestination(pub String);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = Arc::clone(&self.guard);
        Box::pin(async move {
            // "localhost." and "localhost" are the same name; resolving the bare form lets the
            // hosts file answer instead of a DNS query.
            let host = name.as_str().trim_end_matches('.').to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match guard.check_ip(addr.ip()) {
                    Verdict::Allowed => true,
                    Verdict::Blocked(reason) => {
                        refusals.push(reason);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let reason = match refusals.first() {
                    Some(first) => format!("{host} resolves to {first}"),
                    None => format!("{host} resolves to no address"),
                };
                return Err(Box::new(BlockedDestination(reason)) as Box<_>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The refusal behind a failed request, if the guard caused it.
pub fn blocked_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(current) = cause {
        if let Some(blocked) = current.downcast_ref::<BlockedDestination>() {
            return Some(blocked.0.clone());
        }
        cause = current.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(text: &str) -> bool {
        let ip: IpAddr = text.parse().expect("literal address");
        matches!(
            DestinationGuard::default().check_ip(ip),
            Verdict::Blocked(_)
        )
    }

    #[test]
    fn refuses_internal_ipv4_ranges() {
        for ip in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.0",
            "192.88.99.1",
            "192.88.99.255",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(blocked(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn refuses_internal_ipv6_ranges_and_embedded_ipv4() {
        for ip in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:0101::1",
            "2002:c058:6301::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
            "2001::1",
            "64:ff9b:1::1",
        ] {
            assert!(blocked(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn allows_public_addresses() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "192.88.98.255",
            "192.88.100.0",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!blocked(ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn operator_ranges_are_allowed() {
        let guard = DestinationGuard::new(vec!["127.0.0.0/8".parse().expect("cidr")]);
        assert_eq!(
            guard.check_ip("127.0.0.1".parse().expect("ip")),
            Verdict::Allowed
        );
        assert!(matches!(
            guard.check_ip("10.0.0.1".parse().expect("ip")),
            Verdict::Blocked(_)
        ));
    }

    #[test]
    fn url_literals_in_odd_spellings_are_normalised_then_refused() {
        let guard = DestinationGuard::default();
        for url in [
            "http://127.1/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://127.0.0.1./",
        ] {
            let parsed = url::Url::parse(url).expect("url");
            assert!(
                matches!(guard.check_url(&parsed), Verdict::Blocked(_)),
                "{url} must be refused"
            );
        }
    }

    mod properties {
        use std::net::{Ipv4Addr, Ipv6Addr};

        use proptest::prelude::*;

        use super::*;

        fn six_to_four(v4: Ipv4Addr) -> Ipv6Addr {
            let o = v4.octets();
            Ipv6Addr::new(
                0x2002,
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
                0,
                0,
                0,
                0,
                1,
            )
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

        proptest! {
            /// Every IPv6 form that embeds an IPv4 address is judged like that address.
            #[test]
            fn embedded_forms_are_judged_like_their_ipv4(bits in any::<u32>()) {
                let v4 = Ipv4Addr::from(bits);
                let refused = refused_range(IpAddr::V4(v4)).is_some();
                for v6 in [v4.to_ipv6_mapped(), nat64(v4), six_to_four(v4)] {
                    prop_assert_eq!(refused_range(IpAddr::V6(v6)).is_some(), refused, "{}", v6);
                }
            }

            /// Loopback written as a dotted quad, a decimal, hex or octal integer, hex or octal
            /// parts, or with a trailing dot, always parses to the same refused address.
            #[test]
            fn loopback_spellings_are_all_refused(low in 0u32..(1 << 24)) {
                let ip = Ipv4Addr::from((127u32 << 24) | low);
                let n = u32::from(ip);
                let [a, b, c, d] = ip.octets();
                let guard = DestinationGuard::default();
                for host in [
                    ip.to_string(),
                    n.to_string(),
                    format!("0x{n:x}"),
                    format!("0X{n:X}"),
                    format!("0{n:o}"),
                    format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
                    format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
                    format!("{a}.{}", (u32::from(b) << 16) | (u32::from(c) << 8) | u32::from(d)),
                    format!("{ip}."),
                    format!("[::ffff:{ip}]"),
                ] {
                    let url = url::Url::parse(&format!("http://{host}:8080/x")).expect("parses");
                    if let Some(url::Host::Ipv4(parsed)) = url.host() {
                        prop_assert_eq!(parsed, ip, "{}", host);
                    }
                    prop_assert!(matches!(guard.check_url(&url), Verdict::Blocked(_)), "{}", host);
                }
            }

            /// Judging never panics, whatever the URL.
            #[test]
            fn any_url_can_be_judged(text in "\\PC{0,80}") {
                if let Ok(url) = url::Url::parse(&text) {
                    let _ = DestinationGuard::default().check_url(&url);
                }
            }
        }
    }
}
