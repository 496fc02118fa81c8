//! End to end through the kubelet API: `tug server` with its kubelet on containerd, and real
//! kubectl 1.33 and 1.28 using the streaming pod subresources the API server proxies to the
//! kubelet: `logs` (containers, `--tail`, `--timestamps`, `--since-time`, `--limit-bytes`,
//! `--previous` after a restart, `-f` until the container exits, upstream's errors), `exec`
//! (exit codes, stdin), `attach -i`, `port-forward` to a busybox httpd, `cp` both ways, and
//! `debug` (an ephemeral container in the target's process namespace, with stdin).
//!
//! Needs root, containerd, the CNI plugins and a static busybox (`Server::start_node` places
//! the busybox image for the kubelet to import); without them it says why and passes, so CI,
//! which has them and runs as root, is where it bites.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Kubectl, Server};

/// The workload image.
const IMAGE: &str = common::BUSYBOX;
const NODE: &str = "streams";

/// Deletes the pods and waits for their containers to be gone, then stops the server with
/// SIGTERM so it stops its containerd (a SIGKILL would leave containerd running). Runs on
/// panics too.
struct Teardown<'a> {
    server: &'a mut Server,
    kubectl: Kubectl,
    socket: PathBuf,
}

impl Drop for Teardown<'_> {
    fn drop(&mut self) {
        let _ = self.kubectl.run(&[
            "delete",
            "pods",
            "--all",
            "--grace-period=1",
            "--timeout=120s",
        ]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && !ctr(&self.socket, &["containers", "ls", "-q"])
                .1
                .trim()
                .is_empty()
        {
            std::thread::sleep(Duration::from_millis(250));
        }
        let left = ctr(&self.socket, &["containers", "ls", "-q"]).1;
        let pid = self.server.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.server.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if !std::thread::panicking() {
            assert!(
                left.trim().is_empty(),
                "containers left after deleting the pods: {left}"
            );
        }
    }
}

/// `ctr -n k8s.io …` against the server's containerd: (success, stdout + stderr).
fn ctr(socket: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("ctr")
        .arg("-a")
        .arg(socket)
        .args(["-n", "k8s.io"])
        .args(args)
        .output()
        .expect("running ctr");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A container of the busybox image running `script`, with `extra` YAML lines.
fn container(name: &str, script: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    image: {IMAGE}\n    imagePullPolicy: Never\n    \
         command: [\"sh\", \"-c\", {script:?}]\n{extra}"
    )
}

/// A pod with `spec` YAML lines and `containers`.
fn pod(name: &str, spec: &str, containers: &[String]) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n{spec}  containers:\n{}---\n",
        containers.concat()
    )
}

/// The pods every kubectl reads: `web` (httpd and a sidecar), `restarter` (fails once, then
/// runs), `noimage` (waits for an image it may not pull).
fn shared_pods() -> String {
    let mut y = String::new();
    y += &pod(
        "web",
        "",
        &[
            container(
                "main",
                "echo err1 >&2; sleep 1; echo line1; echo line2; echo line3; mkdir -p /www; \
                 echo hello-from-httpd > /www/index.html; exec httpd -f -p 8080 -h /www",
                "",
            ),
            container("side", "echo side-says-hi; exec sleep 100000", ""),
        ],
    );
    y += &pod(
        "restarter",
        "  volumes: [{name: data, emptyDir: {}}]\n",
        &[container(
            "c",
            "if [ -f /data/done ]; then echo second-run; exec sleep 100000; \
             else touch /data/done; echo first-run; exit 1; fi",
            "    volumeMounts: [{name: data, mountPath: /data}]\n",
        )],
    );
    y += "apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec:\n  containers:\n  \
          - name: c\n    image: tug.local/absent:1\n    imagePullPolicy: Never\n---\n";
    y
}

/// The pods one kubectl uses up: `ticker-N` (prints five lines and exits) and `catter-N`
/// (echoes its stdin until it ends).
fn version_pods(minor: u32) -> String {
    let ticker = container("c", "for i in 1 2 3 4 5; do echo tick$i; sleep 1; done", "");
    let catter = container(
        "c",
        "while read l; do echo got-$l; done; echo bye",
        "    stdin: true\n    stdinOnce: true\n",
    );
    let never = "  restartPolicy: Never\n";
    pod(&format!("ticker-{minor}"), never, &[ticker])
        + &pod(&format!("catter-{minor}"), never, &[catter])
}

