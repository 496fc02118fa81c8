//! Helpers for tests that run the real `tug` binary: start a server on a free loopback port
//! in a temporary data dir, wait (with a deadline) until it listens, and stop it on drop.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `tug` binary under test.
pub fn tug() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tug"))
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Flags for tests of the API server's own rules: controllers would act on what those tests
/// create (finalize namespaces, delete orphans, write Deployment status), so they run without
/// them, as kube-apiserver alone — and without ServiceAccount admission, which would wait
/// for the `default` accounts no controller makes (as upstream's integration tests run).
pub const APISERVER_ONLY: &[&str] = &[
    "--disable-controller-manager",
    "--disable-scheduler",
    "--disable-admission-plugins=ServiceAccount",
];

/// A running `tug server`, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Log lines the server has written so far (stderr).
    pub lines: mpsc::Receiver<String>,
    /// The extra arguments it was started with.
    extra: Vec<String>,
    /// Whether it runs a kubelet (its containers are stopped on drop).
    agent: bool,
}

/// Spawns `tug server` on `port` with `dir` as data dir; returns it and its log lines.
fn spawn(dir: &Path, port: u16, extra: &[String]) -> (Child, mpsc::Receiver<String>) {
    let mut child = tug()
        .args([
            "server",
            "--bind-address",
            "127.0.0.1",
            "--https-listen-port",
        ])
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, lines)
}

impl Server {
    /// Starts `tug server` without its kubelet (`--disable-agent`; hollow nodes still run) on
    /// a free port with `extra` arguments and waits until it listens.
    pub fn start(extra: &[&str]) -> Server {
        let mut args = vec!["--disable-agent"];
        args.extend_from_slice(extra);
        Self::start_with_agent(&args)
    }

    /// Starts `tug server`, kubelet included unless `extra` says otherwise.
    pub fn start_with_agent(extra: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), extra)
    }

    /// Starts `tug server` with its kubelet, as a one-node cluster of its own: a unique node
    /// name, kubelet port and cluster CIDR (tests run side by side), and the busybox test
    /// image placed in `<data-dir>/agent/images/` for the kubelet to import. Call only when
    /// [`can_run_containers`] says so.
    pub fn start_node(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("agent/images");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::copy(busybox_archive(), images.join("busybox.tar")).unwrap();
        let port = free_port();
        let (node, kubelet_port) = (format!("node-{port}"), free_port().to_string());
        // 10.100.0.0/16 … 10.227.0.0/16: distinct per server, away from common LAN ranges.
        let cidr = format!("10.{}.0.0/16", 100 + port % 128);
        let mut args: Vec<&str> = Vec::new();
        for (flag, value) in [
            ("--node-name", node.as_str()),
            ("--kubelet-port", kubelet_port.as_str()),
            ("--cluster-cidr", cidr.as_str()),
            ("--node-ip", "127.0.0.1"),
        ] {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend_from_slice(extra);
        Self::start_in(dir, &args)
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Server {
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let agent = !extra.iter().any(|a| a == "--disable-agent");
        let (child, lines) = spawn(dir.path(), port, &extra);
        let server = Server {
            child,
            port,
            dir,
            lines,
            extra,
            agent,
        };
        server.wait_for_log("API server listening");
        server
    }

    /// Stops the server and starts it again on the same data dir, port and arguments.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, lines) = spawn(self.dir.path(), self.port, &self.extra);
        self.child = child;
        self.lines = lines;
        self.wait_for_log("API server listening");
    }

    /// Waits (at most 60 s) for a log line containing `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("server never logged {needle:?}"),
            }
        }
    }

    /// The admin kubeconfig the server wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.agent {
            killall(self.dir.path());
        }
    }
}

/// `tug killall` on a data dir: stopping tug leaves its containers running (as k3s does);
/// this stops them, their containerd and the node's bridge.
pub fn killall(data_dir: &Path) {
    let _ = tug()
        .args(["killall", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether this machine can run real containers for the tests (root, containerd, runc and
/// the CNI plugins installed); prints why not. CI installs them and runs as root.
pub fn can_run_containers() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let found = |p: &str| Path::new(p).exists();
    let missing: Vec<&str> = [
        ("root", root),
        ("containerd", found("/usr/bin/containerd")),
        ("runc", found("/usr/sbin/runc") || found("/usr/bin/runc")),
        (
            "CNI plugins",
            found("/usr/lib/cni/bridge") || found("/opt/cni/bin/bridge"),
        ),
        (
            "busybox-static",
            found("/bin/busybox") || found("/usr/bin/busybox"),
        ),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(what, _)| what)
    .collect();
    if !missing.is_empty() {
        eprintln!("skipped: real containers need {missing:?} (scripts/install-deps.sh)");
    }
    missing.is_empty()
}

/// The busybox image archive (`tug.local/busybox:1`), built once per test binary by
/// `tug image build-busybox`.
pub fn busybox_archive() -> &'static Path {
    static ARCHIVE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tug-test-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("busybox.tar");
        let (ok, out, err) = run(tug()
            .args(["image", "build-busybox", "--name", BUSYBOX, "-o"])
            .arg(&path));
        assert!(ok, "tug image build-busybox failed: {err}{out}");
        path
    })
}

