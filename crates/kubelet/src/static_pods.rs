//! Static pods: manifests in `<data-dir>/agent/pod-manifests` (YAML or JSON, one pod per
//! file) run on this node without anyone creating them through the API. As upstream, each
//! gets a mirror pod in the API named `<name>-<node>`, bound to the node and annotated with
//! the manifest's hash; the ordinary pod sync then runs it. The directory is read at start
//! and every 20 s (upstream's file source period): a changed manifest replaces its pod, a
//! removed one deletes it, a deleted mirror pod comes back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use tug_runtime::Store;

/// The annotation naming where a pod came from.
pub const SOURCE: &str = "kubernetes.io/config.source";
/// The manifest's hash.
pub const HASH: &str = "kubernetes.io/config.hash";
/// Marks a mirror pod.
pub const MIRROR: &str = "kubernetes.io/config.mirror";

/// One manifest read from the directory.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The file.
    pub path: PathBuf,
    /// The mirror pod to create.
    pub pod: Pod,
}

fn hash(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The mirror pod of a manifest's text, for `node`; None when it is not a pod.
pub fn mirror(text: &[u8], node: &str) -> Result<Pod, String> {
    let mut pod: Pod = serde_norway::from_slice(text).map_err(|e| e.to_string())?;
    let name = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("the pod has no name")?;
    let h = hash(text);
    pod.metadata.name = Some(format!("{name}-{node}"));
    pod.metadata
        .namespace
        .get_or_insert_with(|| "default".to_owned());
    let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert(SOURCE.into(), "file".into());
    ann.insert(HASH.into(), h.clone());
    ann.insert(MIRROR.into(), h);
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    pod.spec.get_or_insert_with(Default::default).node_name = Some(node.to_owned());
    pod.status = None;
    Ok(pod)
}

/// Reads every manifest in `dir`, logging the ones that are not pods.
pub fn read(dir: &Path, node: &str) -> Vec<Manifest> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| mirror(&t, node))
        {
            Ok(pod) => out.push(Manifest { path, pod }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping a static pod manifest")
            }
        }
    }
    out
}

/// Keeps the mirror pods of `dir` in the API until dropped.
pub async fn run(client: kube::Client, node: String, dir: PathBuf, pods: Store<Pod>) {
    let mut tick = tokio::time::interval(Duration::from_secs(20));
    loop {
        tick.tick().await;
        let manifests = read(&dir, &node);
        let wanted: HashMap<(String, String), &Manifest> = manifests
            .iter()
            .map(|m| {
                let ns = m.pod.metadata.namespace.clone().unwrap_or_default();
                ((ns, m.pod.metadata.name.clone().unwrap_or_default()), m)
            })
            .collect();
        let hash_of = |p: &Pod| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(HASH).cloned())
        };
        for ((ns, name), m) in &wanted {
            let api: Api<Pod> = Api::namespaced(client.clone(), ns);
            match pods.get_in(ns, name) {
                Some(p) if hash_of(&p) == hash_of(&m.pod) => {}
                Some(_) => {
                    let _ = api.delete(name, &DeleteParams::default()).await;
                }
                None => {
                    if let Err(e) = api.create(&PostParams::default(), &m.pod).await {
                        tracing::warn!(pod = %name, error = %e, "creating a mirror pod failed");
                    }
                }
            }
        }
        for p in pods.list() {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            let from_file = p
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.get(SOURCE).is_some_and(|s| s == "file"));
            if from_file
                && !wanted.contains_key(&(ns.clone(), name.clone()))
                && p.metadata.deletion_timestamp.is_none()
            {
                let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_pods_are_named_after_the_node() {
        let text = b"apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: x}]\n";
        let pod = mirror(text, "n1").unwrap_or_default();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
            Some("n1")
        );
        let ann = pod.metadata.annotations.unwrap_or_default();
        assert_eq!(ann.get(SOURCE).map(String::as_str), Some("file"));
        assert_eq!(ann.get(HASH), ann.get(MIRROR));
        assert!(mirror(b"metadata: {}\n", "n1").is_err());
        assert!(mirror(b"[not a pod", "n1").is_err());
    }
}
