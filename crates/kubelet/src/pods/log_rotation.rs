//! Container log rotation, as upstream's kubelet does it (`containerLogMaxSize`,
//! `containerLogMaxFiles`, checked every 10 s): a running container's log file over the
//! size is renamed to `<file>.<UTC timestamp>`, the runtime reopens the log (CRI
//! ReopenContainerLog), and the oldest rotated files beyond the count go. Rotated files are
//! kept as they are (upstream compresses all but the newest).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Kubelet;
use crate::cri::api;

/// How often logs are checked.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The size at which a log is rotated, in bytes.
    pub max_size: u64,
    /// How many files a container's log may span, the current one included (at least 2).
    pub max_files: usize,
}

impl Default for Limits {
    /// Upstream's defaults: 10Mi, 5 files.
    fn default() -> Self {
        Self {
            max_size: 10 << 20,
            max_files: 5,
        }
    }
}

/// Checks the logs of running containers every [`INTERVAL`] until dropped.
pub async fn run(k: Arc<Kubelet>, limits: Limits) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Ok(containers) = k.cri.containers().await else {
            continue;
        };
        for c in containers
            .iter()
            .filter(|c| c.state == api::ContainerState::ContainerRunning as i32)
        {
            let Ok(status) = k.cri.container_status(&c.id).await else {
                continue;
            };
            if status.log_path.is_empty() {
                continue;
            }
            if let Err(e) = rotate(&k, &c.id, Path::new(&status.log_path), limits).await {
                tracing::warn!(container = %c.id, error = %e, "rotating the container log failed");
            }
        }
    }
}

/// The name a log rotated now gets.
fn rotated_name(log: &Path, now: k8s_openapi::jiff::Timestamp) -> PathBuf {
    let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{stamp}"));
    log.with_file_name(name)
}

/// The rotated files of `log`, oldest first.
pub fn rotated(log: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    // The timestamps sort as text.
    found.sort();
    found
}

async fn rotate(k: &Kubelet, id: &str, log: &Path, limits: Limits) -> std::io::Result<()> {
    let size = match std::fs::metadata(log) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if size < limits.max_size {
        return Ok(());
    }
    let to = rotated_name(log, k8s_openapi::jiff::Timestamp::now());
    std::fs::rename(log, &to)?;
    if let Err(e) = k.cri.reopen_log(id).await {
        // The runtime still writes to the renamed file: put it back.
        std::fs::rename(&to, log)?;
        return Err(std::io::Error::other(e.to_string()));
    }
    let old = rotated(log);
    let keep = limits.max_files.max(2) - 1;
    for p in old.iter().take(old.len().saturating_sub(keep)) {
        std::fs::remove_file(p)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_named_by_time_and_found_oldest_first() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = dir.path().join("0.log");
        let t = |s: &str| {
            s.parse::<k8s_openapi::jiff::Timestamp>()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let a = rotated_name(&log, t("2026-11-23T10:00:00Z"));
        let b = rotated_name(&log, t("2026-11-23T09:59:59Z"));
        assert_eq!(
            a.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .as_deref(),
            Some("0.log.20261123-100000")
        );
        for p in [&a, &b, &log, &dir.path().join("1.log")] {
            std::fs::write(p, b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(rotated(&log), vec![b, a]);
    }
}
