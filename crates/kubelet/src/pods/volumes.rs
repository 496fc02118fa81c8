//! A pod's volumes on the host, under `<pods-dir>/<uid>/volumes/<plugin>/<name>`: emptyDir
//! (a directory, or tmpfs for medium Memory), hostPath (with its type checks), configMap,
//! secret, downwardAPI and projected (files written atomically, as upstream's AtomicWriter:
//! a timestamped directory behind a `..data` symlink swapped in one rename, so a reader never
//! sees half an update; projected service account tokens come from [`super::tokens`]), and
//! persistentVolumeClaim bound to a hostPath or local volume.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Volume,
};
use tug_runtime::Store;

use super::env::{field_value, resource_value, Kind, Sources};
use super::fs_group;

/// Why a volume cannot be set up (the message of a `FailedMount` event).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source the pod needs is missing or wrong.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {reason}")]
    Setup {
        /// The volume.
        volume: String,
        /// Why.
        reason: String,
    },
    /// The host refused.
    #[error("volume \"{volume}\": {path}: {source}")]
    Io {
        /// The volume.
        volume: String,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a pod's volumes are read from.
pub struct Context<'a> {
    /// ConfigMaps and Secrets.
    pub sources: Sources<'a>,
    /// PersistentVolumeClaims.
    pub claims: &'a Store<PersistentVolumeClaim>,
    /// PersistentVolumes.
    pub volumes: &'a Store<PersistentVolume>,
    /// The node's IP (for the downward API).
    pub host_ip: &'a str,
    /// The pod's IPs.
    pub pod_ips: &'a [String],
    /// Service account tokens by (audience, lifetime) ([`super::tokens`]).
    pub tokens: &'a std::collections::HashMap<super::tokens::Wish, String>,
}

/// A volume ready on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostVolume {
    /// The directory (or file) to mount.
    pub path: PathBuf,
    /// Mounted read-only whatever the mount says (configMap, secret, downwardAPI, projected).
    pub read_only: bool,
}

/// The directory of a pod's state on the host.
pub fn pod_dir(pods_dir: &Path, uid: &str) -> PathBuf {
    pods_dir.join(uid)
}

fn plugin(v: &Volume) -> &'static str {
    if v.empty_dir.is_some() {
        "kubernetes.io~empty-dir"
    } else if v.config_map.is_some() {
        "kubernetes.io~configmap"
    } else if v.secret.is_some() {
        "kubernetes.io~secret"
    } else if v.downward_api.is_some() {
        "kubernetes.io~downward-api"
    } else if v.projected.is_some() {
        "kubernetes.io~projected"
    } else {
        "kubernetes.io~other"
    }
}

fn io(volume: &str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let (volume, path) = (volume.to_owned(), path.to_path_buf());
    move |source| Error::Io {
        volume,
        path,
        source,
    }
}

fn setup_err(volume: &str, reason: impl Into<String>) -> Error {
    Error::Setup {
        volume: volume.to_owned(),
        reason: reason.into(),
    }
}

