//! The lab's stages import only earlier ones: file -> plan -> builder ->
//! scenario -> judge -> report, with `lifecycle` and `hosts` composing them
//! from above. Read from the source, so an arrow pointing back fails here
//! before anyone has to find it in a drawing.

use std::path::{Path, PathBuf};

/// The stages, earliest first.
const STAGES: [&str; 6] = ["file", "plan", "builder", "scenario", "judge", "report"];

/// What composes the stages: no stage may import it.
const ABOVE: [&str; 3] = ["lifecycle", "hosts", "watch"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`, e.g. `lab::builder::links`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix("src").unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The modules of `lab` a line names: `crate::lab::X` or `super::...::X`
/// resolved from `module`.
fn lab_modules_named(line: &str, module: &[String]) -> Vec<String> {
    let mut named = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::lab::") {
        rest = &rest[at + "crate::lab::".len()..];
        named.push(ident(rest));
    }
    let mut rest = line;
    while let Some(at) = rest.find("super::") {
        let before_ok = at == 0 || !rest[..at].ends_with("::");
        let mut tail = &rest[at..];
        let mut ups = 0;
        while let Some(after) = tail.strip_prefix("super::") {
            ups += 1;
            tail = after;
        }
        if before_ok && ups <= module.len() {
            let base = &module[..module.len() - ups];
            if base.len() == 1 && base[0] == "lab" {
                named.push(ident(tail));
            }
        }
        rest = &rest[at + "super::".len() * ups.max(1)..];
    }
    named.retain(|n| !n.is_empty());
    named
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn each_stage_imports_only_earlier_ones() {
    let mut back = Vec::new();
    for (index, stage) in STAGES.iter().enumerate() {
        let later: Vec<&str> = STAGES[index + 1..].iter().copied().chain(ABOVE).collect();
        let mut files = Vec::new();
        let dir = Path::new("src/lab").join(stage);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(dir.with_extension("rs"));
        }
        for file in files {
            let module = module_of(&file);
            let text = std::fs::read_to_string(&file).unwrap();
            for (number, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for named in lab_modules_named(line, &module) {
                    if later.contains(&named.as_str()) {
                        back.push(format!(
                            "{}:{}: {stage} -> {named}",
                            file.display(),
                            number + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        back.is_empty(),
        "arrows pointing back:\n{}",
        back.join("\n")
    );
}

#[test]
fn the_reader_resolves_super_and_crate_paths() {
    let links = module_of(Path::new("src/lab/builder/links.rs"));
    assert_eq!(links, ["lab", "builder", "links"]);
    assert_eq!(
        lab_modules_named("use super::super::report::Report;", &links),
        ["report"]
    );
    assert!(lab_modules_named("use super::netns::NetnsError;", &links).is_empty());
    let builder = module_of(Path::new("src/lab/builder/mod.rs"));
    assert_eq!(
        lab_modules_named("use super::plan::Plan;", &builder),
        ["plan"]
    );
    assert_eq!(
        lab_modules_named(
            "x: crate::lab::judge::Verdict, y: crate::lab::plan::Plan",
            &links
        ),
        ["judge", "plan"]
    );
}
