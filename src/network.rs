//! Network allowlists: the CIDR networks an application's credentials may
//! be used from.

use crate::error::CoreError;
use ipnet::IpNet;
use std::net::IpAddr;

/// The address of the client of a request: the peer's, or the one a
/// trusted reverse proxy named. Resolved once per request by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    pub fn text(&self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

/// Most networks one application may list.
pub const MAX_ALLOWED_NETWORKS: usize = 100;

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network
/// it is: client addresses are compared as IPv4.
fn ipv4_if_mapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map(IpNet::V4).unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

/// The networks an application's secret and tokens may be used from; empty
/// means anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// Parses what an administrator typed: CIDR networks or single
    /// addresses, separated by spaces, commas or new lines. A network with
    /// host bits set (`10.1.2.3/8`) is refused with the network it
    /// probably means, so nobody allows more than they read.
    pub fn parse_list<S: AsRef<str>>(entries: &[S]) -> Result<Self, CoreError> {
        let mut nets = Vec::new();
        for entry in entries.iter().flat_map(|e| {
            e.as_ref()
                .split([' ', ',', '\n', '\r', '\t'])
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) if net.trunc() != net => {
                    return Err(CoreError::invalid(
                        "allowed_networks",
                        format!("{entry} has host bits set; the network is {}", net.trunc()),
                    ))
                }
                Ok(net) => ipv4_if_mapped(net),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => ipv4_if_mapped(IpNet::from(ip)),
                    Err(_) => {
                        return Err(CoreError::invalid(
                            "allowed_networks",
                            format!(
                                "{} is not a network in CIDR notation (such as 10.0.0.0/8 or 2001:db8::/32)",
                                crate::model::bounded_text(&entry, 60)
                            ),
                        ))
                    }
                },
            };
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        if nets.len() > MAX_ALLOWED_NETWORKS {
            return Err(CoreError::invalid(
                "allowed_networks",
                format!("an application lists at most {MAX_ALLOWED_NETWORKS} networks"),
            ));
        }
        Ok(AllowedNetworks(nets))
    }

    /// What the database holds (space-delimited, canonical); unreadable
    /// entries (there are none unless someone edited the row) admit nothing.
    pub fn from_stored(text: &str) -> Self {
        AllowedNetworks(
            text.split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap_or_else(|_| IpNet::from(IpAddr::from([255, 255, 255, 255]))))
                .collect(),
        )
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a use from `ip` is allowed. An unknown address is allowed
    /// only when the list is empty. IPv4-mapped IPv6 addresses are compared
    /// as IPv4 (a dual-stack listener reports IPv4 clients that way).
    pub fn admits(&self, ip: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(ip) = ip else { return false };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn empty_admits_anything_even_an_unknown_address() {
        let any = AllowedNetworks::default();
        assert!(any.admits(ip("203.0.113.9")) && any.admits(None));
    }

    #[test]
    fn admits_only_addresses_inside_a_listed_network() {
        let nets = AllowedNetworks::parse_list(&["10.0.0.0/8, 192.168.1.7", "2001:db8::/32"]).unwrap();
        assert_eq!(nets.names(), ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]);
        assert!(nets.admits(ip("10.200.3.4")));
        assert!(nets.admits(ip("192.168.1.7")));
        assert!(!nets.admits(ip("192.168.1.8")));
        assert!(nets.admits(ip("2001:db8::1")));
        assert!(nets.admits(ip("::ffff:10.1.1.1")));
        let mapped = AllowedNetworks::parse_list(&["::ffff:10.0.0.0/104", "::ffff:192.0.2.1"]).unwrap();
        assert_eq!(mapped.names(), ["10.0.0.0/8", "192.0.2.1/32"]);
        assert!(mapped.admits(ip("10.9.9.9")) && mapped.admits(ip("::ffff:192.0.2.1")));
        assert!(!nets.admits(ip("127.0.0.1")));
        assert!(!nets.admits(None));
        assert_eq!(AllowedNetworks::from_stored(&nets.names().join(" ")), nets);
    }

    #[test]
    fn refuses_what_is_not_a_network_naming_it() {
        let e = AllowedNetworks::parse_list(&["10.0.0.0/33"]).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/33"), "{e}");
        let e = AllowedNetworks::parse_list(&["10.1.2.3/8"]).unwrap_err().to_string();
        assert!(e.contains("10.0.0.0/8"), "{e}");
        assert!(AllowedNetworks::parse_list(&["example.com"]).is_err());
        let many: Vec<String> =
            (0..=MAX_ALLOWED_NETWORKS).map(|i| format!("10.0.{}.{}/32", i / 250, i % 250)).collect();
        assert!(AllowedNetworks::parse_list(&many).is_err());
        assert!(AllowedNetworks::parse_list::<&str>(&[]).unwrap().is_empty());
    }
}
