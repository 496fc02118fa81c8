//! The served resources: the built-in catalogue plus, for every established
//! CustomResourceDefinition, one resource per served version. URL routing, discovery and
//! the REST handlers read the current set from here; the CRD controller replaces it when
//! CRDs change ([`Resources::set_custom`]), and the discovery documents are rebuilt then.
//!
//! A resource is a `&'static ResourceInfo` everywhere in the server. Custom ones are
//! allocated once per distinct definition and never freed, so a CRD that is updated a
//! thousand times with the same names costs one entry; the leak is bounded by the number of
//! distinct (group, version, names, scope, subresources) combinations ever served.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use tug_api::{ResourceInfo, Subresource};

use crate::discovery::Documents;

/// One served version of a custom resource.
pub struct CustomVersion {
    /// The resource as the rest of the server sees it.
    pub info: &'static ResourceInfo,
    /// The name of the CRD that defines it.
    pub crd: String,
    /// The list kind (`CronTabList`).
    pub list_kind: String,
    /// The singular name.
    pub singular: String,
    /// This version's `openAPIV3Schema` (JSON), for OpenAPI documents.
    pub schema: serde_json::Value,
    /// Validation, defaulting and pruning from that schema.
    pub structural: Option<tug_api::crd::Structural>,
    /// The type strategic merge (refused) and server-side apply use.
    pub ty: tug_api::schema::Ty,
    /// Table columns (`additionalPrinterColumns`).
    pub columns: Vec<tug_api::crd::ColumnDef>,
    /// The scale subresource's paths, if it has one.
    pub scale: Option<ScalePaths>,
    /// Whether it has the status subresource.
    pub status: bool,
}

/// Where the scale subresource reads and writes (`.spec.replicas` …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    /// `specReplicasPath`.
    pub spec_replicas: String,
    /// `statusReplicasPath`.
    pub status_replicas: String,
    /// `labelSelectorPath`, if any.
    pub label_selector: Option<String>,
}

/// The current set of served resources, with its discovery documents.
pub struct Served {
    /// Built-in resources in catalogue order, then custom ones by group (versions in
    /// preference order).
    pub all: Vec<&'static ResourceInfo>,
    /// Custom resources by (group, version, plural).
    pub custom: HashMap<(&'static str, &'static str, &'static str), Arc<CustomVersion>>,
    /// Discovery documents of `all`.
    pub docs: Documents,
}

/// The served resources, replaced as a whole when CRDs change.
pub struct Resources {
    current: RwLock<Arc<Served>>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources::new()
    }
}

impl Resources {
    /// The built-in resources only.
    pub fn new() -> Resources {
        Resources {
            current: RwLock::new(Arc::new(Resources::build(Vec::new()))),
        }
    }

    fn build(custom: Vec<CustomVersion>) -> Served {
        let mut all: Vec<&'static ResourceInfo> = tug_api::catalogue().iter().collect();
        let mut custom: Vec<Arc<CustomVersion>> = custom.into_iter().map(Arc::new).collect();
        custom.sort_by(|a, b| {
            (a.info.group, version_rank(a.info.version), a.info.plural).cmp(&(
                b.info.group,
                version_rank(b.info.version),
                b.info.plural,
            ))
        });
        all.extend(custom.iter().map(|c| c.info));
        let docs = Documents::build(&all);
        Served {
            all,
            custom: custom
                .into_iter()
                .map(|c| ((c.info.group, c.info.version, c.info.plural), c))
                .collect(),
            docs,
        }
    }