/// Waits for `child` at most `secs`; kills it on timeout. (exit code, stdout, stderr).
fn finish(mut child: Child, secs: u64) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("waiting for kubectl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn logs_and_errors(k: &Kubectl, minor: u32) {
    let logs = |args: &[&str]| {
        let mut all = vec!["logs"];
        all.extend_from_slice(args);
        k.ok(&all)
    };
    assert_eq!(logs(&["web", "-c", "main"]), "err1\nline1\nline2\nline3\n");
    assert_eq!(logs(&["web", "-c", "side"]), "side-says-hi\n");
    assert_eq!(logs(&["web", "-c", "main", "--tail=2"]), "line2\nline3\n");
    let stamped = logs(&["web", "-c", "main", "--tail=1", "--timestamps"]);
    let (time, text) = stamped.trim_end().split_once(' ').expect("a timestamp");
    assert_eq!(text, "line3");
    assert!(time.starts_with("20") && time.contains('T'), "{stamped}");
    assert_eq!(
        logs(&["web", "-c", "main", "--since-time=2999-01-01T00:00:00Z"]),
        ""
    );
    assert_eq!(
        logs(&["web", "-c", "main", "--since=1h"]).lines().count(),
        4
    );
    assert_eq!(logs(&["web", "-c", "main", "--limit-bytes=8"]), "err1\nlin");
    assert_eq!(logs(&["restarter"]), "second-run\n");
    assert_eq!(logs(&["restarter", "--previous"]), "first-run\n");
    let err = k.fails(&["logs", "web", "-c", "side", "--previous"]);
    assert!(
        err.contains(r#"previous terminated container "side" in pod "web" not found"#),
        "kubectl 1.{minor}: {err}"
    );
    let err = k.fails(&["logs", "noimage"]);
    assert!(
        err.contains(r#"container "c" in pod "noimage" is waiting to start: ErrImageNeverPull"#),
        "kubectl 1.{minor}: {err}"
    );
    let err = k.fails(&["logs", "web", "-c", "nope"]);
    assert!(
        err.contains("container nope is not valid for pod web"),
        "kubectl 1.{minor}: {err}"
    );
    let err = k.fails(&["logs", "absent"]);
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );

    // -f streams while the container runs and ends when it exits.
    let ticker = format!("ticker-{minor}");
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{ticker}"),
        "--timeout=60s",
    ]);
    let started = Instant::now();
    let follow = k
        .cmd()
        .args(["logs", "-f", &ticker])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let (code, out, err) = finish(follow, 60);
    assert_eq!(code, Some(0), "kubectl 1.{minor} logs -f: {err}");
    assert_eq!(out, "tick1\ntick2\ntick3\ntick4\ntick5\n");
    assert!(started.elapsed() < Duration::from_secs(40));
}

