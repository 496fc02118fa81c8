//! The shape of every built-in kind, as data: which fields are structs, maps and lists, how
//! a list merges (strategic merge patch: `x-kubernetes-patch-strategy` and
//! `x-kubernetes-patch-merge-key`; server-side apply: `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`).
//!
//! The facts come from upstream's OpenAPI v2 document, embedded gzipped
//! (`openapi/swagger.json.gz`, see its README). [`builtin`] reads it once, keeping only the
//! structure (descriptions are skipped while parsing, so the resident cost is small).
//! Custom resources build their [`Ty`] inline from their CRD schema with the same types.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::OnceLock;

use serde::Deserialize;

/// The embedded OpenAPI v2 document, gzipped.
const SWAGGER_GZ: &[u8] = include_bytes!("../openapi/swagger.json.gz");

/// The embedded OpenAPI v2 document (upstream's `swagger.json`), decompressed: the source
/// of the served `/openapi/v2` and `/openapi/v3` documents.
pub fn swagger_json() -> Vec<u8> {
    let mut out = Vec::with_capacity(SWAGGER_GZ.len() * 12);
    // The input is compiled in; a corrupt file is a build defect, answered with no document.
    if let Err(e) = flate2::read::GzDecoder::new(SWAGGER_GZ).read_to_end(&mut out) {
        eprintln!("tug-api: the embedded OpenAPI document is unreadable: {e}");
        out.clear();
    }
    out
}

/// A type: one of the named definitions, or a node written inline (array and map fields,
/// custom resource schemas).
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    /// A named definition of [`Schemas`] (`io.k8s.api.core.v1.Container`).
    Named(u32),
    /// A node of its own.
    Inline(Box<Node>),
}

impl Ty {
    /// A type that accepts anything (maps merge key by key, lists are atomic).
    pub fn any() -> Ty {
        Ty::Inline(Box::new(Node::Any))
    }
}

/// What a value of a type looks like.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Node {
    /// No schema: free-form JSON (`RawExtension`, preserved unknown fields).
    #[default]
    Any,
    /// A string, number, integer or boolean (also quantities, times, int-or-string).
    Scalar,
    /// An object with known fields.
    Struct(Struct),
    /// An object whose keys are data (`additionalProperties`).
    Map(MapNode),
    /// An array.
    List(ListNode),
}

/// An object with known fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Struct {
    /// Its fields by JSON name.
    pub fields: BTreeMap<String, Field>,
    /// `x-kubernetes-map-type: atomic`: replaced as a whole by apply and owned as one field.
    pub atomic: bool,
    /// Unknown fields are kept (`x-kubernetes-preserve-unknown-fields`), with this type.
    pub extra: Option<Box<Ty>>,
}

/// A field of a [`Struct`].
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// Its type.
    pub ty: Ty,
    /// How strategic merge patch treats it.
    pub patch: PatchMeta,
}

/// Strategic merge patch metadata of a field (`x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatchMeta {
    /// `merge`: lists merge element-wise (by `merge_key`, or as a set of primitives).
    pub merge: bool,
    /// `retainKeys`: the `$retainKeys` directive applies.
    pub retain_keys: bool,
    /// `replace`: the value is replaced wholesale.
    pub replace: bool,
    /// The key list elements merge by (`name`, `containerPort`…).
    pub merge_key: Option<String>,
}

/// An object whose keys are data.
#[derive(Clone, Debug, PartialEq)]
pub struct MapNode {
    /// The type of every value.
    pub values: Ty,
    /// `x-kubernetes-map-type: atomic`.
    pub atomic: bool,
}

/// An array.
#[derive(Clone, Debug, PartialEq)]
pub struct ListNode {
    /// The type of every element.
    pub items: Ty,
    /// How server-side apply treats it.
    pub list_type: ListType,
}

/// `x-kubernetes-list-type`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole (the default).
    #[default]
    Atomic,
    /// A set of scalars, each owned on its own.
    Set,
    /// Elements identified by the values of these keys (`x-kubernetes-list-map-keys`).
    Map(Vec<String>),
}

