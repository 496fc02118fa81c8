//! Container lifecycle hooks (postStart, preStop) as upstream runs them: `exec` in the
//! container (a non-zero exit fails), `httpGet` to the pod (any answer passes; only a failed
//! request fails) or `sleep`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use super::probes::{container_port, http_get};
use super::Kubelet;

/// How long an `httpGet` hook may take when the hook has no deadline of its own.
const HTTP_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `hook` of container `c` (instance `id`, pod IP `pod_ip`), for at most `timeout`
/// when given (preStop: the grace period); postStart hooks run until they finish, as
/// upstream's.
pub async fn run(
    k: &Kubelet,
    c: &Container,
    id: &str,
    pod_ip: &str,
    hook: &LifecycleHandler,
    timeout: Option<Duration>,
) -> Result<(), String> {
    if let Some(e) = &hook.exec {
        let cmd = e.command.clone().unwrap_or_default();
        // CRI: 0 is no timeout.
        let secs = timeout.map_or(0, |t| i64::try_from(t.as_secs()).unwrap_or(0).max(1));
        let r = super::sync::exec_sync(k, id, cmd.clone(), secs)
            .await
            .map_err(|e| e.to_string())?;
        if r.exit_code != 0 {
            let out = String::from_utf8_lossy(&[r.stdout, r.stderr].concat())
                .trim()
                .to_owned();
            return Err(format!(
                "Exec lifecycle hook ({cmd:?}) for Container {:?} failed - error: command {:?} \
                 exited with {}, message: {out:?}",
                c.name,
                cmd.join(" "),
                r.exit_code
            ));
        }
        return Ok(());
    }
    if let Some(h) = &hook.http_get {
        let host = h
            .host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(pod_ip);
        let port = container_port(c, &h.port)?;
        let path = h.path.as_deref().unwrap_or("/");
        let timeout = timeout.unwrap_or(HTTP_TIMEOUT);
        return http_get(host, port, path, h.http_headers.iter().flatten(), timeout)
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "HTTP lifecycle hook ({path}) for Container {:?} failed - error: {e}",
                    c.name
                )
            });
    }
    if let Some(s) = &hook.sleep {
        let secs = u64::try_from(s.seconds).unwrap_or(0);
        let wanted = Duration::from_secs(secs);
        tokio::time::sleep(timeout.map_or(wanted, |t| wanted.min(t))).await;
    }
    Ok(())
}
