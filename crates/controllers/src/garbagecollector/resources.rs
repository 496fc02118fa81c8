//! Which resources the garbage collector and the namespace controller act on, found through
//! API discovery as upstream's `GetDeletableResources`: every resource of the preferred
//! version of each group that can be listed, watched and deleted.

use std::collections::HashMap;

use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};

/// One resource the collectors act on.
#[derive(Clone, Debug)]
pub struct Deletable {
    /// Its group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    /// Whether it answers deletecollection.
    pub delete_collection: bool,
}

impl Deletable {
    /// `plural.group`, as upstream names a resource in messages (`pods.` for the core group).
    pub fn display(&self) -> String {
        format!("{}.{}", self.resource.plural, self.resource.group)
    }
}

/// Every deletable resource, by `(apiVersion, kind)` too.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    /// The resources at their group's preferred version, in discovery order.
    pub all: Vec<Deletable>,
    /// Other versions, only to resolve owner references that name them.
    others: Vec<Deletable>,
    by_kind: HashMap<(String, String), usize>,
    by_group_kind: HashMap<(String, String), usize>,
}

impl Resources {
    /// The resource serving `kind` at `api_version` (or, failing that, at any version of
    /// its group: owner references may name an older version).
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<&Deletable> {
        if let Some(i) = self.by_kind.get(&(api_version.to_owned(), kind.to_owned())) {
            return self.all.get(*i);
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if let Some(i) = self.by_group_kind.get(&(group.to_owned(), kind.to_owned())) {
            return self.all.get(*i);
        }
        self.others
            .iter()
            .find(|d| d.resource.api_version == api_version && d.resource.kind == kind)
    }
}

fn caps_ok(caps: &ApiCapabilities) -> bool {
    [verbs::LIST, verbs::WATCH, verbs::DELETE]
        .iter()
        .all(|v| caps.supports_operation(v))
}

/// Discovers the deletable resources.
pub async fn discover(client: &kube::Client) -> Result<Resources, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut out = Resources::default();
    for group in discovery.groups() {
        for version in group.versions() {
            let preferred = group.preferred_version_or_latest() == version;
            for (ar, caps) in group.versioned_resources(version) {
                if !caps_ok(&caps) {
                    continue;
                }
                let key = (ar.api_version.clone(), ar.kind.clone());
                let gk = (ar.group.clone(), ar.kind.clone());
                let d = Deletable {
                    namespaced: caps.scope == Scope::Namespaced,
                    delete_collection: caps.supports_operation(verbs::DELETE_COLLECTION),
                    resource: ar,
                };
                if preferred {
                    out.by_group_kind.insert(gk, out.all.len());
                    out.by_kind.insert(key, out.all.len());
                    out.all.push(d);
                } else {
                    out.others.push(d);
                }
            }
        }
    }
    Ok(out)
}
