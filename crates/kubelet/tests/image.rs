//! The images against a real containerd: a scratch containerd in a temporary directory
//! (its own root, state and socket; killed, with anything it runs, on drop) imports the
//! pause and busybox archives through `image::import`, lists them, runs busybox, and runs
//! pause until it is killed. Needs `containerd` and `ctr` on PATH and root; without them
//! the test says why and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tug_kubelet::image;

/// Why this machine cannot run the test, if it cannot.
fn unsupported() -> Option<String> {
    for program in ["containerd", "ctr"] {
        let found = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!("{program} is not on PATH"));
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Some("containerd needs root".to_owned());
    }
    None
}

/// A scratch containerd, killed on drop with the containers it runs.
struct Containerd {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Containerd {
    /// Starts containerd in a new temporary directory and waits (30 s at most) until it
    /// answers on its socket.
    fn start() -> Containerd {
        // Under /tmp: a unix socket path must stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("tug-ctd-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path().display();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\n\
                 root = \"{d}/root\"\n\
                 state = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
                 [debug]\n  address = \"\"\n\
                 [metrics]\n  address = \"\"\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut ctd = Containerd {
            child,
            socket: dir.path().join("containerd.sock"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = ctd.child.try_wait().unwrap() {
                panic!("containerd exited ({status}):\n{}", ctd.log());
            }
            if ctd.socket.exists() && ctd.ctr(&["version"]).status.success() {
                return ctd;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer within 30 s:\n{}",
                ctd.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Runs `ctr` against this containerd, in the `k8s.io` namespace.
    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io", "--connect-timeout", "5s"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs `ctr`, expecting success; returns its stdout.
    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The status of task `id` (`RUNNING`, `STOPPED`, …), if there is one.
    fn task_status(&self, id: &str) -> Option<String> {
        self.ctr_ok(&["tasks", "ls"]).lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.first() == Some(&id))
                .then(|| fields.last().copied().unwrap_or_default().to_owned())
        })
    }

    /// Waits (20 s at most) until task `id` has status `want`.
    fn wait_task(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.task_status(id);
            if status.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} is {status:?}, not {want}, after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers outlive containerd (their shims keep them), so stop them first.
        let tasks = self.ctr(&["tasks", "ls", "-q"]);
        for id in String::from_utf8_lossy(&tasks.stdout).split_whitespace() {
            let _ = self.ctr(&["tasks", "delete", "--force", id]);
        }
        let containers = self.ctr(&["containers", "ls", "-q"]);
        for id in String::from_utf8_lossy(&containers.stdout).split_whitespace() {
            let _ = self.ctr(&["containers", "delete", id]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn save(archive: &image::Archive, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    archive.save(&path).unwrap();
    path
}

#[test]
fn import_and_run_in_containerd() {
    if let Some(why) = unsupported() {
        eprintln!("skipping: {why}");
        return;
    }
    let Some(busybox) = image::find_busybox() else {
        eprintln!("skipping: no busybox at {:?}", image::BUSYBOX_PATHS);
        return;
    };
    let ctd = Containerd::start();
    let files = tempfile::tempdir().unwrap();
    let busybox_ref = "localhost/test/busybox:1";

    let pause = save(&image::pause_archive(), files.path(), "pause.tar");
    assert_eq!(
        image::import(&ctd.socket, &pause).unwrap(),
        [image::PAUSE_IMAGE]
    );
    let bb = image::busybox_archive(busybox_ref, &busybox).unwrap();
    save(&bb, files.path(), "busybox.tar");
    // The directory import finds both, skips the junk, and importing again is harmless.
    std::fs::write(files.path().join("junk.tar"), "not an archive").unwrap();
    let mut imported = image::import_dir(&ctd.socket, files.path()).unwrap();
    imported.sort();
    assert_eq!(imported, [busybox_ref, image::PAUSE_IMAGE]);

    let listed = ctd.ctr_ok(&["images", "ls", "-q"]);
    let listed: Vec<&str> = listed.lines().collect();
    for reference in [image::PAUSE_IMAGE, busybox_ref] {
        assert!(listed.contains(&reference), "{reference} in {listed:?}");
    }

    // pause stays up (checked again after busybox ran) and dies on SIGKILL.
    ctd.ctr_ok(&["run", "-d", image::PAUSE_IMAGE, "sandbox"]);
    ctd.wait_task("sandbox", "RUNNING");

    let out = ctd.ctr_ok(&["run", "--rm", busybox_ref, "bb", "sh", "-c", "echo ok"]);
    assert_eq!(out.trim(), "ok");
    // The image's user database, PATH and applets are there.
    let out = ctd.ctr_ok(&[
        "run",
        "--rm",
        busybox_ref,
        "bb2",
        "sh",
        "-c",
        "id -un nobody; ls /var/www && echo www",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["nobody", "www"]
    );

    assert_eq!(ctd.task_status("sandbox").as_deref(), Some("RUNNING"));
    ctd.ctr_ok(&["tasks", "kill", "--signal", "SIGKILL", "sandbox"]);
    ctd.wait_task("sandbox", "STOPPED");
    ctd.ctr_ok(&["tasks", "delete", "sandbox"]);
    ctd.ctr_ok(&["containers", "delete", "sandbox"]);

    // SIGTERM ends it too (it waits for that signal).
    ctd.ctr_ok(&["run", "-d", image::PAUSE_IMAGE, "sandbox2"]);
    ctd.wait_task("sandbox2", "RUNNING");
    ctd.ctr_ok(&["tasks", "kill", "--signal", "SIGTERM", "sandbox2"]);
    ctd.wait_task("sandbox2", "STOPPED");
}
