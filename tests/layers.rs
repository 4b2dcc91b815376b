//! The lab's stages import only earlier ones: file -> plan -> builder ->
//! scenario -> judge -> report, with `lifecycle` and `hosts` composing them
//! from above. Read from the source, so an arrow pointing back fails here
//! before anyone has to find it in a drawing.

use std::path::{Path, PathBuf};

/// The stages, earliest first.
const STAGES: [&str; 6] = ["file", "plan", "builder", "scenario", "judge", "report"];

/// What composes the stages: no stage may import it.
const ABOVE: [&str; 6] = ["lifecycle", "hosts", "watch", "class", "live", "logs"];

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

/// Every file of `src/`, by its module path.
fn files_by_module() -> std::collections::HashMap<Vec<String>, PathBuf> {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files
        .into_iter()
        .map(|f| {
            let mut module = module_of(&f);
            if module.last().is_some_and(|p| p == "lib" || p == "main") {
                module.pop();
            }
            (module, f)
        })
        .collect()
}

/// The text of a file without its comments (a doc comment may name any
/// path) and its tests (their `super` is the file itself).
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
    code.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths written in `code`, each from its start (`crate`, `super`,
/// `self` or a child module), braces expanded: `super::{a::B, C}` gives
/// `super::a::B` and `super::C`.
fn paths_in(code: &str, children: &[String]) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut paths = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_ident(chars[i]) || (i > 0 && (is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let start: String = chars[i..].iter().take_while(|c| is_ident(**c)).collect();
        let rooted = ["crate", "super", "self"].contains(&start.as_str());
        if !rooted && !children.contains(&start) {
            i += start.len();
            continue;
        }
        i = read_path(&chars, i, Vec::new(), &mut paths);
    }
    paths
}

/// Reads the path at `i` (after `prefix`) into `out`; returns where it ends.
fn read_path(
    chars: &[char],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut path = prefix;
    loop {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i < chars.len() && chars[i] == '{' {
            i += 1;
            loop {
                while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
                    i += 1;
                }
                if i >= chars.len() || chars[i] == '}' {
                    return i + 1;
                }
                i = read_path(chars, i, path.clone(), out);
                // Skip `as Name` and anything up to the next item.
                while i < chars.len() && chars[i] != ',' && chars[i] != '}' {
                    i += 1;
                }
            }
        }
        let ident: String = chars[i..].iter().take_while(|c| is_ident(**c)).collect();
        if ident.is_empty() {
            break;
        }
        i += ident.len();
        path.push(ident);
        if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            break;
        }
    }
    if path.len() > 1 {
        out.push(path);
    }
    i
}

/// The child modules `code` declares (`mod x;`) and the names it re-exports
/// from them (`pub use x::{A, B}`): name -> child.
fn children_and_reexports(code: &str) -> (Vec<String>, std::collections::HashMap<String, String>) {
    let mut children = Vec::new();
    for line in code.lines() {
        let line = line.trim();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
        if let Some(name) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) {
            children.push(name.trim().to_owned());
        }
    }
    let mut reexports = std::collections::HashMap::new();
    for path in paths_in(code, &children) {
        if children.contains(&path[0]) {
            if let Some(name) = path.last() {
                reexports.insert(name.clone(), path[0].clone());
            }
        }
    }
    (children, reexports)
}

/// No file reaches itself through the files it imports from: the circles of
/// files the stages' folders hid (html <-> graph, fakes <-> probe, ...).
#[test]
fn no_two_files_import_each_other_in_a_circle() {
    use std::collections::{BTreeMap, BTreeSet};
    let files = files_by_module();
    let by_file: BTreeMap<&PathBuf, &Vec<String>> = files.iter().map(|(m, f)| (f, m)).collect();
    let code: BTreeMap<&PathBuf, String> = by_file.keys().map(|f| (*f, code_of(f))).collect();
    let parsed: BTreeMap<&PathBuf, _> = code
        .iter()
        .map(|(f, c)| (*f, children_and_reexports(c)))
        .collect();
    let mut edges: BTreeMap<&PathBuf, BTreeSet<&PathBuf>> = BTreeMap::new();
    for (file, module) in &by_file {
        let (children, _) = &parsed[file];
        for path in paths_in(&code[file], children) {
            let mut absolute: Vec<String> = Vec::new();
            let mut rest = &path[..];
            match path[0].as_str() {
                "crate" => rest = &path[1..],
                "self" => {
                    absolute = module.to_vec();
                    rest = &path[1..];
                }
                "super" => {
                    let ups = path.iter().take_while(|p| *p == "super").count();
                    absolute = module[..module.len().saturating_sub(ups)].to_vec();
                    rest = &path[ups..];
                }
                _ => absolute = module.to_vec(),
            }
            absolute.extend(rest.iter().cloned());
            let Some(known) = (0..=absolute.len())
                .rev()
                .find(|n| files.contains_key(&absolute[..*n]))
            else {
                continue;
            };
            let mut target = &files[&absolute[..known]];
            // A name a module re-exports is its child's.
            if let Some(name) = absolute.get(known) {
                if let Some(child) = parsed[target].1.get(name) {
                    let mut via = absolute[..known].to_vec();
                    via.push(child.clone());
                    if let Some(file) = files.get(&via) {
                        target = file;
                    }
                }
            }
            // A folder's mod.rs and the files in it hold one module between
            // them (its types, their parts): arrows between them are no circle.
            let inside = |a: &Path, b: &Path| {
                a.file_name().is_some_and(|n| n == "mod.rs")
                    && a.parent().is_some_and(|dir| b.starts_with(dir))
            };
            if target != *file && !inside(target, file) && !inside(file, target) {
                edges.entry(file).or_default().insert(target);
            }
        }
    }
    // A file that reaches itself through the others is in a circle.
    let mut circles = BTreeSet::new();
    for start in by_file.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&PathBuf> = edges.get(start).into_iter().flatten().copied().collect();
        while let Some(next) = stack.pop() {
            if next == *start {
                circles.insert(start.display().to_string());
                break;
            }
            if seen.insert(next) {
                stack.extend(edges.get(next).into_iter().flatten().copied());
            }
        }
    }
    let shown: Vec<String> = edges
        .iter()
        .filter(|(f, _)| circles.contains(&f.display().to_string()))
        .map(|(f, to)| format!("{} -> {:?}", f.display(), to))
        .collect();
    assert!(
        circles.is_empty(),
        "files in a circle of imports:\n{}",
        shown.join("\n")
    );
}
