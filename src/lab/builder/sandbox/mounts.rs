//! The box's root: the system read-only, a minimal `/dev`, its own `/proc`,
//! a private `/tmp`, a writable copy of the submission's folder, and nothing
//! else of the host (no `/root`, `/home`, `/run`, other submissions).
//!
//! Built by the box's init in its new mount namespace, the way bubblewrap
//! does: a scratch tmpfs becomes the root with the host's under `/old`, the
//! new root is assembled from it at `/new`, then entered, and the host's
//! root detached.

use std::fs;
use std::os::unix::fs::{lchown, symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root, setfsgid, setfsuid, Gid, Uid};

use super::spec::BoxSpec;
use super::{sys, SandboxError};
use crate::units::format_size;

/// Host directories the box sees read-only, those that exist.
const SYSTEM: [&str; 10] = [
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt", "nix",
];
/// Device nodes the box gets, bound from the host's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// The largest folder copied into a box.
pub const FOLDER_MAX: u64 = 256 << 20;
/// The most entries a folder copied into a box may have.
const FOLDER_ENTRIES_MAX: u64 = 100_000;
/// What tmpfs charges a file or folder at least.
const PAGE: u64 = 4096;

/// Where the host's root is while the box's is built.
const OLD: &str = "/old";
/// Where the box's root is built.
const NEW: &str = "/new";

/// Builds the box's root and makes it the calling process's root, read-only.
/// Needs root in a mount namespace of its own.
pub fn build(spec: &BoxSpec) -> Result<(), SandboxError> {
    let folder = fs::canonicalize(&spec.folder).map_err(|e| SandboxError::Folder {
        path: spec.folder.clone(),
        why: e.to_string(),
    })?;
    let visible = spec
        .visible
        .iter()
        .map(|p| fs::canonicalize(p).map_err(sys(format!("cannot find {}", p.display()))))
        .collect::<Result<Vec<PathBuf>, _>>()?;
    let owner = fs::metadata(&folder)
        .map(|m| Owner(m.uid(), m.gid()))
        .map_err(|e| SandboxError::Folder {
            path: spec.folder.clone(),
            why: e.to_string(),
        })?;
    // The init's own groups: root's must not open what the owner could not.
    nix::unistd::setgroups(&[]).map_err(sys("cannot drop the supplementary groups"))?;
    let size = as_owner(owner, || footprint(&folder))?.saturating_add(spec.limits.disk);

    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, private, None::<&str>)
        .map_err(sys("cannot make the mounts private"))?;
    // Searchable: the folder is read through it as its owner.
    tmpfs("/tmp", "mode=0755,size=1m")?;
    for dir in ["/tmp/old", "/tmp/new"] {
        fs::create_dir(dir).map_err(sys(format!("cannot create {dir}")))?;
    }
    pivot_root("/tmp", "/tmp/old").map_err(sys("cannot enter the scratch root"))?;
    chdir("/").map_err(sys("cannot enter the scratch root"))?;

    tmpfs(NEW, "mode=0755,size=4m")?;
    for name in SYSTEM {
        system(name)?;
    }
    dev(spec.limits.disk)?;
    let proc = format!("{NEW}/proc");
    fs::create_dir(&proc).map_err(sys("cannot create /proc"))?;
    let hidden = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("proc"),
        proc.as_str(),
        Some("proc"),
        hidden,
        None::<&str>,
    )
    .map_err(sys("cannot mount /proc"))?;
    let tmp = format!("{NEW}/tmp");
    fs::create_dir(&tmp).map_err(sys("cannot create /tmp"))?;
    tmpfs(&tmp, &format!("mode=1777,size={}", spec.limits.disk))?;

    copy_folder(spec, &folder, size, owner)?;
    for (shown, source) in spec.visible.iter().zip(&visible) {
        show(source, &inside(shown))?;
    }

    chdir(NEW).map_err(sys("cannot enter the box's root"))?;
    pivot_root(".", ".").map_err(sys("cannot enter the box's root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("cannot detach the host's root"))?;
    chdir("/").map_err(sys("cannot enter the box's root"))?;
    let read_only = MsFlags::MS_REMOUNT
        | MsFlags::MS_BIND
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    mount(None::<&str>, "/", None::<&str>, read_only, None::<&str>)
        .map_err(sys("cannot make the box's root read-only"))
}

/// `path` of the host, as seen while the box is built.
fn host(path: &Path) -> PathBuf {
    Path::new(OLD).join(path.strip_prefix("/").unwrap_or(path))
}

/// `path` of the box, as seen while it is built.
fn inside(path: &Path) -> PathBuf {
    Path::new(NEW).join(path.strip_prefix("/").unwrap_or(path))
}

fn tmpfs(target: &str, options: &str) -> Result<(), SandboxError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("sdss-box"),
        target,
        Some("tmpfs"),
        flags,
        Some(options),
    )
    .map_err(sys(format!("cannot mount a tmpfs on {target}")))
}

