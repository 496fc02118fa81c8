//! Leader election through a coordination.k8s.io/v1 Lease, as upstream's leaderelection
//! package: a candidate takes the lease when it is free or when its holder has not renewed it
//! for `lease_duration` (measured by this candidate's own clock from when it last saw the
//! lease change, so clocks need not agree); the leader renews every `retry_period` and gives
//! up leadership if it cannot renew for `renew_deadline`.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::Api;
use tokio::sync::watch;

/// Leader election settings; the defaults are upstream's (15 s, 10 s, 2 s).
#[derive(Clone, Debug)]
pub struct Config {
    /// The namespace of the Lease (upstream: kube-system).
    pub namespace: String,
    /// The Lease's name (e.g. kube-scheduler, kube-controller-manager).
    pub name: String,
    /// Who this candidate is (upstream: hostname + "_" + a random suffix).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    pub renew_deadline: Duration,
    /// How often to try.
    pub retry_period: Duration,
}

impl Config {
    /// Upstream's defaults for the lease `namespace/name`, held as `identity`.
    pub fn new(namespace: &str, name: &str, identity: String) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A held leadership: [`lost`](Leadership::lost) resolves if it is lost. Dropping it stops
/// renewing (the lease then expires for the others).
pub struct Leadership {
    lost: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Resolves when this candidate is no longer the leader.
    /// A renewer that went away without saying so (the runtime shutting down) is not a
    /// loss: only an explicit one resolves this.
    pub async fn lost(&mut self) {
        if self.lost.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A unique identity for this process: the host name and a random suffix.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "tug".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}_{:08x}{:04x}", nanos, std::process::id() & 0xffff)
}

/// What this candidate last saw of the lease, and when.
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>, Option<i32>)>,
    at: Instant,
}

/// Waits until this candidate leads, then keeps renewing in the background.
pub async fn acquire(client: kube::Client, config: Config) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed = Observed {
        record: None,
        at: Instant::now(),
    };
    loop {
        match try_acquire_or_renew(&api, &config, &mut observed).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(lease = %config.name, error = %e, "leader election: trying again")
            }
        }
        tokio::time::sleep(config.retry_period).await;
    }
    tracing::info!(lease = %config.name, identity = %config.identity, "became leader");
    let (tx, lost) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(config.retry_period).await;
            // As upstream: a failed or lost renewal is retried until the renew deadline.
            match try_acquire_or_renew(&api, &config, &mut observed).await {
                Ok(true) => last_renew = Instant::now(),
                Ok(false) => tracing::debug!(lease = %config.name, "lease held elsewhere"),
                Err(e) => {
                    tracing::debug!(lease = %config.name, error = %e, "renewing the lease failed");
                }
            }
            if last_renew.elapsed() >= config.renew_deadline {
                break;
            }
        }
        tracing::warn!(lease = %config.name, "leadership lost");
        let _ = tx.send(true);
    });
    Leadership { lost, task }
}

/// One attempt: `Ok(true)` when this candidate holds the lease afterwards.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &Config,
    observed: &mut Observed,
) -> Result<bool, kube::Error> {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let duration_secs = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let record = (
        spec.holder_identity.clone(),
        spec.renew_time.clone(),
        spec.lease_transitions,
    );
    if observed.record.as_ref() != Some(&record) {
        observed.record = Some(record);
        observed.at = Instant::now();
    }
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    let mine = holder == Some(config.identity.as_str());
    let held_for = spec
        .lease_duration_seconds
        .map_or(config.lease_duration, |s| {
            Duration::from_secs(s.max(0) as u64)
        });
    if !mine && holder.is_some() && observed.at.elapsed() < held_for {
        return Ok(false);
    }
    let mut new = spec;
    if !mine {
        new.acquire_time = Some(now.clone());
        new.lease_transitions = Some(new.lease_transitions.unwrap_or(0) + 1);
    }
    new.holder_identity = Some(config.identity.clone());
    new.lease_duration_seconds = Some(duration_secs);
    new.renew_time = Some(now);
    lease.spec = Some(new);
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
