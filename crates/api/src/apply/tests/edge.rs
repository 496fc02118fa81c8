//! Tests of error cases and finer points of apply and update recording.

use serde_json::json;

use super::*;

#[test]
fn malformed_config_is_invalid() {
    let no_name = deployment(1, json!([{"image": "nginx"}]));
    let err = do_apply(None, &no_name, "k", T0, false).unwrap_err();
    let ApplyError::Invalid(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(msg.contains(".spec.template.spec.containers: element 0: associative list with keys has an element that omits all key fields [\"name\"]"), "{msg}");

    let dup = deployment(
        1,
        json!([{"name": "web", "image": "a"}, {"name": "web", "image": "b"}]),
    );
    let err = do_apply(None, &dup, "k", T0, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("duplicate entries for key [name=\"web\"]"),
        "{err}"
    );

    let wrong = partial(json!({"replicas": {"a": 1}, "template": "x"}));
    let msg = do_apply(None, &wrong, "k", T0, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("errors:\n") && msg.contains(".spec.template: expected map"),
        "{msg}"
    );

    let mut with_managed = deployment(1, web());
    with_managed["metadata"]["managedFields"] = json!([]);
    let msg = do_apply(None, &with_managed, "k", T0, false)
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "metadata.managedFields must be nil");

    let mut wrong_version = deployment(1, web());
    wrong_version["apiVersion"] = json!("apps/v1beta1");
    assert!(matches!(
        do_apply(None, &wrong_version, "k", T0, false),
        Err(ApplyError::Invalid(_))
    ));
    assert!(matches!(
        do_apply(None, &json!([1]), "k", T0, false),
        Err(ApplyError::Invalid(_))
    ));
}

