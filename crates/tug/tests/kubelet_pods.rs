//! End to end with real containers: `tug server` with its kubelet on containerd, driven by
//! kubectl — deployments serving from their pod IPs, init containers and emptyDir, restart
//! back-off, probes, jobs, OOM kills, ConfigMap and Secret volumes and env (and their
//! updates), lifecycle hooks, graceful deletion, and a restart of `tug server` leaving
//! containers running.
//! Each test is its own one-node cluster. Skipped (with a message) where containers cannot
//! run; CI installs containerd and runs as root.

mod common;

use std::time::{Duration, Instant};

use common::{can_run_containers, jsonpath, wait_until, Kubectl, Server, BUSYBOX};

const KUBECTL: u32 = 33;

fn node() -> Option<(Server, Kubectl)> {
    if !can_run_containers() {
        return None;
    }
    let server = Server::start_node(&[]);
    let k = Kubectl::new(&server, KUBECTL);
    wait_until(60, "the node to be Ready", || {
        k.run(&["get", "nodes", "--no-headers"])
            .1
            .contains(" Ready")
    });
    Some((server, k))
}

fn apply(k: &Kubectl, yaml: &str) {
    k.ok_stdin(&["apply", "-f", "-"], yaml);
}

/// GET http://ip:port/path from the host (pods of this test only).
fn http_get(ip: &str, port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = format!("{ip}:{port}").parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

#[test]
fn deployment_init_job_and_config_volumes() {
    let Some((_server, k)) = node() else { return };
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{greeting: hello}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec}}
stringData: {{password: s3cret}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      initContainers:
      - name: fill
        image: {BUSYBOX}
        command: ["sh", "-c", "echo served-by-$(POD) > /www/index.html"]
        env:
        - name: POD
          valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
        volumeMounts: [{{name: www, mountPath: /www}}]
      containers:
      - name: httpd
        image: {BUSYBOX}
        command: ["sh", "-c", "echo $GREETING $PASSWORD > /www/env; exec httpd -f -p 8080 -h /www"]
        env:
        - name: GREETING
          valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}
        - name: PASSWORD
          valueFrom: {{secretKeyRef: {{name: sec, key: password}}}}
        readinessProbe:
          httpGet: {{path: /index.html, port: 8080}}
          periodSeconds: 1
        volumeMounts:
        - {{name: www, mountPath: /www}}
        - {{name: cfg, mountPath: /www/cfg}}
        - {{name: sec, mountPath: /www/sec}}
      volumes:
      - {{name: www, emptyDir: {{}}}}
      - {{name: cfg, configMap: {{name: cfg}}}}
      - {{name: sec, secret: {{secretName: sec}}}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: once}}
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: work
        image: {BUSYBOX}
        command: ["sh", "-c", "echo done"]
"#
        ),
    );
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    // Both replicas serve the page their init container wrote, from their pod IPs.
    let pods = jsonpath(
        &k,
        &["get", "pods", "-l", "app=web"],
        r#"{range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}"#,
    );
    let pods: Vec<(String, String)> = pods
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert_ne!(pods[0].1, pods[1].1, "two pod IPs");
    for (name, ip) in &pods {
        let body = http_get(ip, 8080, "/index.html").unwrap_or_default();
        assert_eq!(body.trim(), format!("served-by-{name}"), "from {ip}");
    }
    // Env from the ConfigMap and Secret, and their volumes (served by the pod's httpd).
    let ip = &pods[0].1;
    let get = |path: &str| http_get(ip, 8080, path).unwrap_or_default();
    assert_eq!(get("/env").trim(), "hello s3cret");
    assert_eq!(get("/cfg/greeting"), "hello");
    assert_eq!(get("/sec/password"), "s3cret");
    // Updates reach the volumes (atomically), not the env.
    k.ok(&[
        "patch",
        "configmap",
        "cfg",
        "-p",
        r#"{"data":{"greeting":"bonjour"}}"#,
    ]);
    k.ok(&[
        "patch",
        "secret",
        "sec",
        "-p",
        r#"{"stringData":{"password":"n3w"}}"#,
    ]);
    wait_until(60, "the configMap and secret volumes to be updated", || {
        get("/cfg/greeting") == "bonjour" && get("/sec/password") == "n3w"
    });
    assert_eq!(get("/env").trim(), "hello s3cret");
    // The job ran its two completions and succeeded.
    k.ok(&[
        "wait",
        "--for=condition=complete",
        "job/once",
        "--timeout=120s",
    ]);
    assert_eq!(
        jsonpath(&k, &["get", "job", "once"], "{.status.succeeded}"),
        "2"
    );
    let phases = jsonpath(
        &k,
        &["get", "pods", "-l", "job-name=once"],
        "{.items[*].status.phase}",
    );
    assert_eq!(phases, "Succeeded Succeeded");
}