fn exec_attach_cp(k: &Kubectl, minor: u32, scratch: &Path) {
    // kubectl ≥ 1.30 asks for WebSocket v5 first, and gets it (no fall back to SPDY): its
    // verbose log names the subprotocol.
    let (code, _, err) = finish(
        k.cmd()
            .args([
                "exec", "-v=6", "web", "-c", "main", "--", "sh", "-c", "exit 3",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl exec"),
        60,
    );
    assert_eq!(code, Some(3), "kubectl 1.{minor} exec exit code: {err}");
    if minor >= 30 {
        assert!(
            err.contains("The subprotocol is v5.channel.k8s.io") && !err.contains("fallback"),
            "kubectl 1.{minor} exec did not use WebSocket v5: {err}"
        );
    }
    assert_eq!(
        k.ok(&[
            "exec",
            "web",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2"
        ]),
        "out\n"
    );
    assert_eq!(
        k.ok_stdin(
            &["exec", "-i", "web", "-c", "main", "--", "cat"],
            "piped\nlines\n"
        ),
        "piped\nlines\n"
    );

    // attach -i: stdin reaches the container, its output comes back, and with stdinOnce
    // the end of input ends the container and the attach.
    let catter = format!("catter-{minor}");
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{catter}"),
        "--timeout=60s",
    ]);
    let mut attach = k
        .cmd()
        .args(["attach", "-i", &catter, "-c", "c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl attach");
    {
        let mut stdin = attach.stdin.take().expect("stdin");
        stdin.write_all(b"one\ntwo\n").expect("writing to attach");
        std::thread::sleep(Duration::from_secs(1));
    }
    let (code, out, err) = finish(attach, 60);
    assert_eq!(code, Some(0), "kubectl 1.{minor} attach: {err}");
    assert!(
        out.contains("got-one\ngot-two\n") && out.contains("bye"),
        "{out}"
    );

    // cp in and out (tar through exec).
    let local = scratch.join(format!("in-{minor}.txt"));
    let content = format!("copied by kubectl 1.{minor}\n");
    std::fs::write(&local, &content).expect("writing the file to copy");
    let remote = format!("web:/tmp/in-{minor}.txt");
    k.ok(&["cp", local.to_str().expect("utf-8"), &remote, "-c", "main"]);
    assert_eq!(
        k.ok(&[
            "exec",
            "web",
            "-c",
            "main",
            "--",
            "cat",
            &format!("/tmp/in-{minor}.txt")
        ]),
        content
    );
    let back = scratch.join(format!("out-{minor}.txt"));
    k.ok(&["cp", &remote, back.to_str().expect("utf-8"), "-c", "main"]);
    assert_eq!(
        std::fs::read_to_string(&back).expect("copied back"),
        content
    );
}

fn port_forward(k: &Kubectl, minor: u32) {
    let port = free_port();
    let mut pf = k
        .cmd()
        .args(["port-forward", "pod/web", &format!("{port}:8080")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let stdout = pf.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(30))
        .is_ok_and(|l| l.contains("Forwarding from"));
    let fetch = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    };
    let first = fetch();
    let second = fetch();
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(
        ready,
        "kubectl 1.{minor} port-forward never said it forwards"
    );
    for got in [first, second] {
        let body = got.expect("a GET through the forwarded port");
        assert!(
            body.contains("200") && body.contains("hello-from-httpd"),
            "{body}"
        );
    }
}

/// `kubectl debug`: an ephemeral container that sees `web`'s main container's processes,
/// then one fed through stdin (`-i`).
fn debug(k: &Kubectl, minor: u32) {
    let name = format!("dbg-{minor}");
    k.ok(&[
        "debug",
        "web",
        &format!("--image={IMAGE}"),
        "--image-pull-policy=Never",
        "--target=main",
        "-c",
        &name,
        "--",
        "ps",
        "-o",
        "comm",
    ]);
    let state = format!(
        "jsonpath={{.status.ephemeralContainerStatuses[?(@.name==\"{name}\")].state.terminated.exitCode}}"
    );
    common::wait_until(60, "the ephemeral container to finish", || {
        k.run(&["get", "pod", "web", "-o", &state]).1 == "0"
    });
    let out = k.ok(&["logs", "web", "-c", &name]);
    assert!(
        out.contains("httpd"),
        "kubectl 1.{minor}: the target's processes: {out}"
    );
    // With stdin: kubectl ≥ 1.30 only. kubectl 1.28 speaks SPDY, which the kubelet passes
    // through to containerd, as upstream's does; containerd may then lose the output of a
    // process that answers and exits the moment its stdin arrives (kubectl sends stdin
    // before containerd has hooked up stdout). The WebSocket path waits for every stream.
    if minor < 30 {
        return;
    }
    let fed = format!("dbg-in-{minor}");
    let mut child = k
        .cmd()
        .args([
            "debug",
            "web",
            "-i",
            &format!("--image={IMAGE}"),
            "--image-pull-policy=Never",
            "-c",
            &fed,
            "--",
            "sh",
            "-c",
            "read l; echo got-$l",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl debug");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello\n")
        .expect("writing stdin");
    let (code, out, err) = finish(child, 60);
    assert_eq!(code, Some(0), "kubectl 1.{minor} debug -i: {out}{err}");
    assert!(
        out.contains("got-hello"),
        "kubectl 1.{minor} debug -i: {out}{err}"
    );
}

#[test]
fn kubectl_streams_through_the_kubelet() {
    if !common::can_run_containers() {
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start_node(&["--node-name", NODE]);
    let socket = server.data_dir().join("agent/containerd/containerd.sock");
    let k33 = Kubectl::new(&server, 33);
    let k28 = Kubectl::new(&server, 28);
    let teardown = Teardown {
        kubectl: Kubectl::new(&server, 33),
        server: &mut server,
        socket: socket.clone(),
    };

    common::wait_until(60, "the node to register", || {
        k33.run(&["get", "node", NODE]).0
    });
    k33.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("node/{NODE}"),
        "--timeout=90s",
    ]);
    k33.ok_stdin(&["apply", "-f", "-"], &shared_pods());
    k33.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=120s"]);
    // web's main container writes its lines a second after it starts.
    common::wait_until(60, "web's log lines", || {
        k33.run(&["logs", "web", "-c", "main"]).1.contains("line3")
    });
    // The first run exits; the second stays up.
    common::wait_until(120, "restarter's second run", || {
        let (_, out, _) = k33.run(&[
            "get",
            "pod",
            "restarter",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].ready}",
        ]);
        out == "1 true"
    });

    for (minor, k) in [(33, &k33), (28, &k28)] {
        k.ok_stdin(&["apply", "-f", "-"], &version_pods(minor));
        logs_and_errors(k, minor);
        exec_attach_cp(k, minor, scratch.path());
        port_forward(k, minor);
        debug(k, minor);
    }
    drop(teardown);
}
