//! IP anonymisation: a visitor's address is reduced to its network before it
//! goes anywhere.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// The anonymised network of a visitor's address: IPv4 /24 or IPv6 /48.
/// It can only be built by masking, so the full address cannot hide in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnonymizedIp {
    network: IpAddr,
}

impl AnonymizedIp {
    fn mask(ip: IpAddr) -> Self {
        let network = match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => return Self::mask(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
                }
            },
        };
        Self { network }
    }

    /// Reads back a stored network ("203.0.113.0/24"), masking again so a
    /// tampered row still cannot yield a host address.
    pub fn from_stored(cidr: &str) -> Option<Self> {
        let address = cidr.split('/').next()?;
        address.parse().ok().map(Self::mask)
    }
}

/// A visitor's full address. Only ever encrypted; `Debug` hides it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FullIp(IpAddr);

impl FullIp {
    /// Parses a raw address into the full form and its anonymised network.
    pub fn parse(raw: &str) -> Result<(Self, AnonymizedIp), String> {
        let ip: IpAddr = raw
            .trim()
            .parse()
            .map_err(|_| "must be an IPv4 or IPv6 address".to_string())?;
        Ok((Self(ip), AnonymizedIp::mask(ip)))
    }

    pub fn addr(self) -> IpAddr {
        self.0
    }
}

impl fmt::Debug for FullIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FullIp(<redacted>)")
    }
}

impl fmt::Display for AnonymizedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.network {
            IpAddr::V4(v4) => write!(f, "{v4}/24"),
            IpAddr::V6(v6) => write!(f, "{v6}/48"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(raw: &str) -> Result<AnonymizedIp, String> {
        FullIp::parse(raw).map(|(_, masked)| masked)
    }

    #[test]
    fn masks_ipv4_to_24_and_ipv6_to_48() {
        assert_eq!(
            masked("203.0.113.77").unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            masked("2001:db8:abcd:12:1:2:3:4").unwrap().to_string(),
            "2001:db8:abcd::/48"
        );
        assert_eq!(
            masked("::ffff:198.51.100.9").unwrap().to_string(),
            "198.51.100.0/24"
        );
        assert!(masked("999.1.1.1").is_err());
    }
}
