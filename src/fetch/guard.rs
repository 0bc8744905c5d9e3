//! Which addresses an import may reach: the server-side request forgery
//! guard, pure and tested on its own.
//!
//! An import URL comes from a client, and the server fetches it from
//! inside the network: without this guard a client could make it read
//! the cloud's metadata service (credentials), an admin port on
//! loopback, or anything on the private network. Every address a name
//! resolves to is checked, on every redirect hop, and the connection goes
//! to the address that was checked, so a name cannot resolve to a public
//! address for the check and a private one for the connection.
//!
//! Refused: loopback, private (RFC 1918, IPv6 unique local), link-local
//! (which holds the metadata services at 169.254.169.254 and
//! fe80::a9fe:a9fe), shared CGNAT space (100.64.0.0/10, Alibaba's
//! metadata at 100.100.100.200), multicast, broadcast, unspecified,
//! documentation and benchmarking ranges, reserved space; and IPv6 forms
//! that carry an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64,
//! 6to4) by the address they carry. Operators open specific hosts or
//! ranges with an allowlist.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address may not be fetched from, as a noun phrase
/// ("a loopback address"), or `None` for a public address.
pub fn classify(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(str::to_string),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let class = match (a, b, c) {
        (0, _, _) => "an unspecified (\"this network\") address",
        (127, _, _) => "a loopback address",
        (10, _, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (192, 168, _) => "a private address",
        (169, 254, _) => "a link-local address (where cloud metadata services answer)",
        (100, 64..=127, _) => "a shared (CGNAT) address",
        (192, 0, 0) => "an IETF protocol assignment address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) if ip.is_broadcast() => "the broadcast address",
        (240..=255, _, _) => "a reserved address",
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<String> {
    let s = ip.segments();
    // IPv6 forms carrying an IPv4 address are judged by that address.
    let carried = if let Some(v4) = ip.to_ipv4_mapped() {
        Some(("IPv4-mapped", v4))
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        Some(("NAT64", embedded_v4(s[6], s[7])))
    } else if s[0..6] == [0, 0, 0, 0, 0, 0] && !matches!(s[6..8], [0, 0] | [0, 1]) {
        Some(("IPv4-compatible", embedded_v4(s[6], s[7])))
    } else if s[0] == 0x2002 {
        Some(("6to4", embedded_v4(s[1], s[2])))
    } else {
        None
    };
    if let Some((form, v4)) = carried {
        return Some(match classify_v4(v4) {
            Some(class) => format!("an {form} form of {class} ({v4})"),
            // A public IPv4 address in a translation form: fetch it by
            // that address instead.
            None => format!("an {form} form of an IPv4 address ({v4}); use the IPv4 address"),
        });
    }
    let class = if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "a private (unique local) address"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "a link-local address (where cloud metadata services answer)"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "a site-local address"
    } else if s[0] & 0xff00 == 0xff00 {
        "a multicast address"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "a documentation address"
    } else if s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 1 {
        "a local-use NAT64 address"
    } else if s[0] == 0x2001 && s[1] == 0 {
        "a Teredo tunnel address"
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        "a discard-only address"
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        "an IETF protocol assignment address"
    } else if s[0] & 0xe000 != 0x2000 {
        // Outside 2000::/3, the only global unicast space allocated.
        "a reserved address"
    } else {
        return None;
    };
    Some(class.to_string())
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Hosts and address ranges an operator opened despite the rules above
/// (an internal image server, a test server on loopback).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// Host names, lower case, matched exactly.
    hosts: Vec<String>,
    /// Address ranges: network and prefix length.
    nets: Vec<(IpAddr, u8)>,
}

impl Allowlist {
    /// Parses a comma-separated list of host names, addresses and CIDR
    /// ranges (`images.internal, 10.1.0.0/16, ::1`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut list = Self::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, len) = match item.split_once('/') {
                Some((a, l)) => (a, Some(l)),
                None => (item, None),
            };
            let addr = addr.trim_start_matches('[').trim_end_matches(']');
            match (addr.parse::<IpAddr>(), len) {
                (Ok(ip), len) => {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    let len = match len {
                        None => max,
                        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| {
                            format!("{item:?}: the prefix length must be 0-{max}")
                        })?,
                    };
                    list.nets.push((ip, len));
                }
                (Err(_), None) if is_host_name(addr) => {
                    list.hosts.push(addr.to_ascii_lowercase());
                }
                _ => {
                    return Err(format!(
                        "{item:?} is neither a host name, an IP address nor a CIDR range"
                    ));
                }
            }
        }
        Ok(list)
    }

    /// Whether every address of host `host` is allowed by name.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Whether `ip` lies in an allowed range.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|(net, len)| in_net(ip, *net, *len))
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The ports imports may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Any port.
    Any,
    /// Only these.
    Only(Vec<u16>),
}

