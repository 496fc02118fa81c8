//! [`Archive`]: an OCI image-layout tar of a one-layer image, as `ctr images import` (and
//! `docker load`, `podman load`) read it:
//!
//! ```text
//! oci-layout               {"imageLayoutVersion":"1.0.0"}
//! index.json               one manifest, annotated with the image's name and tag
//! blobs/sha256/<manifest>  config + layer descriptors
//! blobs/sha256/<config>    architecture, os, Entrypoint/Cmd/Env/…, the layer's diff id
//! blobs/sha256/<layer>     the root filesystem, an uncompressed tar
//! ```
//!
//! The output is reproducible: entries keep the order they were added in, every time stamp
//! is 0 and every owner root, so the same inputs give the same digests (and importing the
//! same image twice changes nothing).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use ring::digest::{digest, SHA256};
use serde_json::{json, Map, Value};

use super::{oci_arch, Error, Result};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image to be written as an OCI image-layout tar: the files of its one layer and the
/// fields of its config. Paths are absolute in the image (a leading `/` is optional);
/// parent directories nobody added are written as `0755` directories.
#[derive(Debug, Clone)]
pub struct Archive {
    reference: String,
    tag_at: usize,
    entries: Vec<Entry>,
    config: Config,
}

/// One layer entry, in the order added.
#[derive(Debug, Clone)]
enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        contents: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// The image config's `config` object (the runtime defaults of a container).
#[derive(Debug, Clone, Default)]
struct Config {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    working_dir: Option<String>,
    user: Option<String>,
    exposed_ports: BTreeSet<String>,
}

/// A content-addressed blob.
struct Blob {
    digest: String,
    data: Vec<u8>,
}

impl Blob {
    fn new(data: Vec<u8>) -> Blob {
        let sum = digest(&SHA256, &data);
        let mut digest = String::with_capacity(7 + 64);
        digest.push_str("sha256:");
        for b in sum.as_ref() {
            digest.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            digest.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        Blob { digest, data }
    }

    fn descriptor(&self, media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.data.len()})
    }

    fn path(&self) -> String {
        format!("blobs/sha256/{}", &self.digest["sha256:".len()..])
    }
}

impl Archive {
    /// An empty image named `reference` (`registry/repository[:tag]`; no tag means
    /// `latest`), as containerd will list it.
    pub fn new(reference: impl Into<String>) -> Archive {
        let mut reference = reference.into();
        let name_start = reference.rfind('/').map_or(0, |i| i + 1);
        let tag_at = match reference[name_start..].find(':') {
            Some(i) => name_start + i + 1,
            None => {
                reference.push_str(":latest");
                reference.len() - "latest".len()
            }
        };
        Archive {
            reference,
            tag_at,
            entries: Vec::new(),
            config: Config::default(),
        }
    }

    /// The full reference, tag included.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The tag (`org.opencontainers.image.ref.name`).
    pub fn tag(&self) -> &str {
        &self.reference[self.tag_at..]
    }

