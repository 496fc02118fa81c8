//! Resource URLs: `/api/v1/...` and `/apis/<group>/<version>/...` read into the resource,
//! namespace, name and subresource they address.

use tug_api::ResourceInfo;

use super::resources::Resources;
use crate::status::ApiError;

/// What a URL addresses.
#[derive(Clone)]
pub struct Target {
    /// The resource.
    pub info: &'static ResourceInfo,
    /// The namespace (namespaced resources; `None` = all namespaces).
    pub namespace: Option<String>,
    /// The object's name (`None` = the collection).
    pub name: Option<String>,
    /// The subresource (`status`, `scale`…).
    pub sub: Option<String>,
    /// The custom resource definition behind `info`, for custom resources.
    pub custom: Option<std::sync::Arc<super::resources::CustomVersion>>,
}

impl Target {
    /// The name, or "" for a collection.
    pub fn name_str(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// For error messages.
    pub fn status_target(&self) -> crate::status::Target<'_> {
        crate::status::Target {
            resource: self.info.plural,
            group: self.info.group,
            name: self.name_str(),
        }
    }
}

/// Reads the part of a URL after the group-version into a [`Target`]; 404 if nothing is
/// served there.
pub fn parse(
    resources: &Resources,
    group: &str,
    version: &str,
    rest: &str,
    full: &str,
) -> Result<Target, ApiError> {
    let not_found = || ApiError::not_found_path(full);
    let segs: Vec<&str> = rest
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let in_namespace = if segs.len() >= 3 && segs[0] == "namespaces" {
        resources
            .lookup(group, version, segs[2])
            .filter(|(info, _)| info.namespaced)
    } else {
        None
    };
    let (namespace, rest, found) = match in_namespace {
        Some(found) => (Some(segs[1].to_owned()), &segs[2..], Some(found)),
        None => (None, &segs[..], None),
    };
    if rest.len() > 3 {
        return Err(not_found());
    }
    let (info, custom) = match found {
        Some(found) => found,
        None => resources
            .lookup(group, version, rest[0])
            .ok_or_else(not_found)?,
    };
    let name = rest.get(1).map(|s| (*s).to_owned());
    let sub = rest.get(2).map(|s| (*s).to_owned());
    if info.namespaced && namespace.is_none() && name.is_some() {
        return Err(not_found());
    }
    if let Some(s) = &sub {
        if !info.has_subresource(s) {
            return Err(not_found());
        }
    }
    Ok(Target {
        info,
        namespace,
        name,
        sub,
        custom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_to_targets() {
        let r = Resources::new();
        let t = parse(&r, "", "v1", "namespaces/default/pods/web/status", "").unwrap();
        assert_eq!(t.info.plural, "pods");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.sub.as_deref(), Some("status"));

        let t = parse(&r, "", "v1", "namespaces/default/status", "").unwrap();
        assert_eq!(t.info.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("default"));
        assert_eq!(t.sub.as_deref(), Some("status"));

        let t = parse(&r, "", "v1", "pods", "").unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = parse(&r, "apps", "v1", "namespaces/a/deployments/", "").unwrap();
        assert_eq!(t.info.kind, "Deployment");

        for bad in [
            "pods/web",
            "namespaces/a/pods/web/nosuch",
            "nosuch",
            "namespaces/a/nodes",
            "namespaces/a/pods/b/c/d",
            "namespaces//pods",
        ] {
            assert!(parse(&r, "", "v1", bad, "").is_err(), "{bad}");
        }
    }
}
