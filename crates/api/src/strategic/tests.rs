//! Tests of strategic merge patch: every directive against the examples of upstream's
//! strategic-merge-patch design document and `patch_test.go` cases, the kubectl
//! client-side apply patch, and malformed patches.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::schema::{self, Field, ListNode, ListType, Struct};

/// Applies `patch` to `original` of the built-in kind `(group, version, kind)`.
fn kind(gvk: (&str, &str, &str), original: Value, patch: Value) -> Result<Value, SmpError> {
    let s = schema::builtin();
    let ty = s.kind(gvk.0, gvk.1, gvk.2).expect("known kind");
    apply(&original, &patch, &ty, s)
}

fn pod(original: Value, patch: Value) -> Result<Value, SmpError> {
    kind(("", "v1", "Pod"), original, patch)
}

fn deploy(original: Value, patch: Value) -> Result<Value, SmpError> {
    kind(("apps", "v1", "Deployment"), original, patch)
}

fn bad(r: Result<Value, SmpError>) -> String {
    match r {
        Err(SmpError::BadRequest(m)) => m,
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

fn field(ty: Ty, merge: bool, key: Option<&str>, retain: bool) -> Field {
    Field {
        ty,
        patch: PatchMeta {
            merge,
            retain_keys: retain,
            replace: false,
            merge_key: key.map(str::to_owned),
        },
    }
}

fn list_of(items: Ty) -> Ty {
    Ty::Inline(Box::new(Node::List(ListNode {
        items,
        list_type: ListType::Atomic,
    })))
}

/// The shape of upstream's test type `mergeItem`, written inline.
fn merge_item() -> Ty {
    let mut fields = BTreeMap::new();
    let scalar = || Ty::Inline(Box::new(Node::Scalar));
    fields.insert(
        "mergingList".into(),
        field(list_of(Ty::any()), true, Some("name"), false),
    );
    fields.insert(
        "mergingIntList".into(),
        field(list_of(scalar()), true, None, false),
    );
    fields.insert(
        "nonMergingIntList".into(),
        field(list_of(scalar()), false, None, false),
    );
    fields.insert("union".into(), field(Ty::any(), false, None, true));
    Ty::Inline(Box::new(Node::Struct(Struct {
        fields,
        atomic: false,
        extra: None,
    })))
}

fn item(original: Value, patch: Value) -> Result<Value, SmpError> {
    apply(&original, &patch, &merge_item(), &Schemas::default())
}

// --- The design document's examples -------------------------------------------------

/// As upstream since `$setElementOrder` came in (and the kubectl patch task page shows),
/// elements new to the list go before the server-only ones when nothing orders them.
#[test]
fn merge_key_list_adds_a_container() {
    let out = pod(
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}]}}),
        json!({"spec": {"containers": [{"name": "log-tailer", "image": "log-tailer-1.0"}]}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"spec": {"containers": [
            {"name": "log-tailer", "image": "log-tailer-1.0"},
            {"name": "nginx", "image": "nginx-1.0"}]}})
    );
}

#[test]
fn merge_key_list_merges_matching_elements() {
    let out = pod(
        json!({"spec": {"containers": [{"name": "a", "image": "a:1", "args": ["x", "y"]},
                                       {"name": "b", "image": "b:1"}]}}),
        json!({"spec": {"containers": [{"name": "b", "image": "b:2", "args": ["z"]}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a", "image": "a:1", "args": ["x", "y"]},
               {"name": "b", "image": "b:2", "args": ["z"]}])
    );
}

#[test]
fn replace_directive_in_a_map() {
    let out = pod(
        json!({"spec": {"restartPolicy": "Always", "containers": [{"name": "old", "image": "o"}]}}),
        json!({"spec": {"$patch": "replace", "containers": [{"name": "nginx", "image": "nginx-1.0"}]}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}]}})
    );
}

#[test]
fn replace_directive_in_a_list() {
    let out = pod(
        json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b", "image": "b"}]}}),
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"}, {"$patch": "replace"}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "nginx", "image": "nginx-1.0"}])
    );
}

#[test]
fn delete_directive_in_a_list_removes_every_match() {
    let out = pod(
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx-0.9"},
                                       {"name": "log-tailer", "image": "t"},
                                       {"name": "log-tailer", "image": "dup"}]}}),
        json!({"spec": {"containers": [{"name": "nginx", "image": "nginx-1.0"},
                                       {"$patch": "delete", "name": "log-tailer"}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "nginx", "image": "nginx-1.0"}])
    );
}