/// Sets up (or refreshes) every volume of `pod`; returns them by name.
pub fn setup(
    pods_dir: &Path,
    pod: &Pod,
    ctx: &Context<'_>,
) -> Result<BTreeMap<String, HostVolume>, Error> {
    let uid = pod.metadata.uid.as_deref().unwrap_or("unknown");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let base = pod_dir(pods_dir, uid).join("volumes");
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let fs_group = psc
        .and_then(|c| c.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    let mut out = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let dir = base.join(plugin(v)).join(&v.name);
        let name = v.name.as_str();
        // Volumes of files the kubelet writes: mounted read-only.
        let files = if let Some(c) = &v.config_map {
            let src = KeyedSource {
                kind: Kind::ConfigMap,
                name: &c.name,
                items: c.items.as_deref(),
                optional: c.optional,
            };
            Some(keyed(name, ctx, ns, src, c.default_mode)?)
        } else if let Some(s) = &v.secret {
            let src = KeyedSource {
                kind: Kind::Secret,
                name: s.secret_name.as_deref().unwrap_or_default(),
                items: s.items.as_deref(),
                optional: s.optional,
            };
            Some(keyed(name, ctx, ns, src, s.default_mode)?)
        } else if let Some(d) = &v.downward_api {
            let items = d.items.as_deref().unwrap_or_default();
            Some(downward(name, pod, items, d.default_mode, ctx)?)
        } else if let Some(p) = &v.projected {
            Some(projected(name, pod, ns, p, ctx)?)
        } else {
            None
        };
        let hv = if let Some(mut files) = files {
            if fs_group.is_some() {
                for (_, mode) in files.values_mut() {
                    *mode = fs_group::mode(*mode, false, true);
                }
            }
            let changed = write_atomic(&dir, &files).map_err(io(name, &dir))?;
            if let (Some(gid), true) = (fs_group, changed) {
                fs_group::apply(&dir, gid, true, false).map_err(io(name, &dir))?;
            }
            HostVolume {
                path: dir,
                read_only: true,
            }
        } else if let Some(e) = &v.empty_dir {
            let fresh = !dir.exists();
            std::fs::create_dir_all(&dir).map_err(io(name, &dir))?;
            if e.medium.as_deref() == Some("Memory") {
                mount_tmpfs(&dir, e.size_limit.as_ref().map(|q| q.0.as_str()))
                    .map_err(io(name, &dir))?;
            }
            let root_mode = fs_group.map_or(0o777, |_| fs_group::mode(0o777, true, false));
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(root_mode));
            if let (Some(gid), true) = (fs_group, fresh) {
                fs_group::apply(&dir, gid, false, false).map_err(io(name, &dir))?;
            }
            HostVolume {
                path: dir,
                read_only: false,
            }
        } else if let Some(h) = &v.host_path {
            HostVolume {
                path: host_path(name, &h.path, h.type_.as_deref().unwrap_or(""))?,
                read_only: false,
            }
        } else if let Some(c) = &v.persistent_volume_claim {
            let (path, local) = claim_path(name, ns, &c.claim_name, ctx)?;
            let read_only = c.read_only.unwrap_or(false);
            // Local volumes take the fsGroup (hostPath ones do not, as upstream). Every sync
            // comes here, so only a root that is not right yet is walked: OnRootMismatch
            // whatever fsGroupChangePolicy says.
            if let (Some(gid), true) = (fs_group, local) {
                fs_group::apply(&path, gid, read_only, true).map_err(io(name, &path))?;
            }
            HostVolume { path, read_only }
        } else {
            // Kinds this node cannot mount: an empty directory keeps the pod running, as
            // upstream does for volumes whose plugin is a no-op here.
            std::fs::create_dir_all(&dir).map_err(io(name, &dir))?;
            HostVolume {
                path: dir,
                read_only: false,
            }
        };
        out.insert(v.name.clone(), hv);
    }
    Ok(out)
}

fn host_path(volume: &str, path: &str, type_: &str) -> Result<PathBuf, Error> {
    let p = PathBuf::from(path);
    let meta = std::fs::metadata(&p);
    use std::os::unix::fs::FileTypeExt;
    let check = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(setup_err(
                volume,
                format!("hostPath type check failed: {path} is not a {what}"),
            ))
        }
    };
    match type_ {
        "DirectoryOrCreate" if meta.is_err() => {
            std::fs::create_dir_all(&p).map_err(io(volume, &p))?;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
        }
        "FileOrCreate" if meta.is_err() => {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io(volume, &p))?;
            }
            std::fs::File::create(&p).map_err(io(volume, &p))?;
        }
        "DirectoryOrCreate" | "Directory" => check(meta.is_ok_and(|m| m.is_dir()), "directory")?,
        "FileOrCreate" | "File" => check(meta.is_ok_and(|m| m.is_file()), "file")?,
        "Socket" => check(meta.is_ok_and(|m| m.file_type().is_socket()), "socket")?,
        "CharDevice" => check(
            meta.is_ok_and(|m| m.file_type().is_char_device()),
            "character device",
        )?,
        "BlockDevice" => check(
            meta.is_ok_and(|m| m.file_type().is_block_device()),
            "block device",
        )?,
        _ => {}
    }
    Ok(p)
}

