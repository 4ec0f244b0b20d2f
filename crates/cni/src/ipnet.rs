//! An address with a prefix length (`10.85.0.2/16`), as CNI results and configs write them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `address/prefix`. The address keeps its host bits (`10.85.0.2/16` is the pod's address on a
/// /16), as in CNI results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an address with a prefix length (like 10.85.0.2/16)")]
pub struct IpNetParseError(pub String);

impl IpNet {
    /// `addr/prefix`; `None` when the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// An IPv4 network.
    pub fn v4(addr: Ipv4Addr, prefix: u8) -> Option<IpNet> {
        IpNet::new(IpAddr::V4(addr), prefix)
    }

    /// The address as written (host bits kept).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network: host bits cleared (`10.85.0.2/16` -> `10.85.0.0/16`).
    pub fn network(&self) -> IpNet {
        let addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & v4_mask(self.prefix))),
            IpAddr::V6(a) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        IpNet {
            addr,
            prefix: self.prefix,
        }
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        IpNet {
            addr: ip,
            prefix: self.prefix,
        }
        .network()
            == self.network()
            && ip.is_ipv4() == self.addr.is_ipv4()
    }

    /// Whether the two networks share any address (one contains the other).
    pub fn overlaps(&self, other: &IpNet) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() {
            return false;
        }
        let (wide, narrow) = if self.prefix <= other.prefix {
            (self, other)
        } else {
            (other, self)
        };
        wide.contains(narrow.addr)
    }
}

/// The netmask of an IPv4 prefix as a number.
pub(crate) fn v4_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

impl FromStr for IpNet {
    type Err = IpNetParseError;

    fn from_str(s: &str) -> Result<IpNet, IpNetParseError> {
        let err = || IpNetParseError(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let prefix: u8 = prefix.parse().map_err(|_| err())?;
        IpNet::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_roundtrip() {
        for s in ["10.85.0.2/16", "0.0.0.0/0", "fd00::1/64", "1.2.3.4/32"] {
            assert_eq!(s.parse::<IpNet>().unwrap().to_string(), s);
        }
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "10.0.0.1/",
            "10.0.0.1/+1",
            "x/8",
            "::/129",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn network_contains_and_overlap() {
        let n: IpNet = "10.85.3.7/16".parse().unwrap();
        assert_eq!(n.network().to_string(), "10.85.0.0/16");
        assert!(n.contains("10.85.255.1".parse().unwrap()));
        assert!(!n.contains("10.86.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let wide: IpNet = "10.0.0.0/8".parse().unwrap();
        let other: IpNet = "10.86.0.0/16".parse().unwrap();
        assert!(n.overlaps(&wide) && wide.overlaps(&n));
        assert!(!n.overlaps(&other));
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert_eq!("fd12::5/8".parse::<IpNet>().unwrap().network(), v6);
        assert!(!v6.overlaps(&wide));
    }
}