#[test]
fn delete_directive_and_null_delete_a_map() {
    let original = json!({"spec": {"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}});
    let expected = json!({"spec": {"strategy": {"type": "RollingUpdate"}}});
    let by_directive = deploy(
        original.clone(),
        json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}),
    );
    assert_eq!(by_directive.unwrap(), expected);
    let by_null = deploy(
        original,
        json!({"spec": {"strategy": {"rollingUpdate": null}}}),
    );
    assert_eq!(by_null.unwrap(), expected);
}

#[test]
fn delete_from_primitive_list() {
    let out = pod(
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}}),
    )
    .unwrap();
    assert_eq!(out, json!({"metadata": {"finalizers": ["a"]}}));
}

#[test]
fn delete_from_primitive_list_cases_of_patch_test() {
    // A missing item is not added; a missing list is not created.
    let out = item(
        json!({"mergingIntList": [1, 2]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
    );
    assert_eq!(out.unwrap(), json!({"mergingIntList": [1, 2]}));
    let out = item(
        json!({"foo": ["bar"]}),
        json!({"$deleteFromPrimitiveList/mergingIntList": [3]}),
    );
    assert_eq!(out.unwrap(), json!({"foo": ["bar"]}));
    // Lists without the merge strategy honour deletion lists too.
    let out = item(
        json!({"nonMergingIntList": [1, 2, 3]}),
        json!({"$deleteFromPrimitiveList/nonMergingIntList": [2]}),
    );
    assert_eq!(out.unwrap(), json!({"nonMergingIntList": [1, 3]}));
}

#[test]
fn set_element_order_of_primitives_and_maps() {
    let out = pod(
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"]}}),
    )
    .unwrap();
    assert_eq!(out, json!({"metadata": {"finalizers": ["b", "c", "a"]}}));

    let out = pod(
        json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"},
                                       {"name": "c", "image": "3"}]}}),
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]}}),
    )
    .unwrap();
    let names: Vec<&Value> = out["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, [&json!("b"), &json!("c"), &json!("a")]);
    assert_eq!(out["spec"]["containers"][0]["image"], json!("2"));
}

#[test]
fn set_element_order_places_server_only_items() {
    // patch_test.go: "set elements order in a list with server-only items 3".
    let out = item(
        json!({"mergingList": [{"name": 1, "other": "a"}, {"name": 2, "value": 2}, {"name": 7},
                               {"name": 9}, {"name": 8}, {"name": 3, "value": 3},
                               {"name": 4, "value": 4}]}),
        json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4}, {"name": 3}]}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"mergingList": [{"name": 2, "value": 2}, {"name": 1, "other": "a"}, {"name": 7},
                               {"name": 9}, {"name": 8}, {"name": 4, "value": 4},
                               {"name": 3, "value": 3}]})
    );
    // "add an item in a int list and preserve order", applied to the current object.
    let out = item(
        json!({"mergingIntList": [1, 4, 2]}),
        json!({"$setElementOrder/mergingIntList": [3, 1, 2], "mergingIntList": [3]}),
    );
    assert_eq!(out.unwrap(), json!({"mergingIntList": [3, 1, 4, 2]}));
    // "delete an item in a list of primitives and preserve order".
    let out = item(
        json!({"mergingIntList": [1, 2, 3]}),
        json!({"$setElementOrder/mergingIntList": [2, 1],
               "$deleteFromPrimitiveList/mergingIntList": [3]}),
    );
    assert_eq!(out.unwrap(), json!({"mergingIntList": [2, 1]}));
}

