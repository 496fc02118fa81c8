//! Volume ownership for a pod's `securityContext.fsGroup`, as upstream's
//! `SetVolumeOwnership`: every file and directory of the volume gets the group, files gain
//! group read (and write, unless the volume is read-only), directories gain setgid and group
//! search so new files inherit the group. Symlinks are left alone. Volumes are walked when
//! set up (emptyDir) or rewritten (configMap, secret, downwardAPI, projected); a local
//! persistent volume only when its root is not right yet, as with
//! `fsGroupChangePolicy: OnRootMismatch`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const SETGID: u32 = 0o2000;
/// Group bits a writable volume's entries gain.
const RW: u32 = 0o660;
/// Group bits a read-only volume's entries gain.
const RO: u32 = 0o440;
/// Search bits every directory gains.
const EXEC: u32 = 0o110;

/// The mode `mode` becomes for a file (or, with `dir`, a directory) of a volume owned by an
/// fsGroup.
pub fn mode(mode: u32, dir: bool, read_only: bool) -> u32 {
    let mask = if read_only { RO } else { RW };
    if dir {
        mode | mask | EXEC | SETGID
    } else {
        mode | mask
    }
}

/// Gives the tree under `root` to group `gid` (see the module doc); `on_root_mismatch`
/// skips a root that is already right.
pub fn apply(
    root: &Path,
    gid: u32,
    read_only: bool,
    on_root_mismatch: bool,
) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(root)?;
    let want = mode(meta.mode() & 0o7777, meta.is_dir(), read_only);
    if on_root_mismatch && meta.gid() == gid && meta.mode() & 0o7777 == want {
        return Ok(());
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::lchown(&p, None, Some(gid))?;
        let m = mode(meta.mode() & 0o7777, meta.is_dir(), read_only);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_gain_group_bits() {
        assert_eq!(mode(0o644, false, false), 0o664);
        assert_eq!(mode(0o400, false, true), 0o440);
        assert_eq!(mode(0o777, true, false), 0o2777);
        assert_eq!(mode(0o700, true, true), 0o2750);
    }

    #[test]
    fn a_tree_gets_the_group_and_links_are_left_alone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().join("v");
        let sub = root.join("sub");
        std::fs::create_dir_all(&sub).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(sub.join("f"), b"x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(sub.join("f"), std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("/etc/passwd", root.join("link"))
            .unwrap_or_else(|e| panic!("{e}"));
        // The current user's own group: changing to it needs no privilege.
        let gid = std::fs::metadata(dir.path())
            .map(|m| m.gid())
            .unwrap_or_else(|e| panic!("{e}"));
        apply(&root, gid, false, false).unwrap_or_else(|e| panic!("{e}"));
        let m = |p: &Path| std::fs::metadata(p).map(|m| m.mode() & 0o7777).unwrap_or(0);
        assert_eq!(m(&sub.join("f")), 0o660);
        assert_eq!(m(&sub) & SETGID, SETGID);
        let passwd = std::fs::metadata("/etc/passwd")
            .map(|m| m.mode() & 0o7777)
            .unwrap_or(0);
        assert_eq!(passwd & SETGID, 0, "a symlink's target is not touched");
    }
}
