//! Named network namespaces, made the way `ip netns add` makes them so that
//! `ip netns list`, `ip netns exec` and `tc -n` see them.
//!
//! sdss is a multi-threaded tokio process: `unshare` and `setns` change only the
//! calling thread, so every namespace switch happens on a dedicated OS thread
//! that is thrown away afterwards, never on a runtime worker (LAB-NOTES.md).
//! A namespace is identified by the device and inode of its nsfs file: that
//! identity, recorded before the name exists, is how `down` proves a namespace
//! is the one sdss made and not a look-alike.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::pool;

/// Where named namespaces live (iproute2's convention).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The identity of a network namespace: its nsfs device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsId {
    /// `st_dev` of the nsfs file.
    pub dev: u64,
    /// `st_ino` of the nsfs file (what `/proc/PID/ns/net` shows as `net:[INODE]`).
    pub ino: u64,
}

/// Failures of namespace operations, each naming the namespace.
#[derive(Debug, Error)]
pub enum NetnsError {
    /// A system call failed.
    #[error("{action} for namespace {name}: {source}")]
    Sys {
        /// What was being done.
        action: &'static str,
        /// The namespace.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// Something already has the name.
    #[error("namespace {0} already exists and was not created by this lab: refusing to touch it")]
    Exists(String),
    /// The caller's recording step failed, so nothing was created.
    #[error("could not record namespace {name} before creating it: {source}")]
    Record {
        /// The namespace.
        name: String,
        /// Why.
        source: io::Error,
    },
}

fn sys<'a>(
    action: &'static str,
    name: &'a str,
) -> impl FnOnce(nix::errno::Errno) -> NetnsError + 'a {
    move |errno| NetnsError::Sys {
        action,
        name: name.to_owned(),
        source: io::Error::from(errno),
    }
}

/// The file that names a namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Makes sure `/run/netns` exists and is a shared mount point, as `ip netns add`
/// does, so namespaces mounted there stay visible to other mount namespaces.
pub fn prepare_run_dir() -> Result<(), NetnsError> {
    let dir = Path::new(NETNS_RUN_DIR);
    std::fs::create_dir_all(dir).map_err(|source| NetnsError::Sys {
        action: "creating /run/netns",
        name: String::new(),
        source,
    })?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, Some("none"), shared, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then share it.
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind-mounting /run/netns", ""))?;
            mount(None::<&str>, dir, Some("none"), shared, None::<&str>)
                .map_err(sys("sharing /run/netns", ""))
        }
        Err(e) => Err(sys("sharing /run/netns", "")(e)),
    }
}

/// Creates the named namespaces `names`, in three steps: every namespace is
/// made, unnamed, and held by a handle (a few threads at once: making one is
/// the kernel's slowest step); `record` runs once with all their identities;
/// then each gets its name. If making or recording fails, nothing is named
/// and the namespaces vanish with their handles. A failure while naming
/// leaves the names made so far, which the record covers.
pub fn create_all(
    names: &[String],
    record: impl FnOnce(&[NsId]) -> io::Result<()>,
) -> Result<Vec<File>, NetnsError> {
    // A name taken meanwhile is found when naming (`create_new`): the
    // namespaces made vanish with their handles.
    let made = make_unnamed(names)?;
    let ids: Vec<NsId> = made.iter().map(|(_, id)| *id).collect();
    record(&ids).map_err(|source| NetnsError::Record {
        name: names.first().cloned().unwrap_or_default(),
        source,
    })?;
    for (name, (file, _)) in names.iter().zip(&made) {
        name_one(name, file)?;
    }
    Ok(made.into_iter().map(|(file, _)| file).collect())
}

/// Makes one unnamed namespace per name, each held open, in the names' order.
fn make_unnamed(names: &[String]) -> Result<Vec<(File, NsId)>, NetnsError> {
    let make = |i: usize| {
        let name = &names[i];
        // The thread moves into each new namespace in turn; the handle keeps
        // the previous one alive.
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare", name))?;
        let file = File::open("/proc/thread-self/ns/net").map_err(|source| NetnsError::Sys {
            action: "opening the new namespace",
            name: name.clone(),
            source,
        })?;
        let meta = file.metadata().map_err(|source| NetnsError::Sys {
            action: "stat of the new namespace",
            name: name.clone(),
            source,
        })?;
        let id = NsId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        Ok((file, id))
    };
    pool::all(names.len(), pool::cores(), make, |i| NetnsError::Sys {
        action: "creating",
        name: names[i].clone(),
        source: io::Error::other("not made"),
    })
}