#[test]
fn set_element_order_with_missing_items_and_duplicates() {
    // An order entry missing from the list is ignored.
    let out = item(
        json!({"mergingIntList": [1, 3]}),
        json!({"$setElementOrder/mergingIntList": [3, 2, 1]}),
    );
    assert_eq!(out.unwrap(), json!({"mergingIntList": [3, 1]}));
    let out = item(
        json!({"mergingList": [{"name": 1}, {"name": 3}]}),
        json!({"$setElementOrder/mergingList": [{"name": 3}, {"name": 2}, {"name": 1}],
               "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
    );
    assert_eq!(
        out.unwrap(),
        json!({"mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]})
    );
    // Duplicates stay together at the first position of their key.
    let out = item(
        json!({"mergingList": [{"name": 1}, {"name": 2, "value": "dup1"}, {"name": 3},
                               {"name": 2, "value": "dup2"}, {"name": 4}]}),
        json!({"$setElementOrder/mergingList": [{"name": 2}, {"name": 1}, {"name": 4},
                                                {"name": 3}, {"name": 2}]}),
    );
    assert_eq!(
        out.unwrap(),
        json!({"mergingList": [{"name": 2, "value": "dup1"}, {"name": 2, "value": "dup2"},
                               {"name": 1}, {"name": 4}, {"name": 3}]})
    );
}

#[test]
fn set_element_order_must_match_the_patch_list() {
    let msg = bad(item(
        json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
        json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
               "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]}),
    ));
    assert!(msg.contains("doesn't match $setElementOrder list"), "{msg}");
    let msg = bad(item(
        json!({"mergingIntList": [1, 3, 2]}),
        json!({"$setElementOrder/mergingIntList": [1, 2, 3], "mergingIntList": [3, 1]}),
    ));
    assert!(msg.contains("doesn't match"), "{msg}");
}

#[test]
fn retain_keys_switches_deployment_strategy() {
    let out = deploy(
        json!({"spec": {"replicas": 2, "strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"spec": {"replicas": 2, "strategy": {"type": "Recreate"}}})
    );
}

#[test]
fn retain_keys_union_of_the_design_document() {
    let out = item(
        json!({"union": {"foo": "a", "other": "b"}}),
        json!({"union": {"$retainKeys": ["another", "bar"], "another": "d", "bar": "c"}}),
    );
    assert_eq!(out.unwrap(), json!({"union": {"another": "d", "bar": "c"}}));
    // A patched key missing from the list is rejected.
    let msg = bad(item(
        json!({"union": {"foo": "a"}}),
        json!({"union": {"$retainKeys": ["bar"], "another": "d", "bar": "c"}}),
    ));
    assert_eq!(msg, "invalid patch format of retainKeys");
    // ... but nulls and list directives need not be listed.
    let out = item(
        json!({"union": {"foo": "a", "bar": "b"}}),
        json!({"union": {"$retainKeys": ["bar"], "foo": null, "bar": "c",
                         "$deleteFromPrimitiveList/bar": []}}),
    );
    assert_eq!(out.unwrap(), json!({"union": {"bar": "c"}}));
}

#[test]
fn volumes_merge_by_name_with_retain_keys() {
    let out = pod(
        json!({"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "cm"}},
                                    {"name": "data", "emptyDir": {}}]}}),
        json!({"spec": {"volumes": [{"name": "cfg", "$retainKeys": ["name", "secret"],
                                     "secret": {"secretName": "s"}},
                                    {"name": "cache", "emptyDir": {"medium": "Memory"}}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "cfg", "secret": {"secretName": "s"}},
               {"name": "cache", "emptyDir": {"medium": "Memory"}},
               {"name": "data", "emptyDir": {}}])
    );
}

#[test]
fn finalizers_merge_as_a_set() {
    let out = pod(
        json!({"metadata": {"finalizers": ["a", "b", "a"]}}),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    )
    .unwrap();
    assert_eq!(out, json!({"metadata": {"finalizers": ["a", "b", "c"]}}));
    // Patch order wins among the elements the patch names; server-only ones keep their
    // place before the first later patch element.
    let out = pod(
        json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        json!({"metadata": {"finalizers": ["c", "a"]}}),
    )
    .unwrap();
    assert_eq!(out, json!({"metadata": {"finalizers": ["b", "c", "a"]}}));
    // Values new to the set go first when nothing orders them, as upstream.
    let out = pod(
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"finalizers": ["c"]}}),
    )
    .unwrap();
    assert_eq!(out, json!({"metadata": {"finalizers": ["c", "a", "b"]}}));
    // With `$setElementOrder` (what kubectl sends) the client picks the order.
    let out = pod(
        json!({"metadata": {"finalizers": ["a", "b"]}}),
        json!({"metadata": {"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c"]}}),
    )
    .unwrap();
    assert_eq!(out, json!({"metadata": {"finalizers": ["a", "b", "c"]}}));
    // An order for a list nobody has creates nothing.
    let out = pod(
        json!({}),
        json!({"metadata": {"$setElementOrder/finalizers": ["a"]}}),
    );
    assert_eq!(out.unwrap(), json!({"metadata": {}}));
}

#[test]
fn kubectl_client_side_apply_patch() {
    let original = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"keep": "me"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{
            "name": "web", "image": "nginx:1.25",
            "ports": [{"containerPort": 80}, {"containerPort": 443}],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}});
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [
                {"name": "web", "image": "nginx:1.26",
                 "$setElementOrder/ports": [{"containerPort": 80}],
                 "ports": [{"$patch": "delete", "containerPort": 443}],
                 "$setElementOrder/env": [{"name": "A"}],
                 "env": [{"$patch": "delete", "name": "B"}]},
                {"name": "sidecar", "image": "busybox"}]}}}});
    let out = deploy(original, patch).unwrap();
    assert_eq!(
        out,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {
                "keep": "me", "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.26", "ports": [{"containerPort": 80}],
                 "env": [{"name": "A", "value": "1"}]},
                {"name": "sidecar", "image": "busybox"}]}}}})
    );
}

