//! Importing image archives into containerd: `ctr images import` into the `k8s.io`
//! namespace (the one the CRI plugin, and so the kubelet, sees), unpacked for containerd's
//! default snapshotter so a container can start from the image at once.
//!
//! ctr accepts an OCI image layout or a docker archive (`docker save`) as a plain tar; it
//! reads no compressed archives. Before running it, [`import`] checks what it can say more
//! clearly than ctr would: that the file exists and is such a tar, and that containerd's
//! socket is there (ctr would wait ten seconds for a socket that never comes).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{chain, Error, Result};

/// The containerd namespace of Kubernetes' images and containers.
const NAMESPACE: &str = "k8s.io";

/// Imports the archive at `archive_path` into the containerd at the socket `ctr_address`
/// and returns the references of the images it holds, as containerd names them.
pub fn import(ctr_address: &Path, archive_path: &Path) -> Result<Vec<String>> {
    check_archive(archive_path)?;
    match std::fs::metadata(ctr_address) {
        Ok(meta) if meta.file_type().is_socket() => {}
        _ => {
            return Err(Error::Socket {
                path: ctr_address.to_owned(),
            })
        }
    }
    let output = Command::new("ctr")
        .arg("--address")
        .arg(ctr_address)
        .args(["--namespace", NAMESPACE, "--connect-timeout", "10s"])
        .args(["images", "import"])
        .arg(archive_path)
        // Unpacking is ctr's default; this keeps it for the default snapshotter.
        .env_remove("CONTAINERD_SNAPSHOTTER")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::CtrMissing,
            _ => Error::Spawn {
                program: "ctr".to_owned(),
                source,
            },
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: Vec<&str> = stderr
            .lines()
            .map(|l| l.trim().trim_start_matches("ctr: "))
            .filter(|l| !l.is_empty())
            .collect();
        return Err(Error::Ctr {
            path: archive_path.to_owned(),
            status: output.status.to_string(),
            stderr: stderr.join("; "),
        });
    }
    Ok(imported(&String::from_utf8_lossy(&output.stdout)))
}

/// Imports every `*.tar` in `dir` (sorted by name), as the agent does with
/// `<data-dir>/agent/images/` at start. An archive that cannot be imported is logged and
/// skipped; a missing directory imports nothing. Fails only when nothing could be imported
/// at all: the directory is unreadable, ctr is missing, or containerd is not there.
pub fn import_dir(ctr_address: &Path, dir: &Path) -> Result<Vec<String>> {
    let read_error = |source| Error::Read {
        path: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_error(e)),
    };
    let mut archives = Vec::new();
    for entry in entries {
        let path = entry.map_err(read_error)?.path();
        if path.extension().is_some_and(|e| e == "tar") && path.is_file() {
            archives.push(path);
        }
    }
    archives.sort();
    let mut images = Vec::new();
    for path in archives {
        match import(ctr_address, &path) {
            Ok(names) => {
                for name in &names {
                    tracing::info!(image = %name, archive = %path.display(), "imported image");
                }
                images.extend(names);
            }
            Err(e @ (Error::CtrMissing | Error::Socket { .. } | Error::Spawn { .. })) => {
                return Err(e)
            }
            Err(e) => {
                tracing::warn!(archive = %path.display(), error = %chain(&e), "skipping image archive");
            }
        }
    }
    Ok(images)
}

/// The images ctr reports, from its `unpacking <name> (sha256:…)...done` lines.
fn imported(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("unpacking "))
        .filter_map(|rest| rest.rfind(" (sha256:").map(|end| rest[..end].to_owned()))
        .collect()
}

