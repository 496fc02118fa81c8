//! What the control-loop commands share: clients from a kubeconfig, Go-style durations for
//! flags such as `--node-monitor-grace-period`, and running a component under leader
//! election (`--leader-elect`, a Lease in kube-system named as upstream's).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tug_runtime::leader;

/// A client from a kubeconfig file (its current context).
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("loading the kubeconfig {}", path.display()))?;
    kube::Client::try_from(config).context("building the API client")
}

/// Parses a Go duration as upstream's flags take them: `40s`, `5m`, `1m30s`, `500ms`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (examples: 40s, 5m, 1m30s, 500ms)");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(value * seconds).map_err(|_| bad())?;
    }
    Ok(total)
}

/// Runs `component` while this process leads the Lease `kube-system/<lease>` (or at once
/// without `--leader-elect`). Losing the lease ends the process, as upstream's components
/// do, so a fresh start campaigns again.
pub async fn run_elected<F: Future<Output = ()>>(
    client: kube::Client,
    lease: &str,
    identity: String,
    elect: bool,
    component: F,
) {
    if !elect {
        return component.await;
    }
    tracing::info!(lease, %identity, "waiting for leadership");
    let mut leadership =
        leader::acquire(client, leader::Config::new("kube-system", lease, identity)).await;
    tokio::select! {
        () = component => {}
        () = leadership.lost() => {
            tracing::error!(lease, "leader election lost; exiting");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("forty").is_err());
        assert!(parse_duration("40").is_err());
        assert!(parse_duration("").is_err());
    }
}