// --- JSON merge patch behaviour and directive hygiene -------------------------------

#[test]
fn maps_merge_nulls_delete_and_plain_lists_are_replaced() {
    let out = pod(
        json!({"metadata": {"labels": {"a": "1", "b": "2"}},
               "spec": {"containers": [{"name": "c", "args": ["x", "y"], "command": ["sh"]}]}}),
        json!({"metadata": {"labels": {"a": null, "c": "3"}},
               "spec": {"containers": [{"name": "c", "args": ["z"], "command": null}]}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"metadata": {"labels": {"b": "2", "c": "3"}},
               "spec": {"containers": [{"name": "c", "args": ["z"]}]}})
    );
}

#[test]
fn schemaless_values_merge_like_json_merge_patch() {
    // Unknown fields and free-form values: maps merge, lists (even of maps) are replaced.
    let out = pod(
        json!({"x-unknown": {"a": 1, "l": [{"name": "a"}]}}),
        json!({"x-unknown": {"b": 2, "l": [{"name": "b"}]}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"x-unknown": {"a": 1, "b": 2, "l": [{"name": "b"}]}})
    );
    let any = Ty::any();
    let out = apply(
        &json!({"l": [1, 2], "m": {"k": "v"}}),
        &json!({"l": [3], "m": {"j": "w", "k": null}, "s": "new"}),
        &any,
        &Schemas::default(),
    );
    assert_eq!(out.unwrap(), json!({"l": [3], "m": {"j": "w"}, "s": "new"}));
}

#[test]
fn directives_never_reach_the_result() {
    let out = pod(
        json!({"spec": {"containers": [{"name": "a", "image": "a"}]}}),
        json!({"spec": {
            "containers": [{"name": "b", "image": "b", "$setElementOrder/ports": [{"containerPort": 1}],
                            "ports": [{"containerPort": 1}, {"$patch": "delete", "containerPort": 2}],
                            "env": null}],
            "nodeSelector": {"$patch": "delete"},
            // Upstream drops a `$patch: replace` map that has nothing to replace.
            "securityContext": {"$patch": "replace", "runAsUser": 1},
            "affinity": {"nodeAffinity": {"$retainKeys": ["x"], "x": 1}},
            "$deleteFromPrimitiveList/tolerations": ["t"]}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"spec": {
            "containers": [{"name": "b", "image": "b", "ports": [{"containerPort": 1}]},
                           {"name": "a", "image": "a"}],
            "affinity": {"nodeAffinity": {"x": 1}}}})
    );
}

#[test]
fn root_directives_and_empty_patches() {
    let original = json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Always"}});
    let out = pod(original.clone(), json!({"$patch": "delete"}));
    assert_eq!(out.unwrap(), json!({}));
    let out = pod(
        original.clone(),
        json!({"$patch": "replace", "metadata": {"name": "q"}}),
    );
    assert_eq!(out.unwrap(), json!({"metadata": {"name": "q"}}));
    let out = pod(
        original.clone(),
        json!({"$patch": "merge", "spec": {"hostname": "h"}}),
    );
    assert_eq!(
        out.unwrap(),
        json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Always", "hostname": "h"}})
    );
    assert_eq!(pod(original.clone(), Value::Null).unwrap(), original);
    assert_eq!(pod(original.clone(), json!({})).unwrap(), original);
}

#[test]
fn type_changes_replace_the_value() {
    let out = pod(
        json!({"metadata": {"annotations": {"a": "x"}}, "spec": {"containers": []}}),
        json!({"metadata": {"annotations": "oops"}, "spec": {"containers": {"name": "c"}}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"metadata": {"annotations": "oops"}, "spec": {"containers": {"name": "c"}}})
    );
}

// --- Malformed patches ---------------------------------------------------------------

#[test]
fn patch_must_be_an_object() {
    let msg = bad(pod(json!({}), json!([1])));
    assert_eq!(
        msg,
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    assert!(bad(pod(json!({}), json!("x"))).contains("cannot unmarshal string"));
    assert_eq!(bad(pod(json!([]), json!({}))), "invalid JSON document");
}

#[test]
fn unknown_patch_directive_values() {
    let msg = bad(pod(
        json!({"spec": {}}),
        json!({"spec": {"$patch": "bogus"}}),
    ));
    assert_eq!(msg, "unknown patch type: bogus in map: map[$patch:bogus]");
    let msg = bad(pod(
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"containers": [{"name": "a", "$patch": 7}]}}),
    ));
    assert!(msg.starts_with("unknown patch type: 7"), "{msg}");
    let msg = bad(pod(
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}),
    ));
    assert_eq!(msg, "merging lists cannot yet be specified in the patch");
}