/// Names the namespace held by `file`: `/run/netns/NAME`, bind-mounted on it.
fn name_one(name: &str, file: &File) -> Result<(), NetnsError> {
    let target = path(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&target)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => NetnsError::Exists(name.to_owned()),
            _ => NetnsError::Sys {
                action: "creating the name",
                name: name.to_owned(),
                source,
            },
        })?;
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    if let Err(e) = mount(
        Some(source.as_str()),
        &target,
        Some("none"),
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(&target);
        return Err(sys("bind-mounting", name)(e));
    }
    Ok(())
}

/// What is at a namespace's name now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Nothing.
    Absent,
    /// A mounted namespace with this identity.
    Mounted(NsId),
    /// A plain file (an unfinished creation): its change time, seconds since the epoch.
    Unmounted {
        /// `st_ctime`.
        ctime: i64,
    },
}

/// Looks at a namespace's name without following or changing anything.
pub fn presence(name: &str) -> io::Result<Presence> {
    let target = path(name);
    let meta = match std::fs::symlink_metadata(&target) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Presence::Absent),
        Err(e) => return Err(e),
    };
    let dir = std::fs::metadata(NETNS_RUN_DIR)?;
    if meta.dev() == dir.dev() {
        Ok(Presence::Unmounted {
            ctime: meta.ctime(),
        })
    } else {
        Ok(Presence::Mounted(NsId {
            dev: meta.dev(),
            ino: meta.ino(),
        }))
    }
}

/// Removes a namespace's name: detach the mount (if any), then unlink.
/// The namespace itself disappears once no process or socket uses it.
pub fn remove(name: &str) -> Result<(), NetnsError> {
    let target = path(name);
    match umount2(&target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(sys("unmounting", name)(e)),
    }
    match std::fs::remove_file(&target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Sys {
            action: "removing the name",
            name: name.to_owned(),
            source,
        }),
    }
}

/// Opens a namespace by name, checking it is the expected one.
pub fn open(name: &str, expected: Option<NsId>) -> Result<File, NetnsError> {
    let file = File::open(path(name)).map_err(|source| NetnsError::Sys {
        action: "opening",
        name: name.to_owned(),
        source,
    })?;
    if let Some(expected) = expected {
        let meta = file.metadata().map_err(|source| NetnsError::Sys {
            action: "stat",
            name: name.to_owned(),
            source,
        })?;
        if meta.dev() != expected.dev || meta.ino() != expected.ino {
            return Err(NetnsError::Exists(name.to_owned()));
        }
    }
    Ok(file)
}

/// Runs `f` on a fresh OS thread that has entered the network namespace `ns`,
/// and returns its result. The thread ends with `f`, so nothing else ever runs
/// in that namespace by mistake; sockets opened there stay bound to it. The one
/// way sdss does something inside a namespace from its own process, with
/// [`spawn_in`] for work that outlives the caller.
pub fn on_thread_in<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("sdss-in-netns".to_owned())
            .spawn_scoped(scope, || {
                setns(ns, CloneFlags::CLONE_NEWNET)?;
                Ok(f())
            })?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a thread in a namespace panicked")))
    })
}

/// Starts `f` on a named OS thread that has entered the network namespace
/// `ns`, for work that outlives the caller's frame (the grading probe); as
/// with [`on_thread_in`], the thread ends with `f`. The thread's result is
/// `f`'s, or the error of entering the namespace.
pub fn spawn_in<T: Send + 'static>(
    ns: &File,
    name: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<JoinHandle<io::Result<T>>> {
    let ns = ns.try_clone()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            setns(&ns, CloneFlags::CLONE_NEWNET)?;
            drop(ns);
            f()
        })
}
