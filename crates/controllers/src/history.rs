//! ControllerRevisions: the template history of StatefulSets and DaemonSets, as upstream's
//! `pkg/controller/history` and the two controllers' `getPatch`/`constructHistory`. A
//! revision is named `<owner>-<hash>`, carries the label `controller-revision-hash`, a
//! revision number, and as data the patch that restores the owner's pod template
//! (`{"spec":{"template":{…,"$patch":"replace"}}}`). A sync finds the revision equal to
//! the current template (renumbering it when an older one comes back), or creates it,
//! bumping the owner's collisionCount when its name is taken by different data.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use crate::deployment::util::compute_hash;
use crate::util::{controller_of, controller_ref};

/// The label naming a revision's hash (on revisions, and on the pods made from them).
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// The patch that restores `template`, a revision's data.
pub fn patch_of(template: &PodTemplateSpec) -> serde_json::Value {
    let mut t = serde_json::to_value(template).unwrap_or_default();
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), "replace".into());
    }
    serde_json::json!({ "spec": { "template": t } })
}

/// The pod template a revision restores.
pub fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.0.get("spec")?.get("template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The hash of a revision's data and a collision count (upstream's
/// `HashControllerRevision`: FNV-32a, safe-encoded).
pub fn hash(data: &serde_json::Value, collision_count: Option<i32>) -> String {
    compute_hash(data, collision_count)
}

/// `<owner>-<hash>`, the owner's name cut so the whole fits a name (upstream's
/// `ControllerRevisionName`).
pub fn revision_name(owner: &str, hash: &str) -> String {
    let prefix = if owner.len() > 223 {
        &owner[..223]
    } else {
        owner
    };
    format!("{prefix}-{hash}")
}

/// The revisions and the collision count after a sync.
#[derive(Debug)]
pub struct History {
    /// Every revision the owner has, by revision number.
    pub revisions: Vec<ControllerRevision>,
    /// The revision of the current template.
    pub update: ControllerRevision,
    /// The owner's collisionCount (possibly bumped).
    pub collision_count: Option<i32>,
}

/// The revisions `owner` controls among `all`, sorted by revision number.
pub fn owned<K: Resource>(
    owner: &K,
    all: Vec<std::sync::Arc<ControllerRevision>>,
) -> Vec<ControllerRevision> {
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let mut revs: Vec<ControllerRevision> = all
        .into_iter()
        .filter(|r| controller_of(r.as_ref()).is_some_and(|c| c.uid == uid))
        .map(|r| (*r).clone())
        .collect();
    revs.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    revs
}

/// Finds or makes the revision of `template` for `owner` (upstream's
/// `getStatefulSetRevisions` / `constructHistory`).
pub async fn sync<K>(
    client: &kube::Client,
    owner: &K,
    template: &PodTemplateSpec,
    mut revisions: Vec<ControllerRevision>,
    mut collision_count: Option<i32>,
) -> Result<History, kube::Error>
where
    K: Resource<DynamicType = ()>,
{
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let data = patch_of(template);
    let next = revisions
        .iter()
        .filter_map(|r| r.revision)
        .max()
        .unwrap_or(0)
        + 1;
    let equal = revisions.iter().rposition(|r| r.data.0 == data);
    let update = match equal {
        Some(i) if i + 1 == revisions.len() => revisions[i].clone(),
        Some(i) => {
            // An earlier template came back: it becomes the newest revision.
            let mut rev = revisions[i].clone();
            rev.revision = Some(next);
            let rev = api
                .replace(&rev.name_any(), &PostParams::default(), &rev)
                .await?;
            revisions[i] = rev.clone();
            rev
        }
        None => loop {
            let h = hash(&data, collision_count);
            let mut labels: BTreeMap<String, String> = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(CONTROLLER_REVISION_HASH.to_owned(), h.clone());
            let rev = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(revision_name(
                        &owner.meta().name.clone().unwrap_or_default(),
                        &h,
                    )),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    owner_references: Some(vec![controller_ref(owner)]),
                    ..ObjectMeta::default()
                },
                data: RawExtension(data.clone()),
                revision: Some(next),
            };
            match api.create(&PostParams::default(), &rev).await {
                Ok(created) => {
                    revisions.push(created.clone());
                    break created;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let existing = api.get(&rev.name_any()).await?;
                    let ours = controller_of(&existing)
                        .is_some_and(|c| Some(&c.uid) == owner.meta().uid.as_ref());
                    if ours && existing.data.0 == data {
                        revisions.push(existing.clone());
                        break existing;
                    }
                    collision_count = Some(collision_count.unwrap_or(0) + 1);
                }
                Err(e) => return Err(e),
            }
        },
    };
    revisions.sort_by_key(|r| r.revision);
    Ok(History {
        revisions,
        update,
        collision_count,
    })
}

/// Deletes the oldest revisions not in `live` beyond `limit` (revisionHistoryLimit,
/// default 10).
pub async fn truncate(
    client: &kube::Client,
    revisions: &[ControllerRevision],
    live: &HashSet<String>,
    limit: Option<i32>,
) -> Result<(), kube::Error> {
    let limit = usize::try_from(limit.unwrap_or(10)).unwrap_or(0);
    let dead: Vec<&ControllerRevision> = revisions
        .iter()
        .filter(|r| !live.contains(&r.name_any()))
        .collect();
    if dead.len() <= limit {
        return Ok(());
    }
    for rev in &dead[..dead.len() - limit] {
        let api: Api<ControllerRevision> =
            Api::namespaced(client.clone(), &rev.namespace().unwrap_or_default());
        match api.delete(&rev.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_to_the_template() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": { "labels": { "app": "web" } },
            "spec": { "containers": [{ "name": "c", "image": "nginx" }] },
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let data = patch_of(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let rev = ControllerRevision {
            data: RawExtension(data.clone()),
            ..ControllerRevision::default()
        };
        assert_eq!(template_of(&rev), Some(t));
        assert_ne!(hash(&data, None), hash(&data, Some(1)));
        assert_eq!(revision_name("web", "abc"), "web-abc");
    }
}