/// Binds `source` at `target` read-only (and without set-user-ID).
fn bind_read_only(source: &Path, target: &Path) -> Result<(), SandboxError> {
    let what = || format!("cannot show {} read-only", source.display());
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys(what()))?;
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>).map_err(sys(what()))
}

/// One system directory: a symbolic link stays one (`/bin -> usr/bin` on a
/// merged-usr system), a directory is bound read-only.
fn system(name: &str) -> Result<(), SandboxError> {
    let source = Path::new(OLD).join(name);
    let target = Path::new(NEW).join(name);
    let Ok(meta) = fs::symlink_metadata(&source) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        let link = fs::read_link(&source).map_err(sys(format!("cannot read /{name}")))?;
        return symlink(link, &target).map_err(sys(format!("cannot link /{name}")));
    }
    if !meta.is_dir() {
        return Ok(());
    }
    fs::create_dir(&target).map_err(sys(format!("cannot create /{name}")))?;
    bind_read_only(&source, &target)
}

/// A `/dev` with the harmless devices, `/dev/shm` and the usual links.
fn dev(disk: u64) -> Result<(), SandboxError> {
    let dev = format!("{NEW}/dev");
    fs::create_dir(&dev).map_err(sys("cannot create /dev"))?;
    tmpfs(&dev, "mode=0755,size=64k")?;
    for name in DEVICES {
        let source = Path::new(OLD).join("dev").join(name);
        if !source.exists() {
            continue;
        }
        let target = Path::new(&dev).join(name);
        fs::File::create(&target).map_err(sys(format!("cannot create /dev/{name}")))?;
        let flags = MsFlags::MS_BIND;
        mount(Some(&source), &target, None::<&str>, flags, None::<&str>)
            .map_err(sys(format!("cannot bind /dev/{name}")))?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, Path::new(&dev).join(link))
            .map_err(sys(format!("cannot link /dev/{link}")))?;
    }
    let shm = format!("{dev}/shm");
    fs::create_dir(&shm).map_err(sys("cannot create /dev/shm"))?;
    tmpfs(&shm, &format!("mode=1777,size={disk}"))?;
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount(
        None::<&str>,
        dev.as_str(),
        None::<&str>,
        flags,
        Some("mode=0755,size=64k"),
    )
    .map_err(sys("cannot make /dev read-only"))
}

/// Shows a host file or folder read-only at `target`, made empty first.
fn show(source: &Path, target: &Path) -> Result<(), SandboxError> {
    let what = || format!("cannot show {}", source.display());
    let is_dir = fs::metadata(host(source)).map_err(sys(what()))?.is_dir();
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(sys(what()))?;
    }
    if !target.exists() {
        if is_dir {
            fs::create_dir(target).map_err(sys(what()))?;
        } else {
            fs::File::create(target).map_err(sys(what()))?;
        }
    }
    bind_read_only(&host(source), target)
}

/// What the folder takes on a tmpfs; refuses one that is no directory or too big.
fn footprint(folder: &Path) -> Result<u64, SandboxError> {
    let refuse = |why: String| SandboxError::Folder {
        path: folder.to_owned(),
        why,
    };
    if !folder.is_dir() {
        return Err(refuse("is not a directory".to_owned()));
    }
    let (mut bytes, mut entries) = (PAGE, 0u64);
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| refuse(e.to_string()))? {
            let entry = entry.map_err(|e| refuse(e.to_string()))?;
            let meta = entry.metadata().map_err(|e| refuse(e.to_string()))?;
            entries += 1;
            bytes += PAGE;
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                bytes += meta.len().div_ceil(PAGE) * PAGE;
            }
            if bytes > FOLDER_MAX || entries > FOLDER_ENTRIES_MAX {
                return Err(refuse(format!(
                    "holds more than a box takes ({} or {FOLDER_ENTRIES_MAX} entries)",
                    format_size(FOLDER_MAX)
                )));
            }
        }
    }
    Ok(bytes)
}

