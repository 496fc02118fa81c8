//! Service account tokens end to end with real kubectl: `kubectl create token` (protobuf from
//! kubectl 1.33, JSON from 1.28), the token used as a bearer token (`auth whoami`), the
//! TokenRequest errors, and tokens dying with the objects they are bound to. Also kubectl
//! 1.33's other protobuf request: the Eviction `kubectl drain` posts; access reviews
//! (`kubectl auth can-i`) and impersonation (`--as`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// kubectl 1.`minor` authenticating with `token` only (no client certificate).
fn with_token(server: &Server, minor: u32, token: &str, args: &[&str]) -> (bool, String, String) {
    let ca = server.data_dir().join("server/tls/ca.crt");
    let empty = server.data_dir().join("empty.kubeconfig");
    std::fs::write(&empty, "").unwrap();
    let mut cmd = kubectl(minor);
    cmd.arg("--kubeconfig")
        .arg(&empty)
        .arg("--server")
        .arg(format!("https://127.0.0.1:{}", server.port))
        .arg("--certificate-authority")
        .arg(ca)
        .arg("--token")
        .arg(token)
        .args(args);
    run(&mut cmd)
}

fn whoami(server: &Server, token: &str) -> String {
    let (ok, out, err) = with_token(
        server,
        33,
        token,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    if ok {
        out
    } else {
        err
    }
}

#[test]
fn created_tokens_authenticate_as_their_account_until_it_goes() {
    let server = Server::start(APISERVER_ONLY);
    let k = Kubectl::new(&server, 33);
    let k28 = Kubectl::new(&server, 28);
    k.ok(&["create", "serviceaccount", "robot"]);

    let token = k.ok(&["create", "token", "robot"]).trim().to_owned();
    assert_eq!(
        whoami(&server, &token),
        "system:serviceaccount:default:robot"
    );
    let groups = with_token(
        &server,
        33,
        &token,
        &["auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}"],
    );
    assert!(
        groups.1.contains("system:serviceaccounts:default"),
        "{groups:?}"
    );
    // kubectl 1.28 posts JSON; the token works for ordinary requests.
    let old = k28
        .ok(&["create", "token", "robot", "--duration", "15m"])
        .trim()
        .to_owned();
    let (ok, out, err) = with_token(&server, 28, &old, &["get", "serviceaccount", "robot"]);
    assert!(ok && out.contains("robot"), "{out}{err}");
    // The admin's own identity.
    assert_eq!(
        k.ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}"
        ]),
        "admin"
    );

    // Errors, as upstream words them.
    let err = k.fails(&["create", "token", "robot", "--duration", "1m"]);
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let err = k.fails(&["create", "token", "nosuch"]);
    assert!(
        err.contains(r#"serviceaccounts "nosuch" not found"#),
        "{err}"
    );
    let err = k.fails(&[
        "create",
        "token",
        "robot",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "nope",
    ]);
    assert!(err.contains(r#"pods "nope" not found"#), "{err}");
    // A token for another audience, or a forged one, is not ours to accept.
    let other = k
        .ok(&["create", "token", "robot", "--audience", "vault"])
        .trim()
        .to_owned();
    assert!(whoami(&server, &other).contains("Unauthorized"));
    // TokenReview: what delegated authenticators ask.
    let review = |token: &str, audiences: &str| {
        k.ok_stdin(
            &["create", "-f", "-", "-o", "jsonpath={.status.authenticated}|{.status.user.username}|{.status.audiences}|{.status.error}"],
            &format!("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n  audiences: {audiences}\n"),
        )
    };
    assert_eq!(
        review(&token, "[]"),
        r#"true|system:serviceaccount:default:robot|["https://kubernetes.default.svc.cluster.local"]|"#
    );
    assert_eq!(
        review(&other, "[vault]"),
        r#"true|system:serviceaccount:default:robot|["vault"]|"#
    );
    assert_eq!(review(&other, "[]"), "|||invalid bearer token");
    let mut forged: Vec<&str> = token.split('.').collect();
    forged[2] = "AAAA";
    assert!(whoami(&server, &forged.join(".")).contains("Unauthorized"));

    // Bound to a secret: valid while the secret is.
    k.ok(&[
        "create",
        "secret",
        "generic",
        "anchor",
        "--from-literal=a=b",
    ]);
    let bound = k
        .ok(&[
            "create",
            "token",
            "robot",
            "--bound-object-kind",
            "Secret",
            "--bound-object-name",
            "anchor",
        ])
        .trim()
        .to_owned();
    assert_eq!(
        whoami(&server, &bound),
        "system:serviceaccount:default:robot"
    );
    k.ok(&["delete", "secret", "anchor"]);
    wait_until(10, "the secret-bound token to stop working", || {
        whoami(&server, &bound).contains("Unauthorized")
    });
    assert_eq!(
        whoami(&server, &token),
        "system:serviceaccount:default:robot"
    );

    // The account deleted and made again under the same name: old tokens stay dead.
    k.ok(&["delete", "serviceaccount", "robot"]);
    k.ok(&["create", "serviceaccount", "robot"]);
    wait_until(10, "the old account's token to stop working", || {
        whoami(&server, &token).contains("Unauthorized")
    });
}

#[test]
fn kubectl_drain_evicts_through_protobuf() {
    let server = Server::start(&["--hollow-nodes", "2"]);
    let k = Kubectl::new(&server, 33);
    k.ok(&[
        "create",
        "deployment",
        "web",
        "--image=web:1",
        "--replicas=2",
    ]);
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let nodes = jsonpath(
        &k,
        &["get", "pods", "-l", "app=web"],
        "{.items[*].spec.nodeName}",
    );
    let node = nodes
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let out = k.ok(&["drain", &node, "--ignore-daemonsets", "--timeout=60s"]);
    assert!(out.contains("evicted"), "{out}");
    k.ok(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let after = jsonpath(
        &k,
        &["get", "pods", "-l", "app=web"],
        "{.items[*].spec.nodeName}",
    );
    assert!(
        !after.split_whitespace().any(|n| n == node),
        "no web pod left on the drained node {node}: {after}"
    );
}

#[test]
fn a_running_pod_reads_its_bound_token_ca_and_namespace() {
    if !can_run_containers() {
        return;
    }
    let server = Server::start_node(&[]);
    let k = Kubectl::new(&server, 33);
    wait_until(60, "the node to be Ready", || {
        k.run(&["get", "nodes", "--no-headers"])
            .1
            .contains(" Ready")
    });
    k.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: reader}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sleep", "3600"]
"#
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/reader",
        "--timeout=90s",
    ]);
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let read = |file: &str| k.ok(&["exec", "reader", "--", "cat", &format!("{dir}/{file}")]);
    assert_eq!(read("namespace"), "default");
    let ca = std::fs::read_to_string(server.data_dir().join("server/tls/ca.crt")).unwrap();
    assert_eq!(read("ca.crt"), ca);
    let token = read("token");
    assert_eq!(
        whoami(&server, &token),
        "system:serviceaccount:default:default"
    );
    // Bound to this pod, on this node, issued for a year with the kubelet's 3607 s as the
    // warning time (as upstream extends them).
    let claims = token.split('.').nth(1).unwrap_or_default();
    let decoded = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap()
    };
    let claims: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    let uid = jsonpath(&k, &["get", "pod", "reader"], "{.metadata.uid}");
    assert_eq!(claims["kubernetes.io"]["pod"]["uid"], uid.as_str());
    assert!(
        claims["kubernetes.io"]["node"]["name"].is_string(),
        "{claims}"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 365 * 24 * 3600);
    assert_eq!(
        claims["kubernetes.io"]["warnafter"].as_i64(),
        Some(iat + 3607)
    );
    // Gone with its pod.
    k.ok(&["delete", "pod", "reader", "--wait=true", "--timeout=60s"]);
    assert!(whoami(&server, &token).contains("Unauthorized"));
}

