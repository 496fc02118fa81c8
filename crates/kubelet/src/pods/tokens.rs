//! Service account tokens for projected `serviceAccountToken` sources, as upstream's
//! kubelet token manager: requested through TokenRequest bound to the pod (its name and
//! uid), kept per (pod, account, audience, lifetime), and requested again once 80% of the
//! lifetime has passed (at most a day), when the pod is queued again to rewrite the file.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::PostParams;
use kube::Api;
use tug_runtime::ObjectKey;

use super::Kubelet;

/// A projected source's wish: audience ("" for the API server's) and lifetime in seconds.
pub type Wish = (String, i64);

/// Upstream's default lifetime of a projected token.
const DEFAULT_SECONDS: i64 = 3600;
/// The longest a token is kept before it is renewed, whatever its lifetime.
const MAX_KEEP: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Key {
    uid: String,
    account: String,
    wish: Wish,
}

struct Entry {
    token: String,
    renew_at: Instant,
}

/// The tokens the node holds.
#[derive(Default)]
pub struct Tokens {
    held: Mutex<HashMap<Key, Entry>>,
}

/// The (audience, lifetime) of every `serviceAccountToken` source of `pod`.
pub fn wishes(pod: &Pod) -> Vec<Wish> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| {
            (
                t.audience.clone().unwrap_or_default(),
                t.expiration_seconds.unwrap_or(DEFAULT_SECONDS),
            )
        })
        .collect()
}

/// When to renew a token of `seconds` lifetime issued now.
fn renew_after(seconds: i64) -> Duration {
    let life = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    (life * 4 / 5).min(MAX_KEEP)
}

impl Tokens {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh token for each of `pod`'s wishes, requesting those missing or due.
    pub async fn for_pod(
        &self,
        k: &Kubelet,
        pod: &Pod,
    ) -> Result<HashMap<Wish, String>, kube::Error> {
        let mut out = HashMap::new();
        let wishes = wishes(pod);
        if wishes.is_empty() {
            return Ok(out);
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned());
        // The pod comes back when the first token fetched now is due (tokens still held
        // were scheduled when they were fetched).
        let mut first_due: Option<Instant> = None;
        for wish in wishes {
            let key = Key {
                uid: uid.clone(),
                account: account.clone(),
                wish: wish.clone(),
            };
            let held = self
                .held()
                .get(&key)
                .filter(|e| e.renew_at > Instant::now())
                .map(|e| (e.token.clone(), e.renew_at));
            let token = match held {
                Some((token, _)) => token,
                None => {
                    let token = request(k, &ns, &account, &name, &uid, &wish).await?;
                    let renew_at = Instant::now() + renew_after(wish.1);
                    self.held().insert(
                        key,
                        Entry {
                            token: token.clone(),
                            renew_at,
                        },
                    );
                    first_due = Some(first_due.map_or(renew_at, |d| d.min(renew_at)));
                    token
                }
            };
            out.insert(wish, token);
        }
        if let Some(due) = first_due {
            let key = ObjectKey::new(&ns, &name);
            k.queue
                .add_after(key, due.saturating_duration_since(Instant::now()));
        }
        Ok(out)
    }

    /// Drops the tokens of a pod that is gone.
    pub fn forget(&self, uid: &str) {
        self.held().retain(|k, _| k.uid != uid);
    }
}

async fn request(
    k: &Kubelet,
    ns: &str,
    account: &str,
    pod: &str,
    uid: &str,
    (audience, seconds): &Wish,
) -> Result<String, kube::Error> {
    let req = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audience.is_empty()).then(|| vec![audience.clone()]),
            expiration_seconds: Some(*seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: Some(pod.to_owned()),
                uid: Some(uid.to_owned()),
            }),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(k.client.clone(), ns);
    let out: TokenRequest = api
        .create_subresource("token", account, &PostParams::default(), &req)
        .await?;
    Ok(out.status.and_then(|s| s.token).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_at_four_fifths_of_their_life_or_a_day() {
        assert_eq!(renew_after(3607), Duration::from_millis(2_885_600));
        assert_eq!(renew_after(600), Duration::from_secs(480));
        assert_eq!(renew_after(7 * 24 * 3600), MAX_KEEP);
    }

    #[test]
    fn wishes_default_to_the_api_audience_and_an_hour() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [], "volumes": [
                {"name": "a", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"serviceAccountToken": {"path": "vault", "audience": "vault", "expirationSeconds": 7200}},
                    {"configMap": {"name": "x"}}
                ]}},
                {"name": "b", "emptyDir": {}}
            ]}
        }))
        .unwrap_or_default();
        assert_eq!(
            wishes(&pod),
            vec![(String::new(), 3600), ("vault".to_owned(), 7200)]
        );
    }
}