#[test]
fn restarts_back_off_probes_and_oom() {
    let Some((_server, k)) = node() else { return };
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: crash}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sh", "-c", "exit 1"]
---
apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {{command: ["cat", "/tmp/healthy"]}}
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      exec: {{command: ["cat", "/tmp/healthy"]}}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: nogrpc}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    readinessProbe:
      grpc: {{port: 9555}}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sh", "-c", "x=a; while true; do x=$x$x; done"]
    resources:
      limits: {{memory: 32Mi}}
"#
        ),
    );
    // CrashLoopBackOff, with the back-off growing between restarts: after restart n it is
    // 10s·2^(n-1), named in the message as upstream's. Reason, count and message are read
    // in one snapshot.
    let mut seen = String::new();
    wait_until(
        90,
        "crash to show CrashLoopBackOff after two restarts",
        || {
            seen = jsonpath(
                &k,
                &["get", "pod", "crash"],
                "{.status.containerStatuses[0].state.waiting.reason} \
                 {.status.containerStatuses[0].restartCount} \
                 {.status.containerStatuses[0].state.waiting.message}",
            );
            let mut f = seen.split_whitespace();
            f.next() == Some("CrashLoopBackOff")
                && f.next()
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n >= 2)
        },
    );
    let mut f = seen.splitn(3, ' ');
    let (_, count, message) = (f.next(), f.next().unwrap_or_default(), f.next());
    let restarts: u32 = count.parse().unwrap_or_else(|e| panic!("{seen}: {e}"));
    let backoff = 10u64 << (restarts - 1).min(5);
    let expected = match backoff {
        b if b >= 300 => "5m0s".to_owned(),
        b if b >= 60 => format!("{}m{}s", b / 60, b % 60),
        b => format!("{b}s"),
    };
    assert!(
        message.is_some_and(|m| m.starts_with(&format!(
            "back-off {expected} restarting failed container=c pod=crash_default("
        ))),
        "{seen}"
    );
    assert_eq!(
        jsonpath(
            &k,
            &["get", "pod", "crash"],
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "1"
    );
    let out = k.ok(&["get", "pod", "crash"]);
    assert!(out.contains("CrashLoopBackOff"), "{out}");

    // Readiness follows the probe; a failing liveness probe restarts the container.
    wait_until(60, "live to be Ready", || {
        jsonpath(
            &k,
            &["get", "pod", "live"],
            r#"{.status.conditions[?(@.type=="Ready")].status}"#,
        ) == "True"
    });
    wait_until(60, "live to be restarted by its liveness probe", || {
        jsonpath(
            &k,
            &["get", "pod", "live"],
            "{.status.containerStatuses[0].restartCount}",
        )
        .parse::<u32>()
        .is_ok_and(|n| n >= 1)
    });
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
    ]);
    assert!(events.contains("Unhealthy"), "{events}");
    assert!(events.contains("failed liveness probe"), "{events}");

    // A gRPC readiness probe with nothing listening keeps the pod unready, with upstream's
    // message (the health protocol itself is covered by the kubelet's unit tests).
    wait_until(60, "nogrpc's gRPC probe to fail", || {
        k.run(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=nogrpc,reason=Unhealthy",
        ])
        .1
        .contains("Readiness probe failed: timeout: failed to connect service")
    });
    assert_eq!(
        jsonpath(
            &k,
            &["get", "pod", "nogrpc"],
            r#"{.status.conditions[?(@.type=="Ready")].status}"#,
        ),
        "False"
    );

    // Over its memory limit: OOMKilled, and with restartPolicy Never the pod fails.
    wait_until(90, "hog to be OOMKilled", || {
        jsonpath(
            &k,
            &["get", "pod", "hog"],
            "{.status.containerStatuses[0].state.terminated.reason}",
        ) == "OOMKilled"
    });
    wait_until(30, "hog to fail", || {
        jsonpath(&k, &["get", "pod", "hog"], "{.status.phase}") == "Failed"
    });
}