#[test]
fn access_reviews_and_impersonation() {
    let server = Server::start(APISERVER_ONLY);
    let k = Kubectl::new(&server, 33);
    // No RBAC yet: every authenticated user may do everything (AlwaysAllow), and says so.
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert_eq!(
        Kubectl::new(&server, 28)
            .ok(&["auth", "can-i", "delete", "nodes"])
            .trim(),
        "yes"
    );
    let list = k.ok(&["auth", "can-i", "--list"]);
    assert!(list.contains("*.*"), "{list}");
    // Impersonation.
    let who = k.ok(&[
        "auth",
        "whoami",
        "--as=bob",
        "--as-group=devs",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(who, r#"bob ["devs","system:authenticated"]"#);
    let (code, body) = curl(
        &server,
        "GET",
        "/api/v1/namespaces",
        &["Impersonate-Group: devs"],
        None,
    );
    assert_eq!(code, 400, "{body}");
    // Reviews are validated as upstream.
    let err = k.fails_stdin(
        &["create", "-f", "-"],
        "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  resourceAttributes: {verb: get, resource: pods}\n",
    );
    assert!(
        err.contains(
            "spec.user: Invalid value: \"\": at least one of user or group must be specified"
        ),
        "{err}"
    );
    let err = k.fails_stdin(
        &["create", "-n", "default", "-f", "-"],
        "apiVersion: authorization.k8s.io/v1\nkind: LocalSubjectAccessReview\nmetadata: {namespace: default}\nspec:\n  user: bob\n  resourceAttributes: {verb: get, resource: pods, namespace: other}\n",
    );
    assert!(err.contains("must match metadata.namespace"), "{err}");
    let out = k.ok_stdin(
        &["create", "-f", "-", "-o", "jsonpath={.status.allowed}"],
        "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: bob\n  nonResourceAttributes: {verb: get, path: /healthz}\n",
    );
    assert_eq!(out, "true");
}
