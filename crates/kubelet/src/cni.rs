//! Pod networking through CNI: containerd's CRI plugin calls the plugins; the kubelet only
//! writes the network config once its node has a podCIDR — a bridge with host-local IPAM from
//! that range and portmap for hostPorts (containerd adds the loopback network itself).
//! Traffic leaving the range is masqueraded by one node-wide chain ([`crate::masquerade`]),
//! not by the bridge plugin per pod.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// The config file the kubelet writes.
pub const CONF_FILE: &str = "10-tug.conflist";

/// The bridge for a pod range: `tug` and the range's network address in hex, so two nodes of
/// different clusters on one host (tests) never share a bridge.
pub fn bridge_name(pod_cidr: &str) -> Option<String> {
    let (ip, prefix) = pod_cidr.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let _: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some(format!("tug{:08x}", u32::from(ip)))
}

/// The conflist for a node whose pods take addresses from `pod_cidr`.
pub fn conflist(pod_cidr: &str, ipam_dir: &Path) -> Option<String> {
    let bridge = bridge_name(pod_cidr)?;
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "tug",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": ipam_dir,
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    serde_json::to_string_pretty(&conf).ok()
}

/// The bridge and pod range of the conflist written in `conf_dir`, if any.
pub fn written(conf_dir: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(conf_dir.join(CONF_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let plugin = &v["plugins"][0];
    Some((
        plugin["bridge"].as_str()?.to_owned(),
        plugin["ipam"]["ranges"][0][0]["subnet"]
            .as_str()?
            .to_owned(),
    ))
}

/// Writes the conflist into `conf_dir` (atomically: a reader never sees half a file).
/// Returns false when `pod_cidr` is not an IPv4 CIDR.
pub fn write(conf_dir: &Path, pod_cidr: &str, ipam_dir: &Path) -> std::io::Result<bool> {
    let Some(text) = conflist(pod_cidr, ipam_dir) else {
        return Ok(false);
    };
    std::fs::create_dir_all(conf_dir)?;
    let path = conf_dir.join(CONF_FILE);
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(true);
    }
    let tmp: PathBuf = conf_dir.join(format!(".{CONF_FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_names_follow_the_range() {
        assert_eq!(bridge_name("10.42.0.0/24").as_deref(), Some("tug0a2a0000"));
        assert_eq!(bridge_name("10.42.1.0/24").as_deref(), Some("tug0a2a0100"));
        assert!(bridge_name("10.42.0.0").is_none());
        assert!(bridge_name("fd00::/64").is_none());
        assert!(bridge_name("10.42.0.0/33").is_none());
    }

    #[test]
    fn conflist_has_the_range_and_portmap() {
        let c = conflist("10.42.3.0/24", Path::new("/d/ipam")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&c).unwrap_or_default();
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.3.0/24"
        );
        assert_eq!(v["plugins"][0]["bridge"], "tug0a2a0300");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert_eq!(v["plugins"][0]["ipam"]["dataDir"], "/d/ipam");
        assert_eq!(
            v["plugins"][0]["ipMasq"], false,
            "the node masquerades, not each pod"
        );
    }

    #[test]
    fn written_config_names_bridge_and_range() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        assert!(written(dir.path()).is_none());
        let ok = write(dir.path(), "10.42.3.0/24", Path::new("/d/ipam"));
        assert!(matches!(ok, Ok(true)), "{ok:?}");
        assert_eq!(
            written(dir.path()),
            Some(("tug0a2a0300".to_owned(), "10.42.3.0/24".to_owned()))
        );
    }
}
