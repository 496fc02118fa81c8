//! Service ClusterIP and NodePort allocation: addresses from `--service-cidr` (the first one
//! belongs to the `kubernetes` service) and ports from the NodePort range, never handed out
//! twice. The state is rebuilt from the stored services at start; one API server owns it.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde_json::Value;

/// An IPv4 range such as `10.43.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    base: u32,
    bits: u8,
}

impl Default for Cidr {
    fn default() -> Self {
        Cidr {
            base: u32::from(Ipv4Addr::new(10, 43, 0, 0)),
            bits: 16,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, bits) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (e.g. 10.43.0.0/16)"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: only IPv4 service ranges are supported"))?;
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| (8..=30).contains(b))
            .ok_or_else(|| format!("{s:?}: the prefix length must be between 8 and 30"))?;
        let mask = u32::MAX << (32 - bits);
        Ok(Cidr {
            base: u32::from(ip) & mask,
            bits,
        })
    }
}

impl Cidr {
    fn size(self) -> u32 {
        1u32 << (32 - self.bits)
    }

    /// Whether `ip` lies in the range.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip).wrapping_sub(self.base) < self.size()
    }

    /// The `n`th address of the range.
    pub fn nth(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(n))
    }
}

/// Allocated addresses and ports.
#[derive(Debug)]
pub struct Allocator {
    cidr: Cidr,
    ports: (u16, u16),
    ips: HashSet<Ipv4Addr>,
    node_ports: HashSet<u16>,
    next_ip: u32,
    next_port: u16,
}

/// The ClusterIP and NodePorts a service holds.
pub fn held(svc: &Value) -> (Option<Ipv4Addr>, Vec<u16>) {
    let spec = &svc["spec"];
    let ip = spec["clusterIP"].as_str().and_then(|s| s.parse().ok());
    let ports = spec["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["nodePort"].as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default();
    (ip, ports)
}

impl Allocator {
    /// An empty allocator over `cidr` and the NodePort range `ports`.
    pub fn new(cidr: Cidr, ports: (u16, u16)) -> Self {
        Allocator {
            cidr,
            ports,
            ips: HashSet::new(),
            node_ports: HashSet::new(),
            next_ip: 2,
            next_port: ports.0,
        }
    }

    /// The range.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// Records what an existing service holds.
    pub fn mark_used(&mut self, svc: &Value) {
        let (ip, ports) = held(svc);
        self.ips.extend(ip);
        self.node_ports.extend(ports);
    }

    /// Frees what a deleted service held.
    pub fn release(&mut self, svc: &Value) {
        let (ip, ports) = held(svc);
        if let Some(ip) = ip {
            self.ips.remove(&ip);
        }
        for p in ports {
            self.node_ports.remove(&p);
        }
    }

    /// Takes `wanted`, or the next free address; an error text as upstream's.
    pub fn allocate_ip(&mut self, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr, String> {
        if let Some(ip) = wanted {
            if !self.cidr.contains(ip) {
                return Err(format!(
                    "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. \
                     The range of valid IPs is {}/{}",
                    self.cidr.nth(0),
                    self.cidr.bits
                ));
            }
            if !self.ips.insert(ip) {
                return Err(format!(
                    "failed to allocate IP {ip}: provided IP is already allocated"
                ));
            }
            return Ok(ip);
        }
        // Skip the network address, the first address (the `kubernetes` service asks for
        // it by name) and the broadcast address.
        let usable = self.cidr.size().saturating_sub(2);
        for _ in 0..usable {
            let n = self.next_ip;
            self.next_ip = if n + 1 >= self.cidr.size() - 1 {
                2
            } else {
                n + 1
            };
            let ip = self.cidr.nth(n);
            if n >= 2 && self.ips.insert(ip) {
                return Ok(ip);
            }
        }
        Err("failed to allocate a serviceIP: range is full".to_owned())
    }

    /// Takes `wanted`, or the next free NodePort.
    pub fn allocate_port(&mut self, wanted: Option<u16>) -> Result<u16, String> {
        let (lo, hi) = self.ports;
        if let Some(p) = wanted {
            if !(lo..=hi).contains(&p) {
                return Err(format!(
                    "provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                ));
            }
            if !self.node_ports.insert(p) {
                return Err("provided port is already allocated".to_owned());
            }
            return Ok(p);
        }
        for _ in lo..=hi {
            let p = self.next_port;
            self.next_port = if p >= hi { lo } else { p + 1 };
            if self.node_ports.insert(p) {
                return Ok(p);
            }
        }
        Err("range is full".to_owned())
    }

    /// Gives back an address taken for a write that then failed.
    pub fn free_ip(&mut self, ip: Ipv4Addr) {
        self.ips.remove(&ip);
    }

    /// Gives back a port taken for a write that then failed.
    pub fn free_port(&mut self, port: u16) {
        self.node_ports.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_and_ports_are_never_handed_out_twice() {
        let cidr: Cidr = "10.43.0.0/29".parse().unwrap();
        let mut a = Allocator::new(cidr, (30000, 30002));
        let mut seen = HashSet::new();
        while let Ok(ip) = a.allocate_ip(None) {
            assert!(cidr.contains(ip) && seen.insert(ip), "{ip}");
        }
        // /29: 8 addresses, minus network, .1 and broadcast.
        assert_eq!(seen.len(), 5);
        assert!(a.allocate_ip(Some("10.43.0.1".parse().unwrap())).is_ok());
        assert!(a
            .allocate_ip(Some("10.43.0.1".parse().unwrap()))
            .unwrap_err()
            .contains("already allocated"));
        assert!(a
            .allocate_ip(Some("10.44.0.1".parse().unwrap()))
            .unwrap_err()
            .contains("not in the valid range"));
        assert_eq!(a.allocate_port(Some(30001)), Ok(30001));
        assert!(a.allocate_port(Some(30001)).is_err());
        assert!(a.allocate_port(Some(80)).is_err());
        let mut ports = vec![
            a.allocate_port(None).unwrap(),
            a.allocate_port(None).unwrap(),
        ];
        ports.sort_unstable();
        assert_eq!(ports, vec![30000, 30002]);
        assert!(a.allocate_port(None).is_err());
        a.release(&json!({"spec": {"clusterIP": "10.43.0.1", "ports": [{"nodePort": 30000}]}}));
        assert_eq!(a.allocate_port(None), Ok(30000));
        assert!("10.43.0.0".parse::<Cidr>().is_err());
        assert!("fd00::/108".parse::<Cidr>().is_err());
    }
}
