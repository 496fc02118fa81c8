//! A throwaway etcd server for tests and benchmarks: started from the `etcd` binary on free
//! loopback ports with a temporary data directory, and killed when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::etcd::EtcdStore;
use crate::{Error, Result, Store};

/// A running etcd, owned by this process.
pub struct EtcdProcess {
    child: Child,
    endpoint: String,
    _data: tempfile::TempDir,
}

impl std::fmt::Debug for EtcdProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdProcess")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::backend("finding a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::backend("finding a free port", e))
}

/// Where the etcd binary is: `$ETCD_BIN`, else `etcd` on the PATH.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

impl EtcdProcess {
    /// Starts etcd and waits until it answers (at most 30 s). Retries on a port clash.
    pub async fn start() -> Result<Self> {
        Self::start_in(&std::env::temp_dir()).await
    }

    /// Like [`start`](Self::start), with the data directory made under `parent`.
    pub async fn start_in(parent: &std::path::Path) -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start(parent).await {
                Ok(p) => return Ok(p),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::Closed))
    }

    async fn try_start(parent: &std::path::Path) -> Result<Self> {
        let data =
            tempfile::tempdir_in(parent).map_err(|e| Error::backend("creating a temp dir", e))?;
        let (client, peer) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(etcd_binary())
            .arg("--name=test")
            .arg(format!("--data-dir={}", data.path().join("etcd").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=test={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::backend(
                    format!(
                        "starting {} (install Debian's etcd-server)",
                        etcd_binary().display()
                    ),
                    e,
                )
            })?;
        let mut process = EtcdProcess {
            child,
            endpoint: client_url,
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(Error::Backend {
                    message: format!("etcd exited during start-up: {status}"),
                    source: None,
                });
            }
            if let Ok(store) = EtcdStore::connect(&[process.endpoint.clone()]).await {
                if store.current_revision().await.is_ok() {
                    return Ok(process);
                }
            }
            if Instant::now() > deadline {
                let _ = process.child.kill();
                return Err(Error::Backend {
                    message: "etcd did not answer within 30 s".into(),
                    source: None,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A store connected to this etcd.
    pub async fn store(&self) -> Result<EtcdStore> {
        EtcdStore::connect(std::slice::from_ref(&self.endpoint)).await
    }

    /// The etcd server's process id (to measure its memory, say).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