/// Group, version and kind.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, Hash)]
pub struct Gvk {
    /// API group, `""` for core.
    #[serde(default)]
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

/// Every named definition of the OpenAPI document, as [`Node`]s.
#[derive(Debug, Default)]
pub struct Schemas {
    nodes: Vec<Node>,
    names: HashMap<String, u32>,
    kinds: HashMap<Gvk, u32>,
}

static ANY: Node = Node::Any;

impl Schemas {
    /// The node a type stands for ([`Node::Any`] for an unknown name).
    pub fn resolve<'a>(&'a self, ty: &'a Ty) -> &'a Node {
        match ty {
            Ty::Named(i) => self.nodes.get(*i as usize).unwrap_or(&ANY),
            Ty::Inline(node) => node,
        }
    }

    /// The type of a kind, if the document has it.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<Ty> {
        let key = Gvk {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        };
        self.kinds.get(&key).map(|&i| Ty::Named(i))
    }

    /// A definition by its full name (`io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta`).
    pub fn named(&self, name: &str) -> Option<Ty> {
        self.names.get(name).map(|&i| Ty::Named(i))
    }

    /// The field `name` of a struct type, if it is one and has it.
    pub fn field<'a>(&'a self, ty: &'a Ty, name: &str) -> Option<&'a Field> {
        match self.resolve(ty) {
            Node::Struct(s) => s.fields.get(name),
            _ => None,
        }
    }

    /// Reads an OpenAPI v2 document (JSON).
    pub fn from_swagger(json: &[u8]) -> Result<Schemas, serde_json::Error> {
        let doc: RawDoc = serde_json::from_slice(json)?;
        let mut names: Vec<&String> = doc.definitions.keys().collect();
        names.sort();
        let index: HashMap<String, u32> = names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).clone(), i as u32))
            .collect();
        let mut schemas = Schemas {
            nodes: Vec::with_capacity(names.len()),
            names: index,
            kinds: HashMap::new(),
        };
        for (i, name) in names.iter().enumerate() {
            let raw = &doc.definitions[*name];
            let node = schemas.node_of(raw);
            schemas.nodes.push(node);
            for gvk in &raw.gvk {
                schemas.kinds.insert(gvk.clone(), i as u32);
            }
        }
        Ok(schemas)
    }

    fn ty_of(&self, raw: &RawSchema) -> Ty {
        if let Some(r) = &raw.reference {
            let name = r.trim_start_matches("#/definitions/");
            return match self.names.get(name) {
                Some(&i) => Ty::Named(i),
                None => Ty::any(),
            };
        }
        Ty::Inline(Box::new(self.node_of(raw)))
    }

    fn node_of(&self, raw: &RawSchema) -> Node {
        let atomic_map = raw.map_type.as_deref() == Some("atomic");
        match raw.ty.as_deref() {
            Some("array") => Node::List(ListNode {
                items: raw
                    .items
                    .as_deref()
                    .map(|i| self.ty_of(i))
                    .unwrap_or_else(Ty::any),
                list_type: match raw.list_type.as_deref() {
                    Some("set") => ListType::Set,
                    Some("map") => ListType::Map(raw.list_map_keys.clone()),
                    _ => ListType::Atomic,
                },
            }),
            Some("object") | None if raw.properties.is_some() => Node::Struct(Struct {
                fields: raw
                    .properties
                    .iter()
                    .flatten()
                    .map(|(name, p)| {
                        let field = Field {
                            ty: self.ty_of(p),
                            patch: patch_meta(p),
                        };
                        (name.clone(), field)
                    })
                    .collect(),
                atomic: atomic_map,
                extra: None,
            }),
            Some("object") => match raw.additional.as_deref() {
                Some(serde_json::Value::Object(_)) => {
                    let values = raw
                        .additional
                        .as_deref()
                        .and_then(|v| RawSchema::deserialize(v).ok())
                        .map(|r| self.ty_of(&r))
                        .unwrap_or_else(Ty::any);
                    Node::Map(MapNode {
                        values,
                        atomic: atomic_map,
                    })
                }
                _ => Node::Any,
            },
            Some(_) => Node::Scalar,
            None => Node::Any,
        }
    }
}

