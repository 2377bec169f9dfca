//! A node's slice of the cluster CIDR (`10.200.3.0/24` out of `10.200.0.0/16`): the
//! addresses this node may give its containers. pane hands them out through the standard
//! `host-local` IPAM plugin, so the slice becomes a `host-local` range with the network
//! address, the gateway (the first host) and the broadcast address held back.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde_json::{Map, Value, json};

/// A slice smaller than this has no address left once the network address, the gateway
/// and the broadcast address are held back (an IPv4 /30 keeps exactly one).
const MIN_ADDRESSES: u128 = 4;

/// A node slice: a network address and a prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeSlice {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node slice {text:?}: {problem}")]
pub struct SliceError {
    pub text: String,
    pub problem: String,
}

impl FromStr for NodeSlice {
    type Err = SliceError;

    fn from_str(text: &str) -> Result<Self, SliceError> {
        let fail = |problem: String| SliceError {
            text: text.to_owned(),
            problem,
        };
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| fail("expected ADDRESS/PREFIX, for example 10.200.3.0/24".to_owned()))?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| fail(format!("{address:?} is not an IP address")))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| fail(format!("the prefix must be a number from 0 to {max}")))?;
        let slice = Self {
            network: address,
            prefix,
        };
        if slice.size() < MIN_ADDRESSES {
            return Err(fail(format!(
                "a /{prefix} holds fewer than {MIN_ADDRESSES} addresses; with the network \
                 address, the gateway and the broadcast address held back none is left"
            )));
        }
        let network = slice.nth(0);
        if network != address {
            return Err(fail(format!(
                "host bits are set; the slice's network address is {network}/{prefix}"
            )));
        }
        Ok(slice)
    }
}

impl fmt::Display for NodeSlice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl NodeSlice {
    fn bits(&self) -> u32 {
        if self.network.is_ipv4() { 32 } else { 128 }
    }

    /// How many addresses the slice spans (saturating for an IPv6 /0).
    pub fn size(&self) -> u128 {
        let host_bits = self.bits() - u32::from(self.prefix);
        1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
    }

    fn base(&self) -> u128 {
        let host_bits = self.bits() - u32::from(self.prefix);
        let value = match self.network {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        value
            .checked_shr(host_bits)
            .and_then(|v| v.checked_shl(host_bits))
            .unwrap_or(0)
    }

    /// The `n`th address of the slice (`n` below [`NodeSlice::size`]).
    fn nth(&self, n: u128) -> IpAddr {
        let value = self.base() + n;
        match self.network {
            // The value fits: it is inside a 32-bit slice.
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(value).unwrap_or(0))),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> IpAddr {
        self.nth(0)
    }

    /// The first host: the containers' default route.
    pub fn gateway(&self) -> IpAddr {
        self.nth(1)
    }

    /// The first address a container can get.
    pub fn first_usable(&self) -> IpAddr {
        self.nth(2)
    }

    /// The last address a container can get (the one before the broadcast address).
    pub fn last_usable(&self) -> IpAddr {
        self.nth(self.size() - 2)
    }

    /// How many addresses containers can get.
    pub fn usable(&self) -> u128 {
        self.size() - 3
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let value = match (address, self.network) {
            (IpAddr::V4(a), IpAddr::V4(_)) => u128::from(u32::from(a)),
            (IpAddr::V6(a), IpAddr::V6(_)) => u128::from(a),
            _ => return false,
        };
        let host_bits = self.bits() - u32::from(self.prefix);
        value.checked_shr(host_bits).unwrap_or(0) == self.base().checked_shr(host_bits).unwrap_or(0)
    }

    /// `address` with the slice's prefix, the form of the CNI `ips` capability.
    pub fn with_prefix(&self, address: IpAddr) -> String {
        format!("{address}/{}", self.prefix)
    }

    /// The `host-local` IPAM configuration over this slice: `ipam` as configured (its
    /// `routes` and any other member are kept), with one range spanning the slice
    /// without the network address, the gateway and the broadcast address, and the
    /// allocations kept in `data_dir`.
    pub fn host_local_ipam(&self, ipam: &Map<String, Value>, data_dir: &str) -> Map<String, Value> {
        let mut ipam = ipam.clone();
        ipam.remove(NODE_SLICE_KEY);
        ipam.insert("type".into(), "host-local".into());
        ipam.insert(
            "ranges".into(),
            json!([[{
                "subnet": self.to_string(),
                "rangeStart": self.first_usable().to_string(),
                "rangeEnd": self.last_usable().to_string(),
                "gateway": self.gateway().to_string(),
            }]]),
        );
        ipam.insert("dataDir".into(), data_dir.into());
        ipam
    }
}

/// The member of a plugin's `ipam` object that asks for the node slice:
/// `"ipam": {"type": "host-local", "nodeSlice": true}`.
pub const NODE_SLICE_KEY: &str = "nodeSlice";

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(text: &str) -> NodeSlice {
        match text.parse() {
            Ok(slice) => slice,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_slash_26_holds_61_container_addresses_between_gateway_and_broadcast() {
        let s = slice("10.200.3.0/26");
        assert_eq!(s.size(), 64);
        assert_eq!(s.usable(), 61);
        assert_eq!(s.gateway().to_string(), "10.200.3.1");
        assert_eq!(s.first_usable().to_string(), "10.200.3.2");
        assert_eq!(s.last_usable().to_string(), "10.200.3.62");
        assert!(s.contains("10.200.3.63".parse().unwrap_or(s.network())));
        assert!(!s.contains("10.200.3.64".parse().unwrap_or(s.network())));
        assert!(!s.contains("::1".parse().unwrap_or(s.network())));
    }

    #[test]
    fn ipv6_slices_span_their_prefix() {
        let s = slice("fd00:200:3::/120");
        assert_eq!(s.usable(), 253);
        assert_eq!(s.gateway().to_string(), "fd00:200:3::1");
        assert_eq!(s.last_usable().to_string(), "fd00:200:3::fe");
    }

    #[test]
    fn bad_slices_are_refused_with_the_fix() {
        let problem = |text: &str| match text.parse::<NodeSlice>() {
            Ok(s) => panic!("{text} parsed as {s}"),
            Err(e) => e.problem,
        };
        assert!(problem("10.200.3.7/24").contains("10.200.3.0/24"));
        assert!(problem("10.200.3.0").contains("ADDRESS/PREFIX"));
        assert!(problem("10.200.3.0/33").contains("0 to 32"));
        assert!(problem("10.200.3.0/31").contains("fewer than 4"));
        assert!(problem("ten/24").contains("not an IP"));
        assert_eq!(slice("10.200.3.0/30").usable(), 1);
    }

    #[test]
    fn the_host_local_range_holds_back_network_gateway_and_broadcast() {
        let s = slice("10.200.3.0/24");
        let mut ipam = Map::new();
        ipam.insert("type".into(), "host-local".into());
        ipam.insert(NODE_SLICE_KEY.into(), true.into());
        ipam.insert("routes".into(), json!([{"dst": "0.0.0.0/0"}]));
        let out = Value::Object(s.host_local_ipam(&ipam, "/var/lib/pane/ipam"));
        assert_eq!(
            out,
            json!({
                "type": "host-local",
                "routes": [{"dst": "0.0.0.0/0"}],
                "ranges": [[{
                    "subnet": "10.200.3.0/24",
                    "rangeStart": "10.200.3.2",
                    "rangeEnd": "10.200.3.254",
                    "gateway": "10.200.3.1"
                }]],
                "dataDir": "/var/lib/pane/ipam"
            })
        );
    }
}