/// The directory of a claim's volume, and whether it is a `local` volume (else hostPath).
fn claim_path(
    volume: &str,
    ns: &str,
    claim: &str,
    ctx: &Context<'_>,
) -> Result<(PathBuf, bool), Error> {
    let pvc = ctx.claims.get_in(ns, claim).ok_or_else(|| {
        setup_err(
            volume,
            format!("persistentvolumeclaim \"{claim}\" not found"),
        )
    })?;
    let pv_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            setup_err(
                volume,
                format!("persistentvolumeclaim \"{claim}\" is not bound"),
            )
        })?;
    let pv = ctx
        .volumes
        .get(&tug_runtime::ObjectKey::cluster(pv_name.clone()))
        .ok_or_else(|| setup_err(volume, format!("persistentvolume \"{pv_name}\" not found")))?;
    let spec = pv.spec.as_ref();
    let path = spec
        .and_then(|s| s.host_path.as_ref().map(|h| h.path.clone()))
        .or_else(|| spec.and_then(|s| s.local.as_ref().map(|l| l.path.clone())))
        .ok_or_else(|| {
            setup_err(
                volume,
                format!("persistentvolume \"{pv_name}\" is neither hostPath nor local"),
            )
        })?;
    let p = PathBuf::from(path);
    if !p.exists() {
        std::fs::create_dir_all(&p).map_err(io(volume, &p))?;
    }
    Ok((p, spec.is_some_and(|s| s.local.is_some())))
}

/// A configMap or secret source: where its files come from.
struct KeyedSource<'a> {
    kind: Kind,
    name: &'a str,
    items: Option<&'a [KeyToPath]>,
    optional: Option<bool>,
}

/// Files of a configMap or secret source: every key, or only `items`; none when the object
/// is missing and the source is optional.
fn keyed(
    volume: &str,
    ctx: &Context<'_>,
    ns: &str,
    src: KeyedSource<'_>,
    default_mode: Option<i32>,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, Error> {
    let Some(data) = ctx.sources.data(src.kind, ns, src.name) else {
        if src.optional.unwrap_or(false) {
            return Ok(BTreeMap::new());
        }
        return Err(setup_err(volume, src.kind.not_found(src.name)));
    };
    let mode = default_mode.map_or(0o644, |m| m as u32);
    let Some(items) = src.items else {
        return Ok(data.into_iter().map(|(k, v)| (k, (v, mode))).collect());
    };
    let mut files = BTreeMap::new();
    for i in items {
        let v = data.get(&i.key).ok_or_else(|| {
            let what = src.kind.lower();
            setup_err(
                volume,
                format!("{what} references non-existent {what} key: {}", i.key),
            )
        })?;
        files.insert(
            i.path.clone(),
            (v.clone(), i.mode.map_or(mode, |m| m as u32)),
        );
    }
    Ok(files)
}

fn downward(
    volume: &str,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    ctx: &Context<'_>,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, Error> {
    let mode = default_mode.map_or(0o644, |m| m as u32);
    let mut files = BTreeMap::new();
    for i in items {
        let value = if let Some(f) = &i.field_ref {
            field_value(pod, f, ctx.host_ip, ctx.pod_ips).map_err(|e| setup_err(volume, e.0))?
        } else if let Some(r) = &i.resource_field_ref {
            let c = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| Some(&c.name) == r.container_name.as_ref())
                .cloned()
                .unwrap_or_default();
            resource_value(&c, &r.resource, r.divisor.as_ref(), &BTreeMap::new())
                .map_err(|e| setup_err(volume, e.0))?
        } else {
            continue;
        };
        files.insert(
            i.path.clone(),
            (value.into_bytes(), i.mode.map_or(mode, |m| m as u32)),
        );
    }
    Ok(files)
}

fn projected(
    volume: &str,
    pod: &Pod,
    ns: &str,
    p: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    ctx: &Context<'_>,
) -> Result<BTreeMap<String, (Vec<u8>, u32)>, Error> {
    let mut files = BTreeMap::new();
    for s in p.sources.iter().flatten() {
        if let Some(c) = &s.config_map {
            let src = KeyedSource {
                kind: Kind::ConfigMap,
                name: &c.name,
                items: c.items.as_deref(),
                optional: c.optional,
            };
            files.extend(keyed(volume, ctx, ns, src, p.default_mode)?);
        }
        if let Some(c) = &s.secret {
            let src = KeyedSource {
                kind: Kind::Secret,
                name: &c.name,
                items: c.items.as_deref(),
                optional: c.optional,
            };
            files.extend(keyed(volume, ctx, ns, src, p.default_mode)?);
        }
        if let Some(d) = &s.downward_api {
            files.extend(downward(
                volume,
                pod,
                d.items.as_deref().unwrap_or_default(),
                p.default_mode,
                ctx,
            )?);
        }
        if let Some(t) = &s.service_account_token {
            let wish = (
                t.audience.clone().unwrap_or_default(),
                t.expiration_seconds.unwrap_or(3600),
            );
            let token = ctx
                .tokens
                .get(&wish)
                .ok_or_else(|| setup_err(volume, "failed to fetch token: not requested"))?;
            let mode = p.default_mode.map_or(0o644, |m| m as u32);
            files.insert(t.path.clone(), (token.clone().into_bytes(), mode));
        }
    }
    Ok(files)
}

