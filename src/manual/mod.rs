//! What sdss tells shells and `man` about itself: completion scripts and roff
//! man pages, both generated from the command line's own definition, so they
//! never drift from it. Hidden commands (the lab's emulator daemon) are left out.

use std::io;
use std::path::{Path, PathBuf};

use clap_mangen::Man;

mod markdown;
mod sections;

/// The lab file's documentation, whose format part is `sdss-lab-file(5)`.
const LAB_README: &str = include_str!("../../labs/README.md");

pub use clap_complete::Shell;

/// The completion script of `command` for `shell`.
pub fn completions(shell: Shell, mut command: clap::Command) -> Vec<u8> {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    script
}

/// The man page of `command` (roff, section 1); its subcommands are listed by
/// name, each with a page of its own from [`write_pages`].
pub fn page(command: clap::Command) -> Vec<u8> {
    let command = prepared(command);
    render(&Man::new(command.clone()), &command)
}

/// The lab file's page, `sdss-lab-file(5)` (roff), from labs/README.md.
pub fn lab_file_page(source: &str) -> String {
    markdown::lab_file_page(LAB_README, source)
}

/// `man`'s page of `command`: clap's sections, then EXIT STATUS,
/// ENVIRONMENT, FILES and EXAMPLES, then the version.
fn render(man: &Man, command: &clap::Command) -> Vec<u8> {
    let mut page = Vec::new();
    let has_arguments = command.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = command.get_subcommands().any(|s| !s.is_hide_set());
    let rendered: io::Result<()> = (|| {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        if has_arguments {
            man.render_options_section(&mut page)?;
        }
        if has_subcommands {
            man.render_subcommands_section(&mut page)?;
        }
        let name = command.get_display_name().unwrap_or(command.get_name());
        page.extend(sections::render(name, command).into_bytes());
        if command.get_version().is_some() {
            man.render_version_section(&mut page)?;
        }
        Ok(())
    })();
    rendered.expect("writing to memory cannot fail");
    // Each section rendered alone starts with roff's quote setup: keep the first.
    let text = String::from_utf8_lossy(&page).into_owned();
    let setup = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    match text.find(setup) {
        Some(at) => {
            let (head, rest) = text.split_at(at + setup.len());
            format!("{head}{}", rest.replace(setup, "")).into_bytes()
        }
        None => text.into_bytes(),
    }
}

/// Writes one man page per command into `dir`, which must exist: `command`
/// itself and every visible subcommand at every depth (`sdss.1`, `sdss-lab.1`,
/// `sdss-lab-up.1`, ...). Returns the paths written, parents first.
pub fn write_pages(command: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let command = prepared(command);
    // Every page's footer names sdss, not the subcommand (`sdss 0.1.0`).
    let source = format!(
        "{} {}",
        command.get_name(),
        command.get_version().unwrap_or_default()
    );
    let mut written = Vec::new();
    write_tree(&command, &source, dir, &mut written)?;
    // Section 5 beside section 1: into `man5` when the folder is `man1`.
    let formats = match dir.file_name() {
        Some(name) if name == "man1" => dir.with_file_name("man5"),
        _ => dir.to_owned(),
    };
    std::fs::create_dir_all(&formats)?;
    let path = formats.join("sdss-lab-file.5");
    std::fs::write(&path, lab_file_page(&source))?;
    written.push(path);
    Ok(written)
}

/// `command` built (so subcommands carry their full names, `sdss-lab-up`) and
/// without clap's `help` subcommand, which is no command of sdss's.
fn prepared(command: clap::Command) -> clap::Command {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    command
}

fn write_tree(
    command: &clap::Command,
    source: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let man = Man::new(command.clone()).source(source);
    let path = dir.join(man.get_filename());
    std::fs::write(&path, render(&man, command))?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub, source, dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> clap::Command {
        clap::Command::new("demo")
            .version("1.0")
            .about("A demo")
            .subcommand(
                clap::Command::new("lab")
                    .about("Labs")
                    .subcommand(clap::Command::new("up").about("Up")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn the_page_is_roff_and_lists_the_visible_subcommands() {
        let page = String::from_utf8(page(demo())).unwrap();
        assert!(page.starts_with(".ie") || page.contains("\n.TH "), "{page}");
        assert!(page.contains("demo\\-lab(1)"), "{page}");
        assert!(!page.contains("secret"), "{page}");
        assert!(!page.contains("demo\\-help"), "{page}");
    }

    #[test]
    fn one_page_per_visible_command_at_every_depth() {
        let dir = std::env::temp_dir().join(format!("sdss-manual-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = write_pages(demo(), &dir);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        let written: Vec<String> = written
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            written,
            ["demo.1", "demo-lab.1", "demo-lab-up.1", "sdss-lab-file.5"]
        );
        let mut names = names;
        names.sort();
        assert_eq!(
            names,
            ["demo-lab-up.1", "demo-lab.1", "demo.1", "sdss-lab-file.5"]
        );
    }

    #[test]
    fn completions_name_the_subcommands() {
        let script = String::from_utf8(completions(Shell::Bash, demo())).unwrap();
        assert!(
            script.contains("complete") && script.contains("lab"),
            "{script}"
        );
        assert!(script.contains("up"), "{script}");
    }
}
