//! `sdss completions` and `sdss man`: generated from the command line, they name
//! its commands, and `man` itself renders the pages.

mod lab_support;

use lab_support::{run, text, Scratch};

#[test]
fn bash_completions_name_the_subcommands() {
    let output = run(&["completions", "bash"]);
    assert!(output.status.success(), "{}", text(&output));
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.contains("complete -F _sdss"), "{script}");
    for word in ["node", "lab", "completions", "man", "status", "grade"] {
        assert!(script.contains(word), "no {word} in {script}");
    }
}

#[test]
fn every_shell_has_a_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let output = run(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", text(&output));
        assert!(!output.stdout.is_empty(), "{shell}: empty script");
    }
    let unknown = run(&["completions", "nosh"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
}

#[test]
fn the_man_page_is_roff_with_the_subcommands() {
    let output = run(&["man"]);
    assert!(output.status.success(), "{}", text(&output));
    let page = String::from_utf8(output.stdout).unwrap();
    assert!(page.lines().any(|l| l.starts_with(".TH sdss 1")), "{page}");
    for sub in ["node", "lab", "completions", "man"] {
        assert!(
            page.contains(&format!("sdss\\-{sub}(1)")),
            "no {sub} in {page}"
        );
    }
    assert!(!page.contains("emulator(1)"), "a hidden command leaked");
    assert_renders(&page);
}

#[test]
fn man_dir_writes_one_page_per_command() {
    let scratch = Scratch::new("man-dir");
    let dir = scratch.0.join("man1");
    let output = run(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let listed = String::from_utf8(output.stdout).unwrap();
    for page in [
        "sdss.1",
        "sdss-node.1",
        "sdss-lab.1",
        "sdss-lab-status.1",
        "sdss-lab-set.1",
    ] {
        let path = dir.join(page);
        assert!(listed.contains(path.to_str().unwrap()), "{listed}");
        let roff = std::fs::read_to_string(&path).unwrap();
        assert!(roff.contains(".TH "), "{page}: {roff}");
    }
    let status = std::fs::read_to_string(dir.join("sdss-lab-status.1")).unwrap();
    assert!(status.contains("List running labs"), "{status}");
    assert_renders(&status);
    // Section 5 goes beside section 1.
    let lab_file = scratch.0.join("man5/sdss-lab-file.5");
    assert!(listed.contains(lab_file.to_str().unwrap()), "{listed}");
}

#[test]
fn pages_say_exit_status_environment_files_and_examples() {
    let page = String::from_utf8(run(&["man"]).stdout).unwrap();
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXAMPLES",
    ] {
        assert!(page.contains(section), "no {section} in {page}");
    }
    // The options' variables are found on the command, at every depth.
    for variable in [
        "SDSS_INTERVAL",
        "SDSS_LAB_DELAY_BACKEND",
        "SDSS_STATE_DIR",
        "NO_COLOR",
    ] {
        assert!(page.contains(variable), "no {variable} in {page}");
    }
    assert!(
        page.contains("\\fB126, 127\\fR"),
        "lab exec's 126 and 127: {page}"
    );
    assert_renders(&page);
}

#[test]
fn the_lab_file_format_is_a_page_of_section_5() {
    let output = run(&["man", "--lab-file"]);
    assert!(output.status.success(), "{}", text(&output));
    let page = String::from_utf8(output.stdout).unwrap();
    assert!(page.starts_with(".TH sdss\\-lab\\-file 5 "), "{page}");
    for part in [
        ".SH \"FORMAT\"",
        "tolerance_percent",
        ".SH \"TIMELINES: EVENTS AND EXPECTATIONS\"",
    ] {
        assert!(page.contains(part), "no {part} in the page");
    }
    assert_renders(&page);
}

/// `man -l` renders `page` without error or warning, where man-db is installed.
fn assert_renders(page: &str) {
    let Ok(version) = std::process::Command::new("man").arg("--version").output() else {
        eprintln!("not rendering the page: no `man` on this machine");
        return;
    };
    if !String::from_utf8_lossy(&version.stdout).starts_with("man ") {
        eprintln!("not rendering the page: `man --version` did not answer like man-db");
        return;
    }
    let scratch = Scratch::new("man-render");
    let path = scratch.lab("sdss.1", page);
    let output = std::process::Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&path)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(output.stderr.is_empty(), "{}", text(&output));
    let rendered = String::from_utf8_lossy(&output.stdout);
    assert!(
        rendered.contains("NAME") && rendered.contains("SYNOPSIS"),
        "{rendered}"
    );
}
