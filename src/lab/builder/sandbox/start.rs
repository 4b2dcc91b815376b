//! From a node of the plan to a confined start: its folder, its identity,
//! its spec written beside its logs, and the command line that runs the
//! keeper (`sdss lab-box SPEC`) in its place.

use std::path::{Path, PathBuf};

use super::spec::BoxSpec;
use super::{sys, ConfineError, SandboxError};
use crate::lab::builder::state::LabDir;
use crate::lab::plan::{node_netns, NodePlan, Plan};

/// Where system software lives: a program found there is not a submission,
/// and its folder is not the submission's.
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix",
];

/// The cgroup of a node's box, in each controller: named as the node's
/// namespace is, one name per node for whoever lists what a lab made.
pub fn cgroup_name(lab: &str, node: &str) -> String {
    node_netns(lab, node)
}

/// What a confined program's folder is, and its command line as it runs
/// there: a relative path that names a file becomes absolute, since the
/// program starts in its folder, not where sdss was started.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// The submission's folder; `None`: it has none (an empty one is made).
    pub folder: Option<PathBuf>,
    /// The command line.
    pub argv: Vec<String>,
}

/// Places `argv` (started from `cwd`): the folder is `dir` when given, else the
/// folder of the first argument that names a file outside the system and
/// other than the sdss executable `sdss`.
pub fn place(argv: &[String], dir: Option<&Path>, cwd: &Path, sdss: &Path) -> Placed {
    let mut folder = dir.map(Path::to_owned);
    let mut placed = Vec::with_capacity(argv.len());
    for (i, arg) in argv.iter().enumerate() {
        // argv[0] without a slash is looked up in PATH, not in the folder.
        let looked_up = i == 0 && !arg.contains('/');
        let path = match cwd.join(arg).canonicalize() {
            Ok(path) if !looked_up && !arg.is_empty() && path.is_file() => path,
            _ => {
                placed.push(arg.clone());
                continue;
            }
        };
        let system = SYSTEM.iter().any(|s| path.starts_with(s));
        if folder.is_none() && !system && path != sdss {
            folder = path.parent().map(Path::to_owned);
        }
        placed.push(path.display().to_string());
    }
    Placed {
        folder,
        argv: placed,
    }
}

/// Writes the spec of `node`'s confined start (the `index`th node of `plan`)
/// into the lab's state and returns the command line that starts it.
pub fn prepare(
    dir: &LabDir,
    plan: &Plan,
    node: &NodePlan,
    index: usize,
    sdss: &Path,
) -> Result<Vec<String>, ConfineError> {
    let failed = |source: SandboxError| ConfineError {
        node: node.name.clone(),
        source,
    };
    let cwd = std::env::current_dir().map_err(|e| failed(sys("reading the current folder")(e)))?;
    let placed = place(&node.argv(plan, sdss), node.dir.as_deref(), &cwd, sdss);
    let folder = match placed.folder.map(|f| (f.canonicalize(), f)) {
        Some((Ok(folder), _)) if folder.is_dir() => folder,
        Some((_, path)) => {
            return Err(failed(SandboxError::Folder {
                path,
                why: "not a folder".to_owned(),
            }))
        }
        None => {
            let empty = dir.box_file(&node.name, "folder");
            std::fs::create_dir_all(&empty)
                .map_err(|e| failed(sys(format!("creating {}", empty.display()))(e)))?;
            empty
        }
    };
    let user =
        super::identity::pick(&plan.lab, index, plan.sandbox.user.as_deref()).map_err(failed)?;
    let spec = BoxSpec {
        node: node.name.clone(),
        argv: placed.argv,
        env: node.env(plan, sdss),
        cwd: folder.clone(),
        folder,
        visible: vec![sdss.to_owned()],
        user,
        limits: plan.sandbox.limits,
        cgroup: cgroup_name(&plan.lab, &node.name),
        nice: crate::lab::builder::launch::child_nice(),
        hits: dir.box_file(&node.name, "hits"),
    };
    let path = dir.box_file(&node.name, "json");
    let json = serde_json::to_vec_pretty(&spec)
        .map_err(|e| failed(sys("writing the box spec")(std::io::Error::from(e))))?;
    std::fs::write(&path, json)
        .map_err(|e| failed(sys(format!("writing {}", path.display()))(e)))?;
    Ok(vec![
        sdss.display().to_string(),
        "lab-box".to_owned(),
        path.display().to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_folder_is_the_scripts_and_its_relative_path_becomes_absolute() {
        let root = std::env::temp_dir().join(format!("sdss-place-{}", std::process::id()));
        let sub = root.join("alice");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("node.py"), "").unwrap();
        let (root, sub) = (root.canonicalize().unwrap(), sub.canonicalize().unwrap());
        let sdss = Path::new("/opt/sdss");
        let placed = place(
            &strings(&["python3", "alice/node.py", "x"]),
            None,
            &root,
            sdss,
        );
        assert_eq!(placed.folder, Some(sub.clone()));
        assert_eq!(
            placed.argv,
            strings(&["python3", &sub.join("node.py").display().to_string(), "x"])
        );
        // A folder given wins; a program with no file has none.
        let given = place(
            &strings(&["python3", "alice/node.py"]),
            Some(&root),
            &root,
            sdss,
        );
        assert_eq!(given.folder, Some(root.clone()));
        let none = place(&strings(&["sleep", "5"]), None, &root, sdss);
        assert_eq!(none.folder, None);
        assert_eq!(none.argv, strings(&["sleep", "5"]));
        // System files and sdss itself are no submission's.
        let sh = place(&strings(&["/bin/sh", "-c", "true"]), None, &root, sdss);
        assert_eq!(sh.folder, None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