#[test]
fn merge_key_is_required() {
    let original = json!({"spec": {"containers": [{"name": "a", "image": "a"}]}});
    let msg = bad(pod(
        original.clone(),
        json!({"spec": {"containers": [{"image": "b"}]}}),
    ));
    assert_eq!(
        msg,
        "map: map[image:b] does not contain declared merge key: name"
    );
    let msg = bad(pod(
        original,
        json!({"spec": {"containers": [{"$patch": "delete"}]}}),
    ));
    assert!(
        msg.contains("does not contain declared merge key: name"),
        "{msg}"
    );
}

#[test]
fn retain_keys_must_be_a_list_of_strings() {
    for rk in [json!("type"), json!(null), json!({"a": 1}), json!([1])] {
        let msg = bad(deploy(
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
            json!({"spec": {"strategy": {"$retainKeys": rk, "type": "Recreate"}}}),
        ));
        assert_eq!(msg, "invalid patch format of retainKeys");
    }
}

#[test]
fn set_element_order_shapes() {
    let original = json!({"metadata": {"finalizers": ["a"]}});
    let msg = bad(pod(
        original.clone(),
        json!({"metadata": {"$setElementOrder/finalizers": "a"}}),
    ));
    assert_eq!(msg, "expected a []interface {}, but received a string");
    let msg = bad(pod(
        original.clone(),
        json!({"metadata": {"$setElementOrderfinalizers": ["a"]}}),
    ));
    assert_eq!(msg, "invalid patch format of setElementOrder list");
    let msg = bad(pod(
        original,
        json!({"metadata": {"$setElementOrder/finalizers": ["a"], "finalizers": "a"}}),
    ));
    assert_eq!(msg, "expected a []interface {}, but received a string");
    let msg = bad(pod(
        json!({"spec": {"containers": [{"name": "a"}]}}),
        json!({"spec": {"$setElementOrder/containers": ["a"], "containers": [{"name": "a"}]}}),
    ));
    assert_eq!(
        msg,
        "expected a map[string]interface {}, but received a string"
    );
}

#[test]
fn delete_from_primitive_list_shapes() {
    let original = json!({"metadata": {"finalizers": ["a"]}});
    for patch in [
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}}),
        json!({"metadata": {"$deleteFromPrimitiveList/": ["a"]}}),
    ] {
        let msg = bad(pod(original.clone(), patch));
        assert_eq!(msg, "invalid patch format of primitive list");
    }
}

#[test]
fn lists_of_lists_are_invalid() {
    let r = pod(
        json!({"metadata": {"finalizers": []}}),
        json!({"metadata": {"finalizers": [["a"]]}}),
    );
    assert_eq!(
        r,
        Err(SmpError::Invalid("lists of lists are not supported".into()))
    );
    // Mixed element types are a bad request.
    let msg = bad(pod(
        json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"finalizers": [1]}}),
    ));
    assert_eq!(msg, "list element types are not identical: [[a] [1]]");
}

#[test]
fn original_is_left_untouched() {
    let original = json!({"metadata": {"labels": {"a": "1"}}});
    let out = pod(
        original.clone(),
        json!({"metadata": {"labels": {"a": null}}}),
    )
    .unwrap();
    assert_eq!(out, json!({"metadata": {"labels": {}}}));
    assert_eq!(original, json!({"metadata": {"labels": {"a": "1"}}}));
}

#[test]
fn map_values_carry_their_type() {
    // `{"byName": {<any key>: mergeItem}}`: every value merges as a mergeItem.
    let mut fields = BTreeMap::new();
    let values = Node::Map(schema::MapNode {
        values: merge_item(),
        atomic: false,
    });
    fields.insert(
        "byName".to_owned(),
        field(Ty::Inline(Box::new(values)), false, None, false),
    );
    let ty = Ty::Inline(Box::new(Node::Struct(Struct {
        fields,
        atomic: false,
        extra: None,
    })));
    let out = apply(
        &json!({"byName": {"x": {"mergingList": [{"name": "a", "value": 1}]}}}),
        &json!({"byName": {"x": {"mergingList": [{"name": "b"}]}}}),
        &ty,
        &Schemas::default(),
    );
    assert_eq!(
        out.unwrap(),
        json!({"byName": {"x": {"mergingList": [{"name": "b"}, {"name": "a", "value": 1}]}}})
    );
}
