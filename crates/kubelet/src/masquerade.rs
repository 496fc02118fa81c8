//! Masquerading of traffic that leaves the node's pod range: one chain per node, jumped to
//! from nat POSTROUTING for sources in the range, as flannel and k3s do it. The bridge
//! plugin's own `ipMasq` makes a chain per pod instead, which costs several iptables runs
//! (each holding the xtables lock) on every pod start and stop — measured in
//! docs/performance.md.

use std::path::PathBuf;

use tokio::process::Command;

/// Why a rule could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// iptables is not installed.
    #[error("iptables not found in PATH: install it (Debian: apt-get install iptables)")]
    Missing,
    /// A run of iptables failed.
    #[error("iptables {args}: {message}")]
    Failed {
        /// Its arguments.
        args: String,
        /// What it said.
        message: String,
    },
}

/// The chain for a node's pod range, named after its bridge (`tug0a2a0000` →
/// `TUG-MASQ-0a2a0000`), so nodes of different clusters on one host keep their own.
pub fn chain(bridge: &str) -> String {
    format!("TUG-MASQ-{}", bridge.strip_prefix("tug").unwrap_or(bridge))
}

/// The rules, in order, of the chain for `pod_cidr`: traffic within the range and multicast
/// keep their source, everything else leaves with the node's address.
pub fn rules(pod_cidr: &str) -> Vec<Vec<String>> {
    let rule = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect();
    vec![
        rule(&["-d", pod_cidr, "-j", "RETURN"]),
        rule(&["-d", "224.0.0.0/4", "-j", "RETURN"]),
        rule(&["-j", "MASQUERADE"]),
    ]
}

/// The POSTROUTING rule that sends the range's traffic to `chain`.
fn jump(pod_cidr: &str, chain: &str) -> Vec<String> {
    [
        "-s",
        pod_cidr,
        "-m",
        "comment",
        "--comment",
        "tug pod masquerade",
        "-j",
        chain,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn iptables() -> Result<PathBuf, Error> {
    crate::containerd::which("iptables").ok_or(Error::Missing)
}

/// Runs `iptables -w -t nat ARGS`; returns whether it succeeded, or its error when `check`.
async fn nat(args: &[String], check: bool) -> Result<bool, Error> {
    let out = Command::new(iptables()?)
        .args(["-w", "-t", "nat"])
        .args(args)
        .output()
        .await
        .map_err(|e| Error::Failed {
            args: args.join(" "),
            message: e.to_string(),
        })?;
    if out.status.success() || !check {
        return Ok(out.status.success());
    }
    Err(Error::Failed {
        args: args.join(" "),
        message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

fn with(head: &[&str], rest: Vec<String>) -> Vec<String> {
    head.iter().map(|s| (*s).to_owned()).chain(rest).collect()
}

/// Makes the chain for `pod_cidr` hold exactly its rules and POSTROUTING jump to it.
pub async fn ensure(bridge: &str, pod_cidr: &str) -> Result<(), Error> {
    let chain = chain(bridge);
    // -N fails when the chain exists; the flush below makes either case the same.
    nat(&with(&["-N"], vec![chain.clone()]), false).await?;
    nat(&with(&["-F"], vec![chain.clone()]), true).await?;
    for r in rules(pod_cidr) {
        nat(&with(&["-A", &chain], r), true).await?;
    }
    let jump = jump(pod_cidr, &chain);
    if !nat(&with(&["-C", "POSTROUTING"], jump.clone()), false).await? {
        nat(&with(&["-A", "POSTROUTING"], jump), true).await?;
    }
    Ok(())
}

/// Removes the chain for `pod_cidr` and the jumps to it; nothing to remove is fine.
pub async fn remove(bridge: &str, pod_cidr: &str) -> Result<(), Error> {
    let chain = chain(bridge);
    let jump = jump(pod_cidr, &chain);
    // One -D removes one copy; stop when none is left (bounded, in case -D keeps failing).
    for _ in 0..16 {
        if !nat(&with(&["-D", "POSTROUTING"], jump.clone()), false).await? {
            break;
        }
    }
    nat(&with(&["-F"], vec![chain.clone()]), false).await?;
    nat(&with(&["-X"], vec![chain]), false).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_follow_the_bridge() {
        assert_eq!(chain("tug0a2a0000"), "TUG-MASQ-0a2a0000");
        assert!(
            chain("tug0a2a0000").len() <= 28,
            "iptables chain names are short"
        );
    }

    #[test]
    fn range_traffic_keeps_its_source() {
        let r = rules("10.42.0.0/24");
        assert_eq!(r[0], ["-d", "10.42.0.0/24", "-j", "RETURN"]);
        assert_eq!(r[1][1], "224.0.0.0/4");
        assert_eq!(r.last().map(|l| l[1].as_str()), Some("MASQUERADE"));
    }
}