    /// The current set.
    pub fn served(&self) -> Arc<Served> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the custom resources.
    pub fn set_custom(&self, custom: Vec<CustomVersion>) {
        let next = Arc::new(Resources::build(custom));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// The resource with this group, version and plural, with its definition if it is a
    /// custom resource: one lookup, no allocation.
    pub fn lookup(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<(&'static ResourceInfo, Option<Arc<CustomVersion>>)> {
        if let Some(info) = tug_api::find(group, version, plural) {
            return Some((info, None));
        }
        let served = self.served();
        // The map's keys are `&'static str`s; it is covariant in them, so it can be read
        // with borrowed ones.
        let custom: &HashMap<(&str, &str, &str), Arc<CustomVersion>> = &served.custom;
        custom
            .get(&(group, version, plural))
            .map(|c| (c.info, Some(c.clone())))
    }
}

/// Upstream's version priority: GA before beta before alpha, higher numbers first, then
/// anything else alphabetically. Smaller ranks come first.
pub fn version_rank(v: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    use std::cmp::Reverse;
    let parsed = v.strip_prefix('v').and_then(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let major: u64 = rest.get(..digits)?.parse().ok()?;
        let tail = rest.get(digits..)?;
        if tail.is_empty() {
            return Some((0, major, 0));
        }
        for (tier, word) in [(1, "beta"), (2, "alpha")] {
            if let Some(n) = tail.strip_prefix(word) {
                let minor: u64 = n.parse().ok()?;
                return Some((tier, major, minor));
            }
        }
        None
    });
    match parsed {
        Some((tier, major, minor)) => (tier, Reverse(major), Reverse(minor), String::new()),
        None => (3, Reverse(0), Reverse(0), v.to_owned()),
    }
}

/// What defines a custom resource's [`ResourceInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CustomNames {
    /// API group.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural.
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Has the status subresource.
    pub status: bool,
    /// Has the scale subresource.
    pub scale: bool,
}

const VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

fn leak_str(s: &str) -> &'static str {
    crate::rest::object::intern(s)
}

fn leak_list(items: &[String]) -> &'static [&'static str] {
    let v: Vec<&'static str> = items.iter().map(|s| leak_str(s)).collect();
    Box::leak(v.into_boxed_slice())
}

/// Custom resources are not typed: the body is kept as sent (schema checks are the CRD's).
fn untyped(value: &serde_json::Value) -> Result<serde_json::Value, serde_json::Error> {
    Ok(value.clone())
}

/// The [`ResourceInfo`] for these names: the same `&'static` for the same names.
pub fn custom_info(names: &CustomNames) -> &'static ResourceInfo {
    static INFOS: LazyLock<Mutex<HashMap<CustomNames, &'static ResourceInfo>>> =
        LazyLock::new(Default::default);
    let mut infos = INFOS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(info) = infos.get(names) {
        return info;
    }
    let group = leak_str(&names.group);
    let version = leak_str(&names.version);
    let kind = leak_str(&names.kind);
    let mut subresources = Vec::new();
    if names.status {
        subresources.push(Subresource {
            name: "status",
            group,
            version,
            kind,
            verbs: SUB_VERBS,
        });
    }
    if names.scale {
        subresources.push(Subresource {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: SUB_VERBS,
        });
    }
    let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
        group,
        version,
        kind,
        plural: leak_str(&names.plural),
        namespaced: names.namespaced,
        short_names: leak_list(&names.short_names),
        categories: leak_list(&names.categories),
        verbs: VERBS,
        subresources: Box::leak(subresources.into_boxed_slice()),
        normalize: untyped,
    }));
    infos.insert(names.clone(), info);
    info
}

/// The groups served by built-in resources: a CRD may not take one of them.
pub fn builtin_groups() -> HashSet<&'static str> {
    tug_api::catalogue().iter().map(|r| r.group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_upstream() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "foo", "v1", "v1beta1", "v10"];
        v.sort_by_key(|x| version_rank(x));
        assert_eq!(
            v,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }

    #[test]
    fn the_same_names_give_the_same_info() {
        let names = CustomNames {
            group: "stable.example.com".into(),
            version: "v1".into(),
            kind: "CronTab".into(),
            plural: "crontabs".into(),
            namespaced: true,
            short_names: vec!["ct".into()],
            categories: vec!["all".into()],
            status: true,
            scale: false,
        };
        let a = custom_info(&names);
        let b = custom_info(&names.clone());
        assert!(std::ptr::eq(a, b));
        assert!(a.has_subresource("status") && !a.has_subresource("scale"));
        assert_eq!(a.short_names, ["ct"]);
    }
}
