//! The images Tugboat makes itself, so that nothing it runs comes from a registry:
//!
//! - the pod sandbox ("pause") image, [`PAUSE_IMAGE`]: one static binary, `/pause`,
//!   compiled from `pause/pause.c` by the crate's build script and embedded here;
//! - a busybox image from the host's static busybox (Debian's `busybox-static`): the
//!   workload image of tests and benchmarks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Archive, Error, Result};

/// The sandbox image's reference; the kubelet tells containerd to use it.
pub const PAUSE_IMAGE: &str = "localhost/tugboat/pause:1";

/// The reference `tug image build-busybox` gives the busybox image unless told otherwise.
pub const BUSYBOX_IMAGE: &str = "localhost/tugboat/busybox:1";

/// Where a static busybox is looked for, in order.
pub const BUSYBOX_PATHS: [&str; 2] = ["/usr/bin/busybox", "/bin/busybox"];

/// The `pause` program (`pause/pause.c`), built by `build.rs`.
const PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// The pod sandbox image: `/pause`, run as upstream's pause image runs (user 65535).
pub fn pause_archive() -> Archive {
    let mut archive = Archive::new(PAUSE_IMAGE);
    archive
        .file("/pause", 0o755, PAUSE)
        .entrypoint(["/pause"])
        .user("65535:65535");
    archive
}