#[test]
fn graceful_deletion_and_server_restart() {
    let Some((mut server, k)) = node() else {
        return;
    };
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: stays}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: stubborn}}
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
"#
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/stays",
        "pod/stubborn",
        "--timeout=90s",
    ]);
    // A static pod from the manifest directory gets a mirror pod named after the node.
    let node = jsonpath(&k, &["get", "nodes"], "{.items[0].metadata.name}");
    let manifests = server.data_dir().join("agent/pod-manifests");
    std::fs::create_dir_all(&manifests).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        manifests.join("static.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: static}}\nspec:\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, \"3600\"]\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mirror = format!("pod/static-{node}");
    wait_until(60, "the static pod's mirror to exist", || {
        k.run(&["get", &mirror]).0
    });
    k.ok(&["wait", "--for=condition=Ready", &mirror, "--timeout=60s"]);
    let id = |pod: &str| {
        jsonpath(
            &k,
            &["get", "pod", pod],
            "{.status.containerStatuses[0].containerID}",
        )
    };
    let before = id("stays");
    assert!(before.starts_with("containerd://"), "{before}");

    // A container ignoring SIGTERM is killed when its grace period (3 s) ends.
    let start = Instant::now();
    k.ok(&["delete", "pod", "stubborn", "--timeout=60s"]);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "deleted after {took:?}: the grace period was not given"
    );
    assert!(
        took < Duration::from_secs(20),
        "deleted after {took:?}: not killed at the end of the grace period"
    );

    // Restarting tug server leaves the running container alone: same id, no restart.
    server.restart();
    wait_until(60, "the node to be Ready again", || {
        k.run(&["get", "nodes", "--no-headers"])
            .1
            .contains(" Ready")
    });
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/stays",
        "--timeout=60s",
    ]);
    assert_eq!(id("stays"), before);
    assert_eq!(
        jsonpath(
            &k,
            &["get", "pod", "stays"],
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );

    // Traffic leaving the pod range is masqueraded by one node-wide chain (not one per pod),
    // and `tug killall` (run when the server is dropped) removes it.
    let cidr = jsonpath(&k, &["get", "nodes"], "{.items[0].spec.podCIDR}");
    let bridge = tug_kubelet::cni::bridge_name(&cidr).unwrap_or_default();
    let chain = tug_kubelet::masquerade::chain(&bridge);
    let nat = |args: &[&str]| {
        let out = std::process::Command::new("iptables")
            .args(["-w", "-t", "nat"])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("iptables: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, rules) = nat(&["-S", &chain]);
    assert!(
        ok && rules.contains(&format!("-A {chain} -j MASQUERADE")),
        "{rules}"
    );
    let (_, post) = nat(&["-S", "POSTROUTING"]);
    assert!(
        post.lines().filter(|l| l.contains(&chain)).count() == 1 && post.contains(&cidr),
        "one jump for the range {cidr}: {post}"
    );
    let range = cidr.rsplit_once('.').map(|(net, _)| format!("-s {net}."));
    assert!(
        !post
            .lines()
            .any(|l| range.as_ref().is_some_and(|r| l.contains(r)) && l.contains("CNI-")),
        "no per-pod masquerade rules from the bridge plugin: {post}"
    );
    drop(server);
    assert!(!nat(&["-S", &chain]).0, "killall left {chain}");
}

#[test]
fn lifecycle_hooks_exec_and_http() {
    let Some((_server, k)) = node() else { return };
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = out.path().display();
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 10
  volumes: [{{name: out, hostPath: {{path: "{dir}", type: Directory}}}}]
  containers:
  - name: web
    image: {BUSYBOX}
    command: ["sh", "-c", "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho stopping > /out/prestop\\necho Content-Type: text/plain\\necho\\necho ok\\n' > /www/cgi-bin/stop && chmod +x /www/cgi-bin/stop && exec httpd -f -p 8080 -h /www"]
    ports: [{{name: http, containerPort: 8080}}]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "echo started > /out/poststart"]}}}}
      preStop: {{httpGet: {{path: /cgi-bin/stop, port: http}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: badhook}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    lifecycle:
      postStart: {{exec: {{command: ["sh", "-c", "exit 3"]}}}}
"#
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/hooks",
        "--timeout=90s",
    ]);
    let read = |f: &str| std::fs::read_to_string(out.path().join(f)).unwrap_or_default();
    assert_eq!(
        read("poststart").trim(),
        "started",
        "the postStart exec hook ran"
    );
    // A failing postStart hook is an event, and the container is killed (and restarted).
    wait_until(60, "badhook's FailedPostStartHook event", || {
        k.run(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=badhook,reason=FailedPostStartHook",
        ])
        .1
        .contains("exited with 3")
    });
    // Deleting runs the preStop httpGet hook against the named port before stopping.
    k.ok(&["delete", "pod", "hooks", "--timeout=60s"]);
    assert_eq!(
        read("prestop").trim(),
        "stopping",
        "the preStop httpGet hook ran"
    );
}

