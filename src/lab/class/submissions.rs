//! The class's submissions: one folder each, and how each starts.
//!
//! A folder's command is, first found: its `[submission.NAME] command`, the
//! class's `[grade] command`, or the convention: an executable file named
//! `run`, else an entry file (`solution.*`, `main.*`, `node.*`, `sdss.*`, or
//! the folder's only file of a known language) started as its language's
//! command (`[grade.languages]` over the built-in ones). A folder where none
//! is found is still a submission: it is graded with that finding.

use std::path::{Path, PathBuf};

use super::file::{ClassFile, Template};

/// The built-in commands per entry file extension.
const LANGUAGES: [(&str, &[&str]); 4] = [
    ("py", &["python3", "{file}"]),
    ("js", &["node", "{file}"]),
    ("jar", &["java", "-jar", "{file}"]),
    ("sh", &["sh", "{file}"]),
];

/// Entry file stems looked for, in order, before a folder's only file.
const ENTRY_STEMS: [&str; 4] = ["solution", "main", "node", "sdss"];

/// One submission and how it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The folder's name: the submission's name everywhere.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
    /// Its command, or why none was found.
    pub start: Result<Vec<String>, String>,
}

/// The class's folders, sorted by name, each with its command. Hidden
/// folders (`.grades`, `.git`) and files are not submissions.
pub fn discover(class: &Path, file: &ClassFile) -> std::io::Result<Vec<Submission>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(class)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let start = start(&name, &dir, file);
            Submission { name, dir, start }
        })
        .collect())
}

/// The command of submission `name` in `dir`.
fn start(name: &str, dir: &Path, file: &ClassFile) -> Result<Vec<String>, String> {
    let own = file.submission.get(name).and_then(|s| s.command.as_ref());
    if let Some(template) = own.or(file.grade.command.as_ref()) {
        return Ok(fill(template, dir, None));
    }
    let run = dir.join("run");
    if is_executable(&run) {
        return Ok(vec![run.to_string_lossy().into_owned()]);
    }
    let known = |ext: &str| {
        file.grade.languages.get(ext).cloned().or_else(|| {
            LANGUAGES
                .iter()
                .find(|(e, _)| *e == ext)
                .map(|(_, t)| t.iter().map(|w| (*w).to_owned()).collect())
        })
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("its folder cannot be read: {e}"))?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .filter(|path| extension(path).is_some_and(|ext| known(ext).is_some()))
        .collect();
    files.sort();
    let stem = |path: &PathBuf| path.file_stem().and_then(|s| s.to_str()).map(str::to_owned);
    let entry = ENTRY_STEMS
        .iter()
        .find_map(|want| files.iter().find(|f| stem(f).as_deref() == Some(*want)))
        .or_else(|| (files.len() == 1).then(|| &files[0]));
    match entry {
        Some(entry) => {
            let template = extension(entry).and_then(known).unwrap_or_default();
            Ok(fill(&template, dir, Some(entry)))
        }
        None if files.is_empty() => Err(format!(
            "nothing to start in {}: expected an executable `run`, or a file of a known language ({}), or a command in {}",
            dir.display(),
            known_extensions(file),
            super::file::CLASS_FILE,
        )),
        None => Err(format!(
            "nothing to start in {}: {} candidate files and none named {}: expected a command for it in {}",
            dir.display(),
            files.len(),
            ENTRY_STEMS.join(", "),
            super::file::CLASS_FILE,
        )),
    }
}

/// `template` with `{dir}` and `{file}` filled in (`{lab}` is the lab's
/// business: it is filled when the lab is named).
fn fill(template: &Template, dir: &Path, entry: Option<&Path>) -> Vec<String> {
    let dir = dir.to_string_lossy();
    let entry = entry.map(|e| e.to_string_lossy().into_owned());
    template
        .iter()
        .map(|word| {
            let word = word.replace("{dir}", &dir);
            match &entry {
                Some(entry) => word.replace("{file}", entry),
                None => word,
            }
        })
        .collect()
}