fn patch_meta(raw: &RawSchema) -> PatchMeta {
    let strategy = raw.patch_strategy.as_deref().unwrap_or("");
    let has = |s: &str| strategy.split(',').any(|p| p.trim() == s);
    PatchMeta {
        merge: has("merge"),
        retain_keys: has("retainKeys"),
        replace: has("replace"),
        merge_key: raw.patch_merge_key.clone(),
    }
}

/// The built-in kinds' schemas, read from the embedded document on first use.
pub fn builtin() -> &'static Schemas {
    static BUILTIN: OnceLock<Schemas> = OnceLock::new();
    BUILTIN.get_or_init(|| {
        Schemas::from_swagger(&swagger_json()).unwrap_or_else(|e| {
            eprintln!("tug-api: the embedded OpenAPI document does not parse: {e}");
            Schemas::default()
        })
    })
}

#[derive(Deserialize)]
struct RawDoc {
    definitions: HashMap<String, RawSchema>,
}

#[derive(Deserialize, Default)]
struct RawSchema {
    #[serde(rename = "$ref")]
    reference: Option<String>,
    #[serde(rename = "type")]
    ty: Option<String>,
    properties: Option<BTreeMap<String, RawSchema>>,
    items: Option<Box<RawSchema>>,
    #[serde(rename = "additionalProperties")]
    additional: Option<Box<serde_json::Value>>,
    #[serde(rename = "x-kubernetes-patch-strategy")]
    patch_strategy: Option<String>,
    #[serde(rename = "x-kubernetes-patch-merge-key")]
    patch_merge_key: Option<String>,
    #[serde(rename = "x-kubernetes-list-type")]
    list_type: Option<String>,
    #[serde(rename = "x-kubernetes-list-map-keys", default)]
    list_map_keys: Vec<String>,
    #[serde(rename = "x-kubernetes-map-type")]
    map_type: Option<String>,
    #[serde(rename = "x-kubernetes-group-version-kind", default)]
    gvk: Vec<Gvk>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list<'a>(s: &'a Schemas, ty: &'a Ty) -> &'a ListNode {
        match s.resolve(ty) {
            Node::List(l) => l,
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn container_lists_carry_patch_and_apply_metadata() {
        let s = builtin();
        let deploy = s.kind("apps", "v1", "Deployment").expect("Deployment");
        let spec = &s.field(&deploy, "spec").expect("spec").ty;
        let strategy = s.field(spec, "strategy").expect("strategy");
        assert!(strategy.patch.retain_keys);
        let template = &s.field(spec, "template").expect("template").ty;
        let pod_spec = &s.field(template, "spec").expect("pod spec").ty;
        let containers = s.field(pod_spec, "containers").expect("containers");
        assert!(containers.patch.merge);
        assert_eq!(containers.patch.merge_key.as_deref(), Some("name"));
        let container = &list(s, &containers.ty).items;
        let ports = s.field(container, "ports").expect("ports");
        assert_eq!(ports.patch.merge_key.as_deref(), Some("containerPort"));
        assert_eq!(
            list(s, &ports.ty).list_type,
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        let volumes = s.field(pod_spec, "volumes").expect("volumes");
        assert!(volumes.patch.merge && volumes.patch.retain_keys);
    }

    #[test]
    fn maps_sets_and_atomic_structs() {
        let s = builtin();
        let meta = s
            .named("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .expect("ObjectMeta");
        let labels = &s.field(&meta, "labels").expect("labels").ty;
        assert!(matches!(s.resolve(labels), Node::Map(m) if !m.atomic));
        let finalizers = s.field(&meta, "finalizers").expect("finalizers");
        assert_eq!(list(s, &finalizers.ty).list_type, ListType::Set);
        assert!(finalizers.patch.merge);
        let selector = s
            .named("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
            .expect("LabelSelector");
        assert!(matches!(s.resolve(&selector), Node::Struct(st) if st.atomic));
        let raw = s
            .named("io.k8s.apimachinery.pkg.runtime.RawExtension")
            .expect("RawExtension");
        assert_eq!(s.resolve(&raw), &Node::Any);
        assert!(s.kind("", "v1", "Pod").is_some());
        assert!(s.kind("", "v1", "NoSuchKind").is_none());
    }
}