#[test]
fn malformed_managed_fields_on_live() {
    let base = deployment(1, web());
    let bad = [
        json!("nope"),
        json!([{"manager": "a", "operation": "Bogus", "apiVersion": "v1", "fieldsType": "FieldsV1"}]),
        json!([{"manager": "a", "operation": "Apply", "fieldsType": "FieldsV1"}]),
        json!([{"manager": "a", "operation": "Apply", "apiVersion": "apps/v1"}]),
        json!([{"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV2"}]),
        json!([{"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": 3}]),
        json!([{"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"x": {}}}]),
        json!([{"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"k:[1]": {}}}]),
        json!([{"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:a": 1}}]),
    ];
    for mf in bad {
        let mut live = base.clone();
        live["metadata"]["managedFields"] = mf.clone();
        let err = do_apply(Some(&live), &base, "k", T0, false).unwrap_err();
        assert!(
            matches!(err, ApplyError::BadManagedFields(_)),
            "{mf}: {err:?}"
        );
        // An ordinary write starts over instead.
        let mut new = live.clone();
        new["spec"]["replicas"] = json!(2);
        record_update(
            Some(&live),
            &mut new,
            &mgr("e", T1),
            &deploy_ty(),
            builtin(),
        )
        .unwrap();
        assert_eq!(entries(&new).len(), 1, "{new:#}");
    }
    // Unknown element types are skipped, as upstream.
    let set = FieldSet::from_fields_v1(&json!({"z:what": {}, "f:a": {}})).unwrap();
    assert_eq!(set.paths().len(), 1);
}

#[test]
fn status_is_reset_on_the_main_resource() {
    let mut config = deployment(1, web());
    config["status"] = json!({"replicas": 7});
    let out = do_apply(None, &config, "k", T0, false).unwrap();
    assert!(out.get("status").is_none());
    assert!(entry(&out, "k")
        .fields
        .to_fields_v1()
        .get("f:status")
        .is_none());

    let mut live = out.clone();
    live["status"] = json!({"replicas": 1});
    let out = do_apply(Some(&live), &config, "k", T1, false).unwrap();
    assert_eq!(out["status"]["replicas"], 1);

    // Through the status subresource (resetting spec), status is applied and owned.
    let status_mgr = Manager {
        subresource: "status",
        reset_fields: &[&["spec"]],
        ..mgr("ctrl", T1)
    };
    let st = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 99}, "status": {"replicas": 7}});
    let out = apply(Some(&out), &st, &status_mgr, false, &deploy_ty(), builtin()).unwrap();
    assert_eq!(out["status"]["replicas"], 7);
    assert_eq!(out["spec"]["replicas"], 1);
    let e = entry(&out, "ctrl");
    assert_eq!(e.subresource, "status");
    assert!(owns(&out, "ctrl", ".status.replicas"));
}

#[test]
fn unmanaged_objects() {
    // An existing object without entries: updates are not tracked...
    let mut live = deployment(2, web());
    live["metadata"]["uid"] = json!("u-1");
    let mut new = live.clone();
    new["spec"]["replicas"] = json!(3);
    record_update(
        Some(&live),
        &mut new,
        &mgr("e", T1),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    assert!(new["metadata"].get("managedFields").is_none());

    // ...and the first apply hands what exists to "before-first-apply".
    let err = do_apply(
        Some(&live),
        &partial(json!({"replicas": 5})),
        "k",
        T1,
        false,
    )
    .unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!("expected conflicts")
    };
    assert_eq!(c[0].manager, "before-first-apply");
    let out = do_apply(
        Some(&live),
        &partial(json!({"replicas": 2})),
        "k",
        T1,
        false,
    )
    .unwrap();
    assert!(owns(
        &out,
        "before-first-apply",
        ".spec.template.spec.containers[name=\"web\"].image"
    ));
    assert!(owns(&out, "k", ".spec.replicas"));

    // A request may reset the entries with an empty list.
    let mut reset = out.clone();
    reset["metadata"]["managedFields"] = json!([]);
    reset["metadata"]["uid"] = json!("u-1");
    let mut old = out.clone();
    old["metadata"]["uid"] = json!("u-1");
    record_update(
        Some(&old),
        &mut reset,
        &mgr("e", T2),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    assert!(reset["metadata"].get("managedFields").is_none());
}

#[test]
fn conflict_message_with_many() {
    let c = |m: &str, op, f: &str| Conflict {
        manager: m.into(),
        field: f.into(),
        operation: op,
        api_version: "apps/v1".into(),
        subresource: String::new(),
        time: Some(T0.into()),
    };
    let list = [
        c("zed", Operation::Apply, ".spec.replicas"),
        c("ann", Operation::Update, ".spec.paused"),
        c("zed", Operation::Apply, ".spec.minReadySeconds"),
    ];
    assert_eq!(
        conflict_message(&list),
        "Apply failed with 3 conflicts: conflicts with \"ann\" using apps/v1 at 2024-01-01T00:00:00Z:\n- .spec.paused\nconflicts with \"zed\":\n- .spec.replicas\n- .spec.minReadySeconds"
    );
}

#[test]
fn update_managers_are_capped() {
    let mut obj = deployment(0, web());
    record_update(
        None,
        &mut obj,
        &mgr("m0", "2024-01-01T00:00:00Z"),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    let mut live = obj;
    live["metadata"]["uid"] = json!("u");
    for i in 1..=11 {
        let time = format!("2024-01-01T00:{i:02}:00Z");
        let mut next = live.clone();
        let meta = next["metadata"].as_object_mut().unwrap();
        let notes = meta.entry("annotations").or_insert_with(|| json!({}));
        notes[format!("a{i}")] = json!("x");
        record_update(
            Some(&live),
            &mut next,
            &mgr(&format!("m{i}"), &time),
            &deploy_ty(),
            builtin(),
        )
        .unwrap();
        live = next;
    }
    let all = entries(&live);
    assert_eq!(
        all.iter()
            .filter(|e| e.operation == Operation::Update)
            .count(),
        10
    );
    assert!(all.iter().any(|e| e.manager == ANCIENT), "{all:?}");
    assert!(!all.iter().any(|e| e.manager == "m0" || e.manager == "m1"));
}

const ANCIENT: &str = "ancient-changes";

#[test]
fn times_parse_and_format() {
    assert_eq!(managed::parse_time("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        managed::parse_time("2024-01-01T01:00:00+01:00"),
        managed::parse_time(T0)
    );
    assert_eq!(
        managed::parse_time("2024-01-01T00:00:00.123Z"),
        managed::parse_time(T0)
    );
    assert_eq!(managed::parse_time("yesterday"), None);
    assert_eq!(
        managed::format_time(managed::parse_time("2024-02-29T23:59:59Z").unwrap()),
        "2024-02-29T23:59:59Z"
    );
}

#[test]
fn managed_fields_sorted_as_upstream() {
    let live = do_apply(None, &deployment(3, web()), "zz", T1, false).unwrap();
    let mut edited = live.clone();
    edited["spec"]["paused"] = json!(true);
    record_update(
        Some(&live),
        &mut edited,
        &mgr("aa", T0),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    let out = do_apply(
        Some(&edited),
        &partial(json!({"minReadySeconds": 1})),
        "bb",
        T0,
        false,
    )
    .unwrap();
    let order: Vec<(String, String)> = out["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap().into(),
                e["manager"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want = [("Apply", "bb"), ("Apply", "zz"), ("Update", "aa")];
    assert_eq!(order, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
}

#[test]
fn atomic_lists_and_maps_are_replaced_whole() {
    let mut config = deployment(
        1,
        json!([{"name": "web", "image": "x", "args": ["a", "b"]}]),
    );
    let live = do_apply(None, &config, "k", T0, false).unwrap();
    assert!(owns(
        &live,
        "k",
        ".spec.template.spec.containers[name=\"web\"].args"
    ));
    assert!(owns(&live, "k", ".spec.selector"));
    config["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["c"]);
    config["spec"]["selector"] = json!({"matchLabels": {"tier": "x"}});
    let out = do_apply(Some(&live), &config, "k", T1, false).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["c"])
    );
    assert_eq!(
        out["spec"]["selector"],
        json!({"matchLabels": {"tier": "x"}})
    );

    // Another manager touching part of an atomic map conflicts on the whole map.
    let other = partial(json!({"selector": {"matchLabels": {"tier": "y"}}}));
    let ApplyError::Conflicts(c) = do_apply(Some(&out), &other, "o", T1, false).unwrap_err() else {
        panic!("expected conflicts")
    };
    assert_eq!(c[0].field, ".spec.selector");
}

#[test]
fn no_op_apply_keeps_object_and_time() {
    let live = do_apply(None, &deployment(1, web()), "k", T0, false).unwrap();
    let out = do_apply(Some(&live), &deployment(1, web()), "k", T2, false).unwrap();
    assert_eq!(out, live);
    assert_eq!(entry(&out, "k").time.as_deref(), Some(T0));
}

#[test]
fn unowned_fields_survive_pruning() {
    let mut live = do_apply(None, &deployment(1, web()), "k", T0, false).unwrap();
    // Set by defaulting: nobody owns it.
    live["spec"]["revisionHistoryLimit"] = json!(10);
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
    let mut config = deployment(1, web());
    config["spec"].as_object_mut().unwrap().remove("replicas");
    let out = do_apply(Some(&live), &config, "k", T1, false).unwrap();
    assert!(out["spec"].get("replicas").is_none());
    assert_eq!(out["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
}

#[test]
fn untyped_values_merge_maps_and_replace_lists() {
    let ty = Ty::any();
    let m = |name| Manager {
        reset_fields: &[],
        ..mgr(name, T0)
    };
    let a = json!({"apiVersion": "apps/v1", "spec": {"a": 1, "list": [1, 2], "deep": {"x": 1}}});
    let live = apply(None, &a, &m("a"), false, &ty, builtin()).unwrap();
    let b = json!({"apiVersion": "apps/v1", "spec": {"b": 2, "deep": {"y": 2}}});
    let out = apply(Some(&live), &b, &m("b"), false, &ty, builtin()).unwrap();
    assert_eq!(out["spec"]["a"], 1);
    assert_eq!(out["spec"]["b"], 2);
    assert_eq!(out["spec"]["deep"], json!({"x": 1, "y": 2}));
    let f = entry(&out, "a").fields.to_fields_v1();
    assert_eq!(f["f:spec"]["f:list"], json!({}));
    let c = json!({"apiVersion": "apps/v1", "spec": {"list": [3]}});
    let err = apply(Some(&out), &c, &m("c"), false, &ty, builtin()).unwrap_err();
    assert!(
        err.to_string().ends_with("conflict with \"a\": .spec.list"),
        "{err}"
    );
    let out = apply(Some(&out), &c, &m("c"), true, &ty, builtin()).unwrap();
    assert_eq!(out["spec"]["list"], json!([3]));
}

#[test]
fn update_without_changes_records_nothing_new() {
    let live = do_apply(None, &deployment(1, web()), "k", T0, false).unwrap();
    let mut same = live.clone();
    record_update(
        Some(&live),
        &mut same,
        &mgr("e", T1),
        &deploy_ty(),
        builtin(),
    )
    .unwrap();
    assert_eq!(entries(&same).len(), 1);
    assert_eq!(same, live);
    let mut not_object = json!("x");
    let err = record_update(
        Some(&live),
        &mut not_object,
        &mgr("e", T1),
        &deploy_ty(),
        builtin(),
    );
    assert!(matches!(err, Err(ApplyError::Invalid(_))));
}