/// Whose the folder is: its files are read as that user.
#[derive(Debug, Clone, Copy)]
struct Owner(u32, u32);

/// Runs `read` with the file-system identity of the folder's `owner`: the
/// copy holds only what its owner could read, whatever links or renames they
/// make in it meanwhile (root's, not the owner's, for a folder of root's).
fn as_owner<T>(owner: Owner, read: impl FnOnce() -> T) -> T {
    // setfsgid(2) and setfsuid(2) change only this single-threaded process's
    // file-system ids, and cannot fail for root.
    setfsgid(Gid::from_raw(owner.1));
    setfsuid(Uid::from_raw(owner.0));
    let result = read();
    // Back to root's (its file capabilities come back with it).
    setfsuid(Uid::from_raw(0));
    setfsgid(Gid::from_raw(0));
    result
}

/// The folder's private copy: a tmpfs of `size` bytes at the folder's path,
/// holding its files, folders and links, all the box user's.
fn copy_folder(spec: &BoxSpec, folder: &Path, size: u64, owner: Owner) -> Result<(), SandboxError> {
    let target = inside(&spec.folder);
    fs::create_dir_all(&target).map_err(sys(format!("cannot create {}", spec.folder.display())))?;
    let mode = fs::metadata(host(folder))
        .map_err(sys(format!("cannot read {}", folder.display())))?
        .permissions()
        .mode()
        & 0o1777;
    let (uid, gid) = (spec.user.uid, spec.user.gid);
    let options = format!("mode={mode:o},size={size},uid={uid},gid={gid}");
    tmpfs(&target.to_string_lossy(), &options)?;
    copy_tree(&host(folder), &target, (uid, gid), owner)
}

/// Copies `from` (the host's, read as `owner`) into `to` (the box's, written
/// as root), every entry given to `user`.
fn copy_tree(from: &Path, to: &Path, user: (u32, u32), owner: Owner) -> Result<(), SandboxError> {
    let fail = |path: &Path| sys(format!("cannot copy {}", path.display()));
    for entry in as_owner(owner, || fs::read_dir(from)).map_err(fail(from))? {
        let entry = entry.map_err(fail(from))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = as_owner(owner, || fs::symlink_metadata(&source)).map_err(fail(&source))?;
        let mode = meta.permissions().mode() & 0o1777;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = as_owner(owner, || fs::read_link(&source)).map_err(fail(&source))?;
            symlink(link, &target).map_err(fail(&source))?;
        } else if kind.is_dir() {
            fs::create_dir(&target).map_err(fail(&source))?;
            copy_tree(&source, &target, user, owner)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(fail(&source))?;
        } else if kind.is_file() {
            let open = || {
                fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&source)
            };
            let mut input = as_owner(owner, open).map_err(fail(&source))?;
            if !input.metadata().is_ok_and(|m| m.is_file()) {
                continue; // Replaced meanwhile by something else.
            }
            let mut output = fs::File::create(&target).map_err(fail(&source))?;
            std::io::copy(&mut input, &mut output).map_err(fail(&source))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(fail(&source))?;
        } else {
            continue; // Devices, sockets and pipes are not a submission's.
        }
        lchown(&target, Some(user.0), Some(user.1)).map_err(fail(&source))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_box_paths_are_rebased() {
        assert_eq!(host(Path::new("/work/a")), PathBuf::from("/old/work/a"));
        assert_eq!(inside(Path::new("/tmp/x/f")), PathBuf::from("/new/tmp/x/f"));
    }

    #[test]
    fn a_folder_is_charged_by_pages_and_a_file_is_refused() {
        let dir = std::env::temp_dir().join(format!("sdss-footprint-{}", std::process::id()));
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("a"), b"x").unwrap();
        fs::write(dir.join("sub/b"), vec![0u8; 5000]).unwrap();
        // A page for each entry and the folder, and `a`'s and `b`'s contents.
        assert_eq!(footprint(&dir).unwrap(), PAGE * (4 + 1 + 2));
        assert!(matches!(
            footprint(&dir.join("a")),
            Err(SandboxError::Folder { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
