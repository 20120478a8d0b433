//! Client addresses as the connection limits see them: which connections count as one
//! client ([`ClientKey`]), and the ranges an admin exempts from the per-address cap
//! ([`AddressRange`]).

use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

/// The client a connection is counted against. An IPv4 address is one client; an IPv6 client
/// is its /64, because one host is routinely given a whole /64 and could otherwise open
/// connections from as many addresses as it likes. An IPv4 address mapped into IPv6 (a
/// dual-stack listener on `[::]`) is the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    V4(Ipv4Addr),
    V6Prefix(u64),
}

impl ClientKey {
    pub(crate) fn of(ip: IpAddr) -> ClientKey {
        match canonical(ip) {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

/// `::ffff:a.b.c.d` is the IPv4 client a.b.c.d.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// An address (`10.0.0.7`, `::1`) or a CIDR range (`127.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum AddressRangeError {
    #[error("`{0}` is not an IP address or a CIDR range such as 10.0.0.0/8")]
    NotAnAddress(String),
    #[error("`{0}`: the prefix length is more than the address has bits")]
    PrefixTooLong(String),
}

impl FromStr for AddressRange {
    type Err = AddressRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| AddressRangeError::NotAnAddress(s.to_string()))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .map_err(|_| AddressRangeError::NotAnAddress(s.to_string()))?,
        };
        if prefix > bits {
            return Err(AddressRangeError::PrefixTooLong(s.to_string()));
        }
        Ok(AddressRange { network, prefix })
    }
}

impl AddressRange {
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of the `bits` low bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, prefix: u8, bits: u32) -> bool {
    let shift = bits - u32::from(prefix);
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(s: &str) -> AddressRange {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn an_ipv4_address_mapped_into_ipv6_is_the_ipv4_client() {
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.7")),
            ClientKey::of(ip("192.0.2.7"))
        );
        assert!(range("192.0.2.0/24").contains(ip("::ffff:192.0.2.7")));
    }

    #[test]
    fn two_ipv4_addresses_are_two_clients() {
        assert_ne!(
            ClientKey::of(ip("127.0.0.1")),
            ClientKey::of(ip("127.0.0.2"))
        );
    }

    #[test]
    fn a_range_contains_the_addresses_under_its_prefix() {
        let loopback = range("127.0.0.0/8");
        assert!(loopback.contains(ip("127.0.0.1")));
        assert!(loopback.contains(ip("127.255.0.9")));
        assert!(!loopback.contains(ip("128.0.0.1")));
        assert!(!loopback.contains(ip("::1")));
        assert!(range("::1").contains(ip("::1")));
        assert!(!range("::1").contains(ip("::2")));
        assert!(range("fd00::/8").contains(ip("fd12:3456::1")));
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.5")));
        assert!(range("::/0").contains(ip("2001:db8::1")));
        assert!(range("10.1.2.3").contains(ip("10.1.2.3")));
        assert!(!range("10.1.2.3").contains(ip("10.1.2.4")));
    }

    #[test]
    fn a_bad_range_is_refused_with_what_was_written() {
        assert_eq!(
            "localhost".parse::<AddressRange>(),
            Err(AddressRangeError::NotAnAddress("localhost".into()))
        );
        assert_eq!(
            "10.0.0.0/33".parse::<AddressRange>(),
            Err(AddressRangeError::PrefixTooLong("10.0.0.0/33".into()))
        );
        assert!("10.0.0.0/x".parse::<AddressRange>().is_err());
        assert!("::/129".parse::<AddressRange>().is_err());
    }
}
