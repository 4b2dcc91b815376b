//! The HTML report in a real browser: `sdss lab run labs/five-nodes.toml --html F`
//! on the emulator, then headless Chromium (no network: the test runs in
//! scripts/test.sh's private namespace, and its flags turn background traffic
//! off) loads the page, its DOM must hold every part, its console no error, and
//! its screenshot is kept in the target directory for CI's log.

mod lab_support;

use std::path::Path;

use lab_support::browser::{browse, chromium, console_errors};
use lab_support::*;

#[test]
fn the_five_node_report_renders_in_a_browser() {
    const TEST: &str = "the_five_node_report_renders_in_a_browser";
    if !sandboxed(TEST) {
        return;
    }
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("SDSS_REQUIRE_ROOT_TESTS").is_none(),
            "{TEST}: chromium is missing and SDSS_REQUIRE_ROOT_TESTS is set"
        );
        eprintln!("skipping {TEST}: chromium is not installed (apt-get install chromium)");
        return;
    };
    let scratch = Scratch::new("report");
    let lab = unique("html");
    let file = shipped(&scratch, "five-nodes.toml", &lab);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let page = target.join("lab-report.html");
    let screenshot = target.join("lab-report.png");
    let _ = std::fs::remove_file(&page);
    let _ = std::fs::remove_file(&screenshot);
    let (output, report) = run_on_emulator(&file, &["--html", page.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_clean(&lab, None);
    assert_eq!(report.summary.passed, 20, "{}", report.render());

    let profile = scratch.0.join("profile");
    let dom = browse(&browser, &page, &profile, &["--dump-dom".to_owned()]);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success() && html.contains("</html>"),
        "chromium: {:?}\n{}",
        dom.status,
        String::from_utf8_lossy(&dom.stderr)
    );
    for expected in [
        format!("<h1 id=\"title\">lab {lab} "),
        "id=\"verdict\">PASS</span>".to_owned(),
        "<section id=\"topology\"><svg".to_owned(),
        "class=\"heatmap expected\"".to_owned(),
        "class=\"heatmap measured\"".to_owned(),
        "class=\"heatmap error\"".to_owned(),
        "<div class=\"multiples\" id=\"samples\">".to_owned(),
        "paint-order=\"stroke\">40ms</text>".to_owned(),
        "paint-order=\"stroke\">mean error ".to_owned(),
        "<table id=\"pairs\">".to_owned(),
        "<th>p95</th><th>max</th>".to_owned(),
        "id=\"made\">Made by sdss ".to_owned(),
    ] {
        assert!(
            html.contains(&expected),
            "{expected} is not in the DOM (kept in {})",
            page.display()
        );
    }
    assert_eq!(
        html.matches("<g class=\"node\">").count(),
        5,
        "{}",
        page.display()
    );
    assert_eq!(
        html.matches("<rect class=\"cell\"").count(),
        60,
        "{}",
        page.display()
    );
    assert_eq!(
        html.matches("class=\"samples\"").count(),
        20,
        "{}",
        page.display()
    );
    assert!(!html.contains("<script"));
    assert_eq!(console_errors(&dom), Vec::<String>::new());

    let shot = browse(
        &browser,
        &page,
        &profile,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1400,1800".to_owned(),
        ],
    );
    assert_eq!(console_errors(&shot), Vec::<String>::new());
    let png = std::fs::read(&screenshot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}): {}",
            screenshot.display(),
            String::from_utf8_lossy(&shot.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    println!(
        "lab report page: {}\nlab report screenshot: {}",
        page.display(),
        screenshot.display()
    );
}