impl Ports {
    /// Parses `any` or a comma-separated list of ports.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("any") {
            return Ok(Self::Any);
        }
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{p:?} is not a port (1-65535) or \"any\""))
            })
            .collect::<Result<Vec<u16>, String>>()
            .map(Self::Only)
    }

    /// Whether `port` is open.
    pub fn allows(&self, port: u16) -> bool {
        match self {
            Self::Any => true,
            Self::Only(ports) => ports.contains(&port),
        }
    }
}

impl Default for Ports {
    /// HTTP's and HTTPS's.
    fn default() -> Self {
        Self::Only(vec![80, 443])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<String> {
        classify(s.parse().expect("an address"))
    }

    #[test]
    fn internal_and_special_addresses_are_refused() {
        for (addr, what) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("100.100.100.200", "CGNAT"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("192.0.0.8", "IETF"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("fe80::a9fe:a9fe", "link-local"),
            ("fd00:ec2::254", "unique local"),
            ("fc00::1", "unique local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("::ffff:127.0.0.1", "IPv4-mapped form of a loopback"),
            ("::ffff:169.254.169.254", "IPv4-mapped form of a link-local"),
            ("::ffff:10.0.0.1", "IPv4-mapped form of a private"),
            ("64:ff9b::7f00:1", "NAT64 form of a loopback"),
            ("64:ff9b::a9fe:a9fe", "NAT64 form of a link-local"),
            ("64:ff9b:1::1", "local-use NAT64"),
            ("::127.0.0.1", "IPv4-compatible form of a loopback"),
            ("2002:7f00:1::", "6to4 form of a loopback"),
            ("2002:a00:1::1", "6to4 form of a private"),
            ("2001::1", "Teredo"),
            ("100::1", "discard"),
            ("::ffff:8.8.8.8", "use the IPv4 address"),
        ] {
            let got = class(addr).unwrap_or_else(|| panic!("{addr} was let through"));
            assert!(got.contains(what), "{addr}: {got}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "172.15.255.255",
            "100.63.255.255",
            "100.128.0.1",
            "169.255.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
        ] {
            assert_eq!(class(addr), None, "{addr}");
        }
    }

    #[test]
    fn allowlists_open_hosts_and_ranges() {
        let a = Allowlist::parse(" images.internal, 127.0.0.1 ,10.1.0.0/16, [::1], fd00::/8")
            .expect("a valid list");
        assert!(a.allows_host("images.internal"));
        assert!(a.allows_host("IMAGES.internal."));
        assert!(!a.allows_host("other.internal"));
        for ip in ["127.0.0.1", "10.1.200.3", "::1", "fd12::1"] {
            assert!(a.allows_ip(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["127.0.0.2", "10.2.0.1", "::2", "fc00::1"] {
            assert!(!a.allows_ip(ip.parse().expect("ip")), "{ip}");
        }
        assert!(
            Allowlist::parse("0.0.0.0/0")
                .expect("all")
                .allows_ip("10.0.0.1".parse().expect("ip"))
        );
        assert!(Allowlist::parse("10.0.0.0/33").is_err());
        assert!(Allowlist::parse("bad host!").is_err());
        assert_eq!(Allowlist::parse("").expect("empty"), Allowlist::default());
    }

    #[test]
    fn ports_parse() {
        assert!(Ports::default().allows(443) && !Ports::default().allows(8080));
        assert!(Ports::parse("any").expect("any").allows(1));
        let p = Ports::parse("80, 8080").expect("list");
        assert!(p.allows(8080) && !p.allows(443));
        assert!(Ports::parse("0").is_err());
        assert!(Ports::parse("http").is_err());
    }
}