#[test]
fn fs_group_owns_volumes_and_joins_the_groups() {
    let Some((_server, k)) = node() else { return };
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: fsg}}
data: {{key: value}}
---
apiVersion: v1
kind: Pod
metadata: {{name: fsg}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000}}
  volumes:
  - {{name: scratch, emptyDir: {{}}}}
  - {{name: cfg, configMap: {{name: fsg, defaultMode: 0400}}}}
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sh", "-c", "id -G; touch /scratch/new; stat -c '%g %a' /scratch /scratch/new /cfg/..data/key"]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: cfg, mountPath: /cfg}}
"#
        ),
    );
    wait_until(90, "fsg to finish", || {
        jsonpath(&k, &["get", "pod", "fsg"], "{.status.phase}") == "Succeeded"
    });
    let out = k.ok(&["logs", "fsg"]);
    let lines: Vec<&str> = out.lines().collect();
    // The fsGroup is a supplemental group of the process, beside its primary group.
    let groups: Vec<&str> = lines
        .first()
        .map_or(vec![], |l| l.split_whitespace().collect());
    assert!(
        groups.contains(&"3000") && groups.contains(&"2000"),
        "{out}"
    );
    // The emptyDir belongs to the group with setgid, so a new file inherits it; the
    // read-only configMap file gains group read.
    assert_eq!(lines.get(1).copied(), Some("2000 2777"), "{out}");
    assert_eq!(lines.get(2).map(|l| &l[..4]), Some("2000"), "{out}");
    assert_eq!(lines.get(3).copied(), Some("2000 440"), "{out}");
}

