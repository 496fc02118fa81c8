//! Pod IPs: each hollow node hands out addresses from the `spec.podCIDR` the nodeipam
//! controller gave it, as a host-local CNI plugin would (the network address and the first
//! host, the bridge's gateway, are never given out), and takes them back when a pod goes.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// An IPv4 CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address (host bits zero).
    pub network: u32,
    /// The prefix length.
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` (IPv4 only); host bits are cleared.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, len) = s.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = len.parse().ok().filter(|p| *p <= 32)?;
        Some(Self {
            network: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    /// How many addresses the block spans.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `n`-th address of the block, if inside it.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(self.network.wrapping_add(n as u32)))
    }

    /// Whether `ip` lies in the block.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.network
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// The addresses of one node's podCIDR: which are taken, and where to look next.
#[derive(Debug)]
pub struct PodIps {
    cidr: Cidr,
    used: HashSet<u32>,
    next: u64,
}

impl PodIps {
    /// An allocator over `cidr`, nothing taken.
    pub fn new(cidr: Cidr) -> Self {
        Self {
            cidr,
            used: HashSet::new(),
            next: 2,
        }
    }

    /// The block it hands out from.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// The addresses that may be given out: from the second host to the last before the
    /// broadcast address (for a /31 or /32, every address).
    fn range(&self) -> (u64, u64) {
        let size = self.cidr.size();
        if size <= 4 {
            (0, size)
        } else {
            (2, size - 1)
        }
    }

    /// Takes a free address, rotating through the block so a freed address is not reused
    /// at once.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let (first, end) = self.range();
        let span = end - first;
        for i in 0..span {
            let n = first + (self.next - first + i) % span;
            let ip = self.cidr.nth(n)?;
            if self.used.insert(u32::from(ip)) {
                self.next = first + (n - first + 1) % span;
                return Some(ip);
            }
        }
        None
    }

    /// Marks an address taken (a pod found running); false if it is outside the block.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        if !self.cidr.contains(ip) {
            return false;
        }
        self.used.insert(u32::from(ip));
        true
    }

    /// Gives an address back.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip));
    }

    /// How many addresses are taken.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_contain() {
        let c = Cidr::parse("10.42.3.7/24").unwrap_or_else(|| panic!("parse"));
        assert_eq!(c.to_string(), "10.42.3.0/24");
        assert_eq!(c.size(), 256);
        assert!(c.contains("10.42.3.255".parse().unwrap_or(Ipv4Addr::UNSPECIFIED)));
        assert!(!c.contains("10.42.4.1".parse().unwrap_or(Ipv4Addr::UNSPECIFIED)));
        assert!(Cidr::parse("10.42.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }

    #[test]
    fn addresses_skip_network_gateway_and_broadcast_and_come_back() {
        let mut ips = PodIps::new(Cidr::parse("10.0.0.0/29").unwrap_or_else(|| panic!("parse")));
        let got: Vec<String> = std::iter::from_fn(|| ips.allocate())
            .map(|ip| ip.to_string())
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(ips.allocate(), None);
        ips.release("10.0.0.4".parse().unwrap_or(Ipv4Addr::UNSPECIFIED));
        assert_eq!(
            ips.allocate().map(|i| i.to_string()).as_deref(),
            Some("10.0.0.4")
        );
        assert_eq!(ips.in_use(), 5);
        assert!(!ips.reserve("10.0.1.1".parse().unwrap_or(Ipv4Addr::UNSPECIFIED)));
    }
}