    /// Adds a directory with permission bits `mode` (e.g. `0o1777`).
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.entries.push(Entry::Dir {
            path: path.to_owned(),
            mode,
        });
        self
    }

    /// Adds a regular file holding `contents`.
    pub fn file(&mut self, path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> &mut Self {
        self.entries.push(Entry::File {
            path: path.to_owned(),
            mode,
            contents: contents.into(),
        });
        self
    }

    /// Adds a regular file with the contents of the host file `host` (read now).
    pub fn copy_file(&mut self, path: &str, mode: u32, host: &Path) -> Result<&mut Self> {
        let contents = std::fs::read(host).map_err(|source| Error::Read {
            path: host.to_owned(),
            source,
        })?;
        Ok(self.file(path, mode, contents))
    }

    /// Adds a symbolic link at `path` pointing to `target` (relative or absolute).
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entries.push(Entry::Symlink {
            path: path.to_owned(),
            target: target.to_owned(),
        });
        self
    }

    /// Sets the config's `Entrypoint`.
    pub fn entrypoint<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, args: I) -> &mut Self {
        self.config.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the config's `Cmd` (the arguments, or the command when there is no entrypoint).
    pub fn cmd<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, args: I) -> &mut Self {
        self.config.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// Adds `name=value` to the config's `Env`.
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.config.env.push(format!("{name}={value}"));
        self
    }

    /// Sets the config's `WorkingDir`.
    pub fn working_dir(&mut self, dir: &str) -> &mut Self {
        self.config.working_dir = Some(dir.to_owned());
        self
    }

    /// Sets the config's `User` (`name`, `uid`, `uid:gid`, …).
    pub fn user(&mut self, user: &str) -> &mut Self {
        self.config.user = Some(user.to_owned());
        self
    }

    /// Adds a port to the config's `ExposedPorts`: `80/tcp`, `53/udp`, or `80` (TCP).
    pub fn expose(&mut self, port: &str) -> &mut Self {
        let port = if port.contains('/') {
            port.to_owned()
        } else {
            format!("{port}/tcp")
        };
        self.config.exposed_ports.insert(port);
        self
    }

    /// Writes the archive to `w`.
    pub fn write(&self, w: impl Write) -> Result<()> {
        let layer = Blob::new(self.layer()?);
        let config = Blob::new(self.config_json(&layer.digest));
        let manifest = Blob::new(json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": config.descriptor(CONFIG_TYPE),
            "layers": [layer.descriptor(LAYER_TYPE)],
        })));
        let mut descriptor = manifest.descriptor(MANIFEST_TYPE);
        descriptor["platform"] = json!({"architecture": oci_arch(), "os": "linux"});
        descriptor["annotations"] = json!({
            "io.containerd.image.name": self.reference,
            "org.opencontainers.image.ref.name": self.tag(),
        });
        let index = json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": INDEX_TYPE,
            "manifests": [descriptor],
        }));

        let io_error = |source| Error::Write {
            target: format!("the image archive of {}", self.reference),
            source,
        };
        let mut tar = tar::Builder::new(w);
        add_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_error)?;
        add_file(&mut tar, "index.json", &index).map_err(io_error)?;
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut header = header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut header, dir, std::io::empty())
                .map_err(io_error)?;
        }
        for blob in [&manifest, &config, &layer] {
            add_file(&mut tar, &blob.path(), &blob.data).map_err(io_error)?;
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(io_error)
    }

    /// Writes the archive to the file `path` (through a temporary file beside it, renamed
    /// into place, so a reader never sees half an archive).
    pub fn save(&self, path: &Path) -> Result<()> {
        let io_error = |source| Error::Write {
            target: path.display().to_string(),
            source,
        };
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".partial");
        let partial = path.with_file_name(name);
        let file = std::fs::File::create(&partial).map_err(io_error)?;
        let written = self
            .write(std::io::BufWriter::new(&file))
            .and_then(|()| file.sync_all().map_err(io_error))
            .and_then(|()| std::fs::rename(&partial, path).map_err(io_error));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }

    /// The layer: every entry as a tar, parents first.
    fn layer(&self) -> Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut dirs = BTreeSet::new();
        let io_error = |source| Error::Write {
            target: format!("the layer of {}", self.reference),
            source,
        };
        for entry in &self.entries {
            let (Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. }) =
                entry;
            let path = self.normalize(path)?;
            // Parents nobody added come first, as 0755 directories.
            for (i, _) in path.match_indices('/') {
                if dirs.insert(path[..i].to_owned()) {
                    let mut header = header(tar::EntryType::Directory, 0o755, 0);
                    tar.append_data(&mut header, format!("{}/", &path[..i]), std::io::empty())
                        .map_err(io_error)?;
                }
            }
            match entry {
                Entry::Dir { mode, .. } => {
                    dirs.insert(path.clone());
                    let mut header = header(tar::EntryType::Directory, *mode, 0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())
                        .map_err(io_error)?;
                }
                Entry::File { mode, contents, .. } => {
                    let mut header = header(tar::EntryType::Regular, *mode, contents.len());
                    tar.append_data(&mut header, &path, contents.as_slice())
                        .map_err(io_error)?;
                }
                Entry::Symlink { target, .. } => {
                    if target.is_empty() || target.contains('\0') {
                        return Err(self.bad_path(&path, "a symlink needs a target"));
                    }
                    let mut header = header(tar::EntryType::Symlink, 0o777, 0);
                    tar.append_link(&mut header, &path, target)
                        .map_err(io_error)?;
                }
            }
        }
        tar.into_inner().map_err(io_error)
    }

    /// `path` as a layer entry name: relative, no `.` or empty components, no `..`.
    fn normalize(&self, path: &str) -> Result<String> {
        if path.contains('\0') {
            return Err(self.bad_path(path, "it contains a NUL byte"));
        }
        let mut parts = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(self.bad_path(path, "`..` is not allowed")),
                part => parts.push(part),
            }
        }
        if parts.is_empty() {
            return Err(self.bad_path(path, "it names the root"));
        }
        Ok(parts.join("/"))
    }

    fn bad_path(&self, path: &str, reason: &'static str) -> Error {
        Error::Path {
            reference: self.reference.clone(),
            path: path.to_owned(),
            reason,
        }
    }

    /// The image config blob.
    fn config_json(&self, diff_id: &str) -> Vec<u8> {
        let c = &self.config;
        let mut config = Map::new();
        if let Some(entrypoint) = &c.entrypoint {
            config.insert("Entrypoint".into(), json!(entrypoint));
        }
        if let Some(cmd) = &c.cmd {
            config.insert("Cmd".into(), json!(cmd));
        }
        if !c.env.is_empty() {
            config.insert("Env".into(), json!(c.env));
        }
        if let Some(dir) = &c.working_dir {
            config.insert("WorkingDir".into(), json!(dir));
        }
        if let Some(user) = &c.user {
            config.insert("User".into(), json!(user));
        }
        if !c.exposed_ports.is_empty() {
            let ports: Map<String, Value> = c
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            config.insert("ExposedPorts".into(), Value::Object(ports));
        }
        json_bytes(&json!({
            "architecture": oci_arch(),
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "tugboat"}],
        }))
    }
}

/// A header for an entry owned by root with time stamp 0.
fn header(kind: tar::EntryType, mode: u32, size: usize) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size as u64);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// Adds a regular `0644` file to the outer archive.
fn add_file<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = header(tar::EntryType::Regular, 0o644, data.len());
    tar.append_data(&mut header, name, data)
}

fn json_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` to a Vec cannot fail (its map keys are strings).
    serde_json::to_vec(value).unwrap_or_default()
}