/// Writes `files` (relative path → contents, mode) under `dir` atomically; returns whether
/// anything changed.
pub fn write_atomic(dir: &Path, files: &BTreeMap<String, (Vec<u8>, u32)>) -> std::io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let data = dir.join("..data");
    if data.exists() && same(&data, files) {
        return Ok(false);
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let fresh = dir.join(&stamp);
    std::fs::create_dir_all(&fresh)?;
    for (rel, (bytes, mode)) in files {
        let path = fresh.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode & 0o7777))?;
    }
    let old = std::fs::read_link(&data).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data)?;
    // Top-level names point through ..data.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.split('/').next().map(str::to_owned))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(top), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

fn same(data: &Path, files: &BTreeMap<String, (Vec<u8>, u32)>) -> bool {
    let mut count = 0;
    let mut stack = vec![data.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            return false;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            count += 1;
            let Ok(rel) = p.strip_prefix(data) else {
                return false;
            };
            let Some((bytes, mode)) = files.get(&rel.to_string_lossy().into_owned()) else {
                return false;
            };
            let meta_mode = std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o7777);
            if std::fs::read(&p).ok().as_ref() != Some(bytes)
                || meta_mode.ok() != Some(*mode & 0o7777)
            {
                return false;
            }
        }
    }
    count == files.len()
}

fn mount_tmpfs(dir: &Path, size: Option<&str>) -> std::io::Result<()> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let bytes = size.and_then(|s| {
        tug_hollow::status::quantity(&k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            s.to_owned(),
        ))
    });
    let data = bytes.map_or(String::new(), |b| format!("size={}", b as u64));
    let data = std::ffi::CString::new(data).map_err(std::io::Error::other)?;
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(std::io::Error::from)
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let d = dir.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(d.as_ref()))
}

/// Removes a pod's directory, unmounting what was mounted under it.
pub fn teardown(pods_dir: &Path, uid: &str) -> std::io::Result<()> {
    let dir = pod_dir(pods_dir, uid);
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
        let prefix = format!("{}/", dir.to_string_lossy());
        for m in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
            if m.starts_with(&prefix) {
                let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
            }
        }
    }
    std::fs::remove_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, (Vec<u8>, u32)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (v.as_bytes().to_vec(), 0o644)))
            .collect()
    }

    #[test]
    fn atomic_writes_swap_the_data_link() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join("v");
        assert!(write_atomic(&dir, &files(&[("a", "1"), ("b", "2")])).unwrap_or(false));
        assert_eq!(
            std::fs::read_to_string(dir.join("a")).unwrap_or_default(),
            "1"
        );
        assert!(!write_atomic(&dir, &files(&[("a", "1"), ("b", "2")])).unwrap_or(true));
        assert!(write_atomic(&dir, &files(&[("a", "3")])).unwrap_or(false));
        assert_eq!(
            std::fs::read_to_string(dir.join("a")).unwrap_or_default(),
            "3"
        );
        assert!(!dir.join("b").exists());
        let stamps = std::fs::read_dir(&dir)
            .map(|r| {
                r.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("..1"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(stamps, 1, "the old timestamped directory is gone");
    }

    #[test]
    fn host_path_types_are_checked() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let missing = tmp.path().join("x");
        let m = missing.to_string_lossy();
        assert!(host_path("v", &m, "Directory").is_err());
        assert!(host_path("v", &m, "DirectoryOrCreate").is_ok());
        assert!(missing.is_dir());
        let err = host_path("v", &m, "File")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is not a file"), "{err}");
    }
}
