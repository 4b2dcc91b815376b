//! The class file, `class.toml` in the class's folder: how each submission
//! starts, how long it is watched, and what each check is worth. Every key
//! is optional: a folder without the file is graded by the convention of
//! [`super::submissions`].
//!
//! ```toml
//! [grade]
//! command = ["python3", "{dir}/solution.py"]  # {dir}: the submission's folder
//! duration = "24s"                            # how long each program is watched
//! timeout = "120s"                            # the bound on one submission's grading
//! [grade.languages]                           # entry file's extension -> command
//! py = ["python3", "{file}"]
//! [grade.weights]                             # check id or area -> points
//! server = 2
//! "client.prompt" = 3
//! [submission.alice]                          # one folder's own command
//! command = ["python3", "{dir}/src/node.py"]
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

use super::score::Weights;
use crate::lab::file::DurationValue;

/// The class file's name in the class's folder.
pub const CLASS_FILE: &str = "class.toml";

/// Failures to read the class file.
#[derive(Debug, Error)]
pub enum ClassFileError {
    /// The file exists and cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a class file.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what was expected.
        message: String,
    },
}

/// A command as the file writes it: a list of words, with `{dir}`, `{file}`
/// and `{lab}` replaced per submission.
pub type Template = Vec<String>;

/// `class.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassFile {
    /// `[grade]`.
    #[serde(default)]
    pub grade: GradeSection,
    /// `[submission.NAME]`: one folder's own settings.
    #[serde(default)]
    pub submission: BTreeMap<String, SubmissionSection>,
}

/// `[grade]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeSection {
    /// How every submission starts, unless its own section says otherwise.
    pub command: Option<Template>,
    /// How long each program is watched.
    pub duration: Option<DurationValue>,
    /// The bound on one submission's grading, lab built and removed included.
    pub timeout: Option<DurationValue>,
    /// Entry file extension -> command, over the built-in ones.
    #[serde(default)]
    pub languages: BTreeMap<String, Template>,
    /// Check id or area -> points.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
}

/// `[submission.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionSection {
    /// How this submission starts.
    pub command: Option<Template>,
}

impl ClassFile {
    /// Reads `DIR/class.toml`; no file is the empty class file.
    pub fn load(dir: &Path) -> Result<ClassFile, ClassFileError> {
        let path = dir.join(CLASS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => ClassFile::parse(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClassFile::default()),
            Err(source) => Err(ClassFileError::Read { path, source }),
        }
    }

    /// Parses a class file's text, checking what serde cannot.
    pub fn parse(path: &Path, text: &str) -> Result<ClassFile, ClassFileError> {
        let invalid = |message: String| ClassFileError::Invalid {
            path: path.to_owned(),
            message,
        };
        let file: ClassFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let templates = file
            .grade
            .command
            .iter()
            .map(|t| ("[grade] command".to_owned(), t))
            .chain(
                file.grade
                    .languages
                    .iter()
                    .map(|(ext, t)| (format!("[grade.languages] {ext}"), t)),
            )
            .chain(file.submission.iter().filter_map(|(name, s)| {
                s.command
                    .as_ref()
                    .map(|t| (format!("[submission.{name}] command"), t))
            }));
        for (what, template) in templates {
            if template.first().is_none_or(|w| w.trim().is_empty()) {
                return Err(invalid(format!(
                    "{what} is empty: expected a program and its arguments, like [\"python3\", \"{{dir}}/solution.py\"]"
                )));
            }
        }
        if let Some((area, points)) = file
            .grade
            .weights
            .iter()
            .find(|(_, p)| !p.is_finite() || **p < 0.0)
        {
            return Err(invalid(format!(
                "[grade.weights] {area} = {points}: expected points, a number at least 0"
            )));
        }
        Ok(file)
    }

    /// The weights table.
    pub fn weights(&self) -> Weights {
        Weights(self.grade.weights.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ClassFile, ClassFileError> {
        ClassFile::parse(Path::new("class.toml"), text)
    }

    #[test]
    fn every_key_is_read() {
        let file = parse(
            "[grade]\ncommand = [\"python3\", \"{dir}/s.py\"]\nduration = \"30s\"\ntimeout = \"2m\"\n\
             [grade.languages]\nrb = [\"ruby\", \"{file}\"]\n[grade.weights]\nserver = 2\n\
             [submission.alice]\ncommand = [\"python3\", \"{dir}/x.py\"]\n",
        )
        .unwrap();
        assert_eq!(file.grade.command.as_deref().unwrap()[1], "{dir}/s.py");
        assert_eq!(file.grade.duration.unwrap().0.as_secs(), 30);
        assert_eq!(file.grade.timeout.unwrap().0.as_secs(), 120);
        assert_eq!(file.grade.languages["rb"][0], "ruby");
        assert_eq!(file.weights().of("server.utc"), 2.0);
        assert!(file.submission["alice"].command.is_some());
    }

    #[test]
    fn a_command_as_one_string_an_empty_one_or_negative_points_are_refused() {
        let text = parse("[grade]\ncommand = \"python3 s.py\"\n")
            .unwrap_err()
            .to_string();
        assert!(text.contains("expected a sequence"), "{text}");
        let text = parse("[submission.bob]\ncommand = []\n")
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("[submission.bob] command is empty: expected"),
            "{text}"
        );
        let text = parse("[grade.weights]\nserver = -1\n")
            .unwrap_err()
            .to_string();
        assert!(text.contains("expected points"), "{text}");
        let text = parse("[grade]\ncomand = [\"x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(text.contains("unknown field"), "{text}");
    }

    #[test]
    fn no_class_file_is_the_empty_one() {
        let dir = std::env::temp_dir().join(format!("sdss-class-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(ClassFile::load(&dir).unwrap(), ClassFile::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
