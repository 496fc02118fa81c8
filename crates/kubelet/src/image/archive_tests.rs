//! Tests of [`super::Archive`] through its public API: what it writes is read back with
//! the `tar` crate (`readback`) and checked from `index.json` down to the layer's entries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::json;

use super::{oci_arch, readback, Archive, Error};

#[test]
fn reference_and_tag() {
    let a = Archive::new("localhost/tugboat/pause:1");
    assert_eq!((a.reference(), a.tag()), ("localhost/tugboat/pause:1", "1"));
    let a = Archive::new("localhost:5000/app");
    assert_eq!(
        (a.reference(), a.tag()),
        ("localhost:5000/app:latest", "latest")
    );
    let a = Archive::new("busybox");
    assert_eq!((a.reference(), a.tag()), ("busybox:latest", "latest"));
}

#[test]
fn digests_sizes_and_entries_read_back() {
    let host = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(host.path(), b"from the host").unwrap();
    let mut a = Archive::new("example.com/team/app:v2");
    a.dir("/tmp", 0o1777)
        .file("/etc/app/conf", 0o600, "key=value\n")
        .symlink("/bin/sh", "busybox")
        .entrypoint(["/app"])
        .cmd(["--serve", "80"])
        .env("PATH", "/bin")
        .env("MODE", "test")
        .working_dir("/srv")
        .user("65534:65534")
        .expose("80")
        .expose("53/udp");
    a.copy_file("usr/lib/data", 0o644, host.path()).unwrap();
    let mut bytes = Vec::new();
    a.write(&mut bytes).unwrap();

    let image = readback::read(&bytes);
    let annotations = &image.index["manifests"][0]["annotations"];
    assert_eq!(
        annotations["io.containerd.image.name"],
        "example.com/team/app:v2"
    );
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "v2");
    assert_eq!(image.index["manifests"][0]["platform"]["os"], "linux");
    let c = &image.config["config"];
    assert_eq!(c["Entrypoint"], json!(["/app"]));
    assert_eq!(c["Cmd"], json!(["--serve", "80"]));
    assert_eq!(c["Env"], json!(["PATH=/bin", "MODE=test"]));
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "65534:65534");
    assert_eq!(c["ExposedPorts"], json!({"53/udp": {}, "80/tcp": {}}));
    assert_eq!(image.config["architecture"], oci_arch());

    let names: Vec<&str> = image.layer.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "tmp/",
            "etc/",
            "etc/app/",
            "etc/app/conf",
            "bin/",
            "bin/sh",
            "usr/",
            "usr/lib/",
            "usr/lib/data"
        ]
    );
    let tmp = image.entry("tmp/");
    assert_eq!((tmp.kind, tmp.mode), (tar::EntryType::Directory, 0o1777));
    let conf = image.entry("etc/app/conf");
    assert_eq!(
        (conf.mode, conf.data.as_slice()),
        (0o600, &b"key=value\n"[..])
    );
    let sh = image.entry("bin/sh");
    assert_eq!(sh.kind, tar::EntryType::Symlink);
    assert_eq!(sh.link.as_deref(), Some("busybox"));
    assert_eq!(image.entry("usr/lib/data").data, b"from the host");
}

#[test]
fn output_is_reproducible() {
    let make = || {
        let mut a = Archive::new("r/x:1");
        a.file("/a", 0o644, "a").cmd(["sh"]);
        let mut bytes = Vec::new();
        a.write(&mut bytes).unwrap();
        bytes
    };
    assert_eq!(make(), make());
}

#[test]
fn bad_paths_are_errors() {
    for path in ["/", "", "a/../b", "./."] {
        let mut a = Archive::new("r/x:1");
        a.file(path, 0o644, "x");
        let err = a.write(Vec::new()).unwrap_err();
        assert!(matches!(err, Error::Path { .. }), "{path:?}: {err}");
    }
    let mut a = Archive::new("r/x:1");
    a.symlink("/a", "");
    assert!(matches!(a.write(Vec::new()), Err(Error::Path { .. })));
}

#[test]
fn missing_host_file_names_it() {
    let err = Archive::new("r/x:1")
        .copy_file("/a", 0o644, Path::new("/nonexistent/file"))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.to_string(), "reading /nonexistent/file");
}

#[test]
fn save_writes_the_file_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.tar");
    let mut a = Archive::new("r/x:1");
    a.file("/a", 0o644, "a");
    a.save(&path).unwrap();
    readback::read(&std::fs::read(&path).unwrap());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no partial file left behind");
    let err = a.save(&dir.path().join("no/such/dir/x.tar")).unwrap_err();
    assert!(err.to_string().starts_with("writing "), "{err}");
}