fn extension(path: &Path) -> Option<&str> {
    path.extension().and_then(|e| e.to_str())
}

fn known_extensions(file: &ClassFile) -> String {
    let mut all: Vec<&str> = LANGUAGES.iter().map(|(e, _)| *e).collect();
    all.extend(file.grade.languages.keys().map(String::as_str));
    all.sort_unstable();
    all.dedup();
    all.iter()
        .map(|e| format!(".{e}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Class(PathBuf);

    impl Class {
        fn new(tag: &str, folders: &[(&str, &[&str])]) -> Class {
            let root =
                std::env::temp_dir().join(format!("sdss-class-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            for (folder, files) in folders {
                let dir = root.join(folder);
                std::fs::create_dir_all(&dir).unwrap();
                for file in *files {
                    std::fs::write(dir.join(file), "").unwrap();
                }
            }
            Class(root)
        }
    }

    impl Drop for Class {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn starts(class: &Class, file: &ClassFile) -> Vec<(String, Result<Vec<String>, String>)> {
        discover(&class.0, file)
            .unwrap()
            .into_iter()
            .map(|s| {
                let root = class.0.to_string_lossy().into_owned();
                let start = s
                    .start
                    .map(|c| c.iter().map(|w| w.replace(&root, "C")).collect());
                (s.name, start)
            })
            .collect()
    }

    #[test]
    fn the_convention_finds_entry_files_and_names_what_it_could_not() {
        let class = Class::new(
            "convention",
            &[
                ("alice", &["solution.py", "util.py"]),
                ("bob", &["server.js"]),
                ("carol", &["a.py", "b.py"]),
                ("dave", &["README.md"]),
                (".grades", &["x.py"]),
            ],
        );
        let found = starts(&class, &ClassFile::default());
        assert_eq!(found.len(), 4, "hidden folders are not submissions");
        assert_eq!(
            found[0].1,
            Ok(vec!["python3".into(), "C/alice/solution.py".into()])
        );
        assert_eq!(
            found[1].1,
            Ok(vec!["node".into(), "C/bob/server.js".into()])
        );
        let carol = found[2].1.clone().unwrap_err();
        assert!(carol.contains("2 candidate files"), "{carol}");
        let dave = found[3].1.clone().unwrap_err();
        assert!(
            dave.contains("nothing to start") && dave.contains(".py"),
            "{dave}"
        );
    }

    #[test]
    fn a_folders_own_command_wins_over_the_class_command_over_the_convention() {
        let class = Class::new(
            "override",
            &[("alice", &["main.py"]), ("bob", &["main.py"])],
        );
        let file = ClassFile::parse(
            Path::new("class.toml"),
            "[grade]\ncommand = [\"python3\", \"{dir}/src/x.py\", \"{lab}\"]\n\
             [submission.bob]\ncommand = [\"{dir}/start\"]\n",
        )
        .unwrap();
        let found = starts(&class, &file);
        assert_eq!(
            found[0].1,
            Ok(vec![
                "python3".into(),
                "C/alice/src/x.py".into(),
                "{lab}".into()
            ])
        );
        assert_eq!(found[1].1, Ok(vec!["C/bob/start".into()]));
    }

    #[test]
    fn an_executable_run_is_started_and_a_language_can_be_added() {
        use std::os::unix::fs::PermissionsExt;
        let class = Class::new(
            "run",
            &[("alice", &["run", "main.py"]), ("bob", &["node.rb"])],
        );
        let run = class.0.join("alice/run");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = ClassFile::parse(
            Path::new("class.toml"),
            "[grade.languages]\nrb = [\"ruby\", \"{file}\"]\n",
        )
        .unwrap();
        let found = starts(&class, &file);
        assert_eq!(found[0].1, Ok(vec!["C/alice/run".into()]));
        assert_eq!(found[1].1, Ok(vec!["ruby".into(), "C/bob/node.rb".into()]));
    }
}