/// The test workload image: Debian's static busybox, every applet linked.
pub const BUSYBOX: &str = "tug.local/busybox:1";

/// A child process (`tug agent`, `tug scheduler`, …) killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real kubectl of the given minor version (1.27 … 1.33), from the Google Cloud SDK.
pub fn kubectl(minor: u32) -> Command {
    let path = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"));
    assert!(
        path.exists(),
        "{} is missing: the tests drive real kubectl (Debian package `kubectl` from the Google Cloud SDK)",
        path.display()
    );
    let mut cmd = Command::new(path);
    // Keep kubectl's cache and config out of the user's home.
    cmd.env(
        "KUBECACHEDIR",
        std::env::temp_dir().join("tug-test-kubecache"),
    );
    cmd.env_remove("KUBECONFIG");
    cmd
}

/// `kubectl get …` with a jsonpath output, trimmed (empty when kubectl fails).
pub fn jsonpath(k: &Kubectl, args: &[&str], path: &str) -> String {
    let template = format!("jsonpath={path}");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-o", template.as_str()]);
    k.run(&all).1.trim().to_owned()
}

/// Runs a command, returning (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// kubectl of one minor version pointed at a server, with a discovery cache of its own.
pub struct Kubectl {
    minor: u32,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
}

impl Kubectl {
    /// kubectl 1.`minor` for `server`.
    pub fn new(server: &Server, minor: u32) -> Kubectl {
        Kubectl {
            minor,
            kubeconfig: server.kubeconfig(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// The command with the kubeconfig and cache set.
    pub fn cmd(&self) -> Command {
        let mut cmd = kubectl(self.minor);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.cache.path());
        cmd
    }

    /// Runs kubectl with `args`: (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        run(self.cmd().args(args))
    }

    /// Runs kubectl with `args`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "kubectl 1.{} {args:?} failed: {err}\n{out}", self.minor);
        out
    }

    /// Runs kubectl with `args`, asserting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(!ok, "kubectl 1.{} {args:?} should fail:\n{out}", self.minor);
        err
    }

    /// Runs kubectl with `args` and extra environment variables, asserting success; returns
    /// stdout.
    #[allow(dead_code)]
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let mut cmd = self.cmd();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (ok, out, err) = run(&mut cmd);
        assert!(ok, "kubectl 1.{} {args:?} failed: {err}\n{out}", self.minor);
        out
    }

    /// Runs kubectl with `args` and `input` on stdin, asserting success; returns stdout.
    pub fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        let (ok, out, err) = self.run_stdin(args, input);
        assert!(ok, "kubectl 1.{} {args:?} failed: {err}\n{out}", self.minor);
        out
    }

    /// Runs kubectl with `args` and `input` on stdin, asserting failure; returns stderr.
    pub fn fails_stdin(&self, args: &[&str], input: &str) -> String {
        let (ok, out, err) = self.run_stdin(args, input);
        assert!(!ok, "kubectl 1.{} {args:?} should fail:\n{out}", self.minor);
        err
    }

    /// Runs kubectl with `args` and `input` on stdin: (success, stdout, stderr).
    pub fn run_stdin(&self, args: &[&str], input: &str) -> (bool, String, String) {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// One HTTP exchange with the server as the admin, through curl: (status code, body).
pub fn curl(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&[u8]>,
) -> (u16, String) {
    use std::io::Write;
    let tls = server.data_dir().join("server/tls");
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-m",
        "60",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(tls.join("ca.crt"))
    .arg("--cert")
    .arg(tls.join("admin.crt"))
    .arg("--key")
    .arg(tls.join("admin.key"));
    for h in headers {
        cmd.args(["-H", h]);
    }
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(format!("https://127.0.0.1:{}{path}", server.port));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(b) = body {
        stdin.write_all(b).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.parse().unwrap_or(0), body.to_owned())
}

/// A kube-rs client for `server`, from its admin kubeconfig.
#[allow(dead_code)]
pub async fn kube_client(server: &Server) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// Polls `check` every 50 ms until it holds or `secs` pass; panics with `what` on timeout.
pub fn wait_until(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
