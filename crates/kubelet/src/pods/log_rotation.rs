//! Container log rotation, as upstream's kubelet does it (`containerLogMaxSize`,
//! `containerLogMaxFiles`, checked every 10 s): a running container's log file over the
//! size is renamed to `<file>.<UTC timestamp>`, the runtime reopens the log (CRI
//! ReopenContainerLog), and the oldest rotated files beyond the count go. As upstream, every
//! rotated file but the newest is gzipped (`<file>.<timestamp>.gz`, written as `….gz.tmp` and
//! renamed); leftovers of an interrupted compression are cleaned up first.

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
    // Gzip is CPU work: off the async threads.
    let owned = log.to_path_buf();
    tokio::task::spawn_blocking(move || make_room(&owned, limits.max_files))
        .await
        .map_err(std::io::Error::other)??;
    let to = rotated_name(log, k8s_openapi::jiff::Timestamp::now());
    std::fs::rename(log, &to)?;
    if let Err(e) = k.cri.reopen_log(id).await {
        // The runtime still writes to the renamed file: put it back.
        std::fs::rename(&to, log)?;
        return Err(std::io::Error::other(e.to_string()));
    }
    Ok(())
}

/// Upstream's order before a rotation: tidy, remove the oldest rotated files (the one rotated
/// next counts), compress the rest.
fn make_room(log: &Path, max_files: usize) -> std::io::Result<()> {
    let old = clean_up(rotated(log))?;
    let keep = max_files.max(2) - 2;
    let (gone, kept) = old.split_at(old.len().saturating_sub(keep));
    for p in gone {
        std::fs::remove_file(p)?;
    }
    for p in kept.iter().filter(|p| !is_compressed(p)) {
        compress(p)?;
    }
    Ok(())
}

const GZ: &str = ".gz";
const TMP: &str = ".tmp";

fn has_suffix(p: &Path, suffix: &str) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
}

fn is_compressed(p: &Path) -> bool {
    has_suffix(p, GZ)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes what an interrupted rotation left (`.tmp` files; an uncompressed file whose
/// compressed twin exists) and answers the rotated files that remain, oldest first.
fn clean_up(files: Vec<PathBuf>) -> std::io::Result<Vec<PathBuf>> {
    let mut kept = Vec::with_capacity(files.len());
    for p in &files {
        let stale = has_suffix(p, TMP) || (!is_compressed(p) && with_suffix(p, GZ).exists());
        if stale {
            remove_if_present(p)?;
        } else {
            kept.push(p.clone());
        }
    }
    Ok(kept)
}

fn remove_if_present(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Gzips `p` into `p.gz` (through `p.gz.tmp`, so a reader never sees half a file) and removes
/// `p`.
fn compress(p: &Path) -> std::io::Result<()> {
    let gz = with_suffix(p, GZ);
    let tmp = with_suffix(&gz, TMP);
    let mut input = std::fs::File::open(p)?;
    let out = std::fs::File::create(&tmp)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let written = std::io::copy(&mut input, &mut enc).and_then(|_| enc.finish());
    if let Err(e) = written {
        remove_if_present(&tmp)?;
        return Err(e);
    }
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(p)
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

    #[test]
    fn compression_round_trips_and_leftovers_are_cleaned() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = dir.path().join("0.log");
        let done = dir.path().join("0.log.20261123-090000");
        let half = dir.path().join("0.log.20261123-093000");
        let fresh = dir.path().join("0.log.20261123-100000");
        let text = "2026-11-23T09:00:00Z stdout F hello\n".repeat(1000);
        for p in [&done, &half, &fresh] {
            std::fs::write(p, &text).unwrap_or_else(|e| panic!("{e}"));
        }
        // An earlier compression of `done` finished but left the original; one of `half` was
        // cut short.
        compress(&done).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&done, &text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(with_suffix(&with_suffix(&half, GZ), TMP), b"junk")
            .unwrap_or_else(|e| panic!("{e}"));
        let kept = clean_up(rotated(&log)).unwrap_or_else(|e| panic!("{e}"));
        let gz_done = with_suffix(&done, GZ);
        assert_eq!(kept, vec![gz_done.clone(), half.clone(), fresh]);
        assert!(!done.exists());
        let mut back = String::new();
        flate2::read::GzDecoder::new(
            std::fs::File::open(&gz_done).unwrap_or_else(|e| panic!("{e}")),
        )
        .read_to_string(&mut back)
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, text);
        let size = std::fs::metadata(&gz_done).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0 && size < text.len() as u64 / 10, "{size}");
    }
}