/// Fails unless `path` is a plain tar holding `index.json` (OCI) or `manifest.json`
/// (docker). Reads only the tar headers.
fn check_archive(path: &Path) -> Result<()> {
    let not_archive = |reason: &str| Error::NotAnArchive {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ArchiveMissing {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().map_err(read_error)?;
    if meta.is_dir() {
        return Err(not_archive("it is a directory"));
    }
    let mut magic = [0; 6];
    let n = file.read(&mut magic).map_err(read_error)?;
    let magic = &magic[..n];
    if magic.starts_with(&[0x1f, 0x8b]) {
        return Err(not_archive(
            "it is gzip-compressed and ctr imports plain tar only (gunzip it first)",
        ));
    }
    if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || magic.starts_with(b"\xfd7zXZ") {
        return Err(not_archive(
            "it is compressed and ctr imports plain tar only (decompress it first)",
        ));
    }
    let file = File::open(path).map_err(read_error)?;
    let mut tar = tar::Archive::new(file);
    let entries = tar
        .entries_with_seek()
        .map_err(|e| not_archive(&format!("not a tar file ({e})")))?;
    for entry in entries {
        let entry = entry.map_err(|e| not_archive(&format!("not a tar file ({e})")))?;
        let name = entry.path_bytes();
        let name = name.strip_prefix(b"./").unwrap_or(&name);
        if name == b"index.json" || name == b"manifest.json" {
            return Ok(());
        }
    }
    Err(not_archive(
        "a tar without index.json (OCI layout) or manifest.json (docker archive)",
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::Archive;
    use super::*;

    #[test]
    fn ctr_output_names_the_images() {
        let out = "unpacking localhost/tugboat/pause:1 (sha256:84bc)...done\n\
                   unpacking docker.io/library/busybox:latest (sha256:e809)...done\n";
        assert_eq!(
            imported(out),
            [
                "localhost/tugboat/pause:1",
                "docker.io/library/busybox:latest"
            ]
        );
        assert!(imported("").is_empty());
    }

    #[test]
    fn archives_are_checked_before_ctr_runs() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("containerd.sock");
        let missing = dir.path().join("missing.tar");
        let err = import(&sock, &missing).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("image archive {} does not exist", missing.display())
        );

        let text = dir.path().join("text.tar");
        std::fs::write(&text, vec![b'x'; 2048]).unwrap();
        let err = import(&sock, &text).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not an image archive: not a tar file"),
            "{err}"
        );

        let gz = dir.path().join("image.tar.gz");
        std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0]).unwrap();
        let err = import(&sock, &gz).unwrap_err();
        assert!(err.to_string().contains("gzip-compressed"), "{err}");

        let err = import(&sock, dir.path()).unwrap_err();
        assert!(err.to_string().ends_with("it is a directory"), "{err}");

        let plain = dir.path().join("plain.tar");
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        tar.append_data(&mut header, "hello.txt", &b"x"[..])
            .unwrap();
        std::fs::write(&plain, tar.into_inner().unwrap()).unwrap();
        let err = import(&sock, &plain).unwrap_err();
        assert!(err.to_string().contains("without index.json"), "{err}");

        // A good archive gets as far as the socket.
        let good = dir.path().join("good.tar");
        Archive::new("r/x:1")
            .file("/a", 0o644, "a")
            .save(&good)
            .unwrap();
        let err = import(&sock, &good).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no containerd socket at {} (is containerd running?)",
                sock.display()
            )
        );
    }

    #[test]
    fn import_dir_without_containerd() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("containerd.sock");
        // No directory: nothing to import.
        assert!(import_dir(&sock, &dir.path().join("images"))
            .unwrap()
            .is_empty());
        // Bad archives are skipped; no containerd fails the whole import.
        std::fs::write(dir.path().join("bad.tar"), "not a tar").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        assert!(import_dir(&sock, dir.path()).unwrap().is_empty());
        Archive::new("r/x:1")
            .file("/a", 0o644, "a")
            .save(&dir.path().join("good.tar"))
            .unwrap();
        let err = import_dir(&sock, dir.path()).unwrap_err();
        assert!(matches!(err, Error::Socket { .. }), "{err}");
    }
}