#[test]
fn container_logs_rotate_and_stay_readable() {
    if !can_run_containers() {
        return;
    }
    let server = Server::start_node(&[
        "--container-log-max-size",
        "100Ki",
        "--container-log-max-files",
        "3",
    ]);
    let k = Kubectl::new(&server, KUBECTL);
    apply(
        &k,
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: chatty}}
spec:
  containers:
  - name: c
    image: {BUSYBOX}
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); yes 0123456789abcdef | head -n 20000; echo mark-$i; sleep 1; done"]
"#
        ),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/chatty",
        "--timeout=90s",
    ]);
    // Rotation is checked every 10 s: the 340 KB a second this pod writes is over 100Ki.
    let logs = server.data_dir().join("agent/pod-logs");
    let files = |suffix: bool| -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![logs.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if p.is_dir() {
                    stack.push(p);
                } else if name.starts_with("0.log") && (name != "0.log") == suffix {
                    out.push(p);
                }
            }
        }
        out
    };
    wait_until(45, "the log to be rotated", || !files(true).is_empty());
    // The runtime writes to a fresh file, which the kubelet's log API reads.
    wait_until(
        30,
        "lines written after the rotation in kubectl logs",
        || {
            k.run(&["logs", "chatty", "--tail=1"])
                .1
                .starts_with("mark-")
        },
    );
    assert_eq!(files(false).len(), 1, "one current file");
    assert!(
        files(true).len() <= 2,
        "at most max-files - 1 rotated: {:?}",
        files(true)
    );
    // At the next rotation the one rotated before is gzipped; the newest stays plain.
    let gz = |p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "gz");
    wait_until(45, "a rotated log to be compressed", || {
        files(true).iter().any(gz)
    });
    let rotated = files(true);
    assert!(rotated.len() <= 2, "{rotated:?}");
    let compressed = rotated.iter().find(|p| gz(p)).cloned().unwrap_or_default();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(
            std::fs::File::open(&compressed).unwrap_or_else(|e| panic!("{e}")),
        ),
        &mut text,
    )
    .unwrap_or_else(|e| panic!("{compressed:?}: {e}"));
    assert!(
        text.lines().any(|l| l.ends_with("0123456789abcdef")),
        "CRI log lines in {compressed:?}"
    );
}

/// A `tug agent` whose containers are stopped when it is dropped.
struct Agent {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        common::killall(self.dir.path());
    }
}

#[test]
fn agent_joins_with_the_token_and_runs_pods() {
    if !can_run_containers() {
        return;
    }
    let port = common::free_port();
    let cidr = format!("10.{}.0.0/16", 100 + port % 128);
    let server = Server::start(&["--cluster-cidr", &cidr]);
    let k = Kubectl::new(&server, KUBECTL);
    let token = std::fs::read_to_string(server.data_dir().join("server/token")).unwrap_or_default();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let images = dir.path().join("agent/images");
    std::fs::create_dir_all(&images).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(common::busybox_archive(), images.join("busybox.tar"))
        .unwrap_or_else(|e| panic!("{e}"));
    let child = common::tug()
        .args([
            "agent",
            "--server",
            &format!("https://127.0.0.1:{}", server.port),
        ])
        .args([
            "--token",
            token.trim(),
            "--node-name",
            "joined",
            "--node-ip",
            "127.0.0.1",
        ])
        .args([
            "--kubelet-port",
            &common::free_port().to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let _agent = Agent { child, dir };
    wait_until(60, "the joined node to be Ready", || {
        k.run(&["get", "node", "joined", "--no-headers"])
            .1
            .contains(" Ready")
    });
    apply(
        &k,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: away}}\nspec:\n  containers:\n  - name: c\n    image: {BUSYBOX}\n    command: [sleep, \"3600\"]\n"
        ),
    );
    k.ok(&["wait", "--for=condition=Ready", "pod/away", "--timeout=90s"]);
    assert_eq!(
        jsonpath(&k, &["get", "pod", "away"], "{.spec.nodeName}"),
        "joined"
    );
    k.ok(&["delete", "pod", "away", "--timeout=60s"]);
}
