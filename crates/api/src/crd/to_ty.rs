//! A CRD schema as a [`Ty`], the shape strategic merge patch and server-side apply work
//! with: properties become a struct (atomic with `x-kubernetes-map-type: atomic`),
//! `additionalProperties` a map, arrays lists with their `x-kubernetes-list-type` and
//! `x-kubernetes-list-map-keys`, preserved unknown fields free-form (or a struct's extra
//! fields), and the `metadata` of the root and of embedded resources the built-in
//! `ObjectMeta`. Custom resources carry no strategic-merge metadata, so every field's
//! [`PatchMeta`](crate::schema::PatchMeta) is the default.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

use crate::schema::{builtin, Field, ListNode, ListType, MapNode, Node, PatchMeta, Struct, Ty};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The type of a version's `openAPIV3Schema` (the root of a custom resource).
pub fn to_ty(props: &JSONSchemaProps) -> Ty {
    ty_of(props, true)
}

fn ty_of(p: &JSONSchemaProps, resource: bool) -> Ty {
    Ty::Inline(Box::new(node_of(p, resource)))
}

fn node_of(p: &JSONSchemaProps, resource: bool) -> Node {
    let resource = resource || p.x_kubernetes_embedded_resource == Some(true);
    let preserve = p.x_kubernetes_preserve_unknown_fields == Some(true);
    let atomic = p.x_kubernetes_map_type.as_deref() == Some("atomic");
    let has_props = p.properties.as_ref().is_some_and(|m| !m.is_empty());
    if p.x_kubernetes_int_or_string == Some(true) {
        return Node::Scalar;
    }
    match p.type_.as_deref() {
        Some("array") => {
            let items = match &p.items {
                Some(JSONSchemaPropsOrArray::Schema(s)) => ty_of(s, false),
                _ => Ty::any(),
            };
            let list_type = match p.x_kubernetes_list_type.as_deref() {
                Some("set") => ListType::Set,
                Some("map") => {
                    ListType::Map(p.x_kubernetes_list_map_keys.clone().unwrap_or_default())
                }
                _ => ListType::Atomic,
            };
            return Node::List(ListNode { items, list_type });
        }
        Some("string" | "integer" | "number" | "boolean") => return Node::Scalar,
        _ => {}
    }
    if has_props || resource {
        let mut fields = std::collections::BTreeMap::new();
        for (name, prop) in p.properties.iter().flatten() {
            let ty = if resource && name == "metadata" {
                builtin().named(OBJECT_META).unwrap_or_else(Ty::any)
            } else if resource && (name == "apiVersion" || name == "kind") {
                Ty::Inline(Box::new(Node::Scalar))
            } else {
                ty_of(prop, false)
            };
            fields.insert(
                name.clone(),
                Field {
                    ty,
                    patch: PatchMeta::default(),
                },
            );
        }
        if resource {
            if let Some(meta) = builtin().named(OBJECT_META) {
                fields.entry("metadata".into()).or_insert(Field {
                    ty: meta,
                    patch: PatchMeta::default(),
                });
            }
            for name in ["apiVersion", "kind"] {
                fields.entry(name.into()).or_insert(Field {
                    ty: Ty::Inline(Box::new(Node::Scalar)),
                    patch: PatchMeta::default(),
                });
            }
        }
        return Node::Struct(Struct {
            fields,
            atomic,
            extra: preserve.then(|| Box::new(Ty::any())),
        });
    }
    match &p.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(values)) => {
            return Node::Map(MapNode {
                values: ty_of(values, false),
                atomic,
            });
        }
        Some(JSONSchemaPropsOrBool::Bool(true)) => {
            return Node::Map(MapNode {
                values: Ty::any(),
                atomic,
            });
        }
        _ => {}
    }
    if atomic && !preserve {
        // An object with no declared fields that is replaced as a whole.
        return Node::Struct(Struct {
            fields: Default::default(),
            atomic,
            extra: Some(Box::new(Ty::any())),
        });
    }
    Node::Any
}