/// The first busybox of [`BUSYBOX_PATHS`] that exists.
pub fn find_busybox() -> Option<PathBuf> {
    BUSYBOX_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A busybox image named `reference`: `/bin/busybox` (copied from `busybox`, which must be
/// statically linked) with a symlink in `/bin` for each applet it lists, the usual top-level
/// directories, `/var/www` (for `httpd`), `/etc/passwd` and `/etc/group` with root and
/// nobody, `PATH=/bin` and `sh` as the command.
pub fn busybox_archive(reference: &str, busybox: &Path) -> Result<Archive> {
    let binary = std::fs::read(busybox).map_err(|source| Error::Read {
        path: busybox.to_owned(),
        source,
    })?;
    let bad = |reason: String| Error::Busybox {
        path: busybox.to_owned(),
        reason,
    };
    if has_interpreter(&binary) {
        return Err(bad(
            "it is dynamically linked; the image needs a static one (Debian: busybox-static)"
                .to_owned(),
        ));
    }
    let out = Command::new(busybox)
        .arg("--list")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| bad(format!("running `--list`: {e}")))?;
    if !out.status.success() {
        return Err(bad(format!(
            "`--list` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let list = String::from_utf8_lossy(&out.stdout);
    let applets: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|a| {
            !a.is_empty()
                && *a != "busybox"
                && !a.contains(|c: char| c == '/' || c.is_whitespace())
                && *a != "."
                && *a != ".."
        })
        .collect();
    if applets.is_empty() {
        return Err(bad("`--list` printed no applets".to_owned()));
    }

    let mut archive = Archive::new(reference);
    archive
        .dir("/bin", 0o755)
        .dir("/dev", 0o755)
        .dir("/etc", 0o755)
        .dir("/proc", 0o555)
        .dir("/root", 0o700)
        .dir("/sys", 0o555)
        .dir("/tmp", 0o1777)
        .dir("/var", 0o755)
        .dir("/var/www", 0o755)
        .file(
            "/etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .file("/etc/group", 0o644, "root:x:0:\nnobody:x:65534:\n")
        .file("/bin/busybox", 0o755, binary);
    for applet in applets {
        archive.symlink(&format!("/bin/{applet}"), "busybox");
    }
    archive.env("PATH", "/bin").cmd(["sh"]);
    Ok(archive)
}

/// Whether `elf` is a 64-bit little-endian ELF program with a `PT_INTERP` header, that is,
/// dynamically linked. Anything else (static, 32-bit, not ELF) says no.
pub(crate) fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        let b = elf.get(at..at + 8)?;
        let mut bytes = [0; 8];
        bytes.copy_from_slice(b);
        Some(u64::from_le_bytes(bytes))
    };
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(count))
        .any(|i| phoff.checked_add(i * usize::from(size)).and_then(u32_at) == Some(PT_INTERP))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::super::readback;
    use super::*;

    #[test]
    fn pause_image_holds_a_static_pause() {
        assert!(PAUSE.starts_with(b"\x7fELF"), "pause is an ELF program");
        assert!(!has_interpreter(PAUSE), "pause is statically linked");
        assert!(
            PAUSE.len() < 16 * 1024,
            "pause is tiny: {} bytes",
            PAUSE.len()
        );
        let mut bytes = Vec::new();
        pause_archive().write(&mut bytes).unwrap();
        let image = readback::read(&bytes);
        assert_eq!(
            image.index["manifests"][0]["annotations"]["io.containerd.image.name"],
            PAUSE_IMAGE
        );
        assert_eq!(image.config["config"]["Entrypoint"], json!(["/pause"]));
        let pause = image.entry("pause");
        assert_eq!((pause.mode, pause.data.as_slice()), (0o755, PAUSE));
        assert_eq!(image.layer.len(), 1);
    }

    #[test]
    fn dynamic_programs_are_told_apart() {
        // The test binary itself is dynamically linked (glibc targets link dynamically).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if cfg!(target_env = "gnu") {
            assert!(has_interpreter(&me));
        }
        assert!(!has_interpreter(b"#!/bin/sh\n"));
        assert!(!has_interpreter(b"\x7fELF\x02\x01"));
    }

    /// Held while a test writes and runs a script, so no other test's fork inherits the
    /// script's open file and makes its exec fail with "text file busy".
    static SCRIPTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// A stand-in busybox: a script that lists three applets.
    fn fake_busybox(dir: &Path) -> PathBuf {
        let path = dir.join("busybox");
        std::fs::write(
            &path,
            "#!/bin/sh\n[ \"$1\" = --list ] && printf 'sh\\nls\\nbusybox\\nhttpd\\n'\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn check_busybox_image(image: &readback::Image, binary: &[u8], applets: &[&str]) {
        let c = &image.config["config"];
        assert_eq!(c["Cmd"], json!(["sh"]));
        assert_eq!(c["Env"], json!(["PATH=/bin"]));
        let busybox = image.entry("bin/busybox");
        assert_eq!((busybox.mode, busybox.data.as_slice()), (0o755, binary));
        for applet in applets {
            let link = image.entry(&format!("bin/{applet}"));
            assert_eq!(link.kind, tar::EntryType::Symlink, "{applet}");
            assert_eq!(link.link.as_deref(), Some("busybox"), "{applet}");
        }
        assert_eq!(image.entry("tmp/").mode, 0o1777);
        for dir in ["etc/", "proc/", "sys/", "dev/", "root/", "var/www/"] {
            assert_eq!(image.entry(dir).kind, tar::EntryType::Directory, "{dir}");
        }
        let passwd = String::from_utf8_lossy(&image.entry("etc/passwd").data).into_owned();
        assert!(passwd.starts_with("root:x:0:0:") && passwd.contains("\nnobody:x:65534:"));
        let group = String::from_utf8_lossy(&image.entry("etc/group").data).into_owned();
        assert!(group.starts_with("root:x:0:") && group.contains("\nnobody:x:65534:"));
    }

    #[test]
    fn busybox_image_from_a_listed_binary() {
        let _scripts = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let busybox = fake_busybox(dir.path());
        let archive = busybox_archive("localhost/test/bb:2", &busybox).unwrap();
        let mut bytes = Vec::new();
        archive.write(&mut bytes).unwrap();
        let image = readback::read(&bytes);
        let script = std::fs::read(&busybox).unwrap();
        check_busybox_image(&image, &script, &["sh", "ls", "httpd"]);
        // `busybox` itself is the binary, not a link to itself.
        assert_eq!(image.entry("bin/busybox").kind, tar::EntryType::Regular);
        let links = image
            .layer
            .iter()
            .filter(|e| e.kind == tar::EntryType::Symlink)
            .count();
        assert_eq!(links, 3);
    }

    #[test]
    fn busybox_image_from_the_host_busybox() {
        let Some(busybox) = find_busybox() else {
            eprintln!("no busybox at {BUSYBOX_PATHS:?}; skipping");
            return;
        };
        let binary = std::fs::read(&busybox).unwrap();
        if has_interpreter(&binary) {
            eprintln!("{} is dynamically linked; skipping", busybox.display());
            return;
        }
        let archive = busybox_archive(BUSYBOX_IMAGE, &busybox).unwrap();
        let mut bytes = Vec::new();
        archive.write(&mut bytes).unwrap();
        let image = readback::read(&bytes);
        check_busybox_image(
            &image,
            &binary,
            &["sh", "ls", "echo", "sleep", "httpd", "wget"],
        );
    }

    #[test]
    fn bad_busyboxes_are_clear_errors() {
        let err = busybox_archive("r/x:1", Path::new("/nonexistent/busybox")).unwrap_err();
        assert_eq!(err.to_string(), "reading /nonexistent/busybox");

        let _scripts = SCRIPTS.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let silent = dir.path().join("silent");
        std::fs::write(&silent, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&silent, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = busybox_archive("r/x:1", &silent).unwrap_err();
        assert!(
            err.to_string().ends_with("`--list` printed no applets"),
            "{err}"
        );

        let dynamic = std::env::current_exe().unwrap();
        if cfg!(target_env = "gnu") {
            let err = busybox_archive("r/x:1", &dynamic).unwrap_err();
            assert!(err.to_string().contains("dynamically linked"), "{err}");
        }
    }
}
