//! The class page in a real browser: `sdss::lab::class::page::page` on
//! synthetic results (no lab, no root), then headless Chromium (a fresh
//! profile, background traffic off and every host name unresolvable, so
//! nothing is fetched) loads it; its DOM must hold the histogram, the rates
//! and the evidence, its console no error, and its screenshot is kept in the
//! target directory, and in `$SDSS_TEST_REPORTS` when set, for CI's log.

use std::path::{Path, PathBuf};

mod lab_support;

use lab_support::browser::{browse, chromium, console_errors};
use sdss::lab::class::page::page;
use sdss::lab::class::score::{Finding, FindingKind, SubmissionResult, Weights};
use sdss::lab::judge::{Check, Verdict};

fn requirements() -> Vec<(String, String)> {
    ["server.utc", "server.encoding", "client.prompt"]
        .iter()
        .map(|id| ((*id).to_owned(), format!("{id} holds")))
        .collect()
}

/// A submission with these verdicts, in the requirements' order.
fn graded(name: &str, verdicts: &[Verdict]) -> SubmissionResult {
    let checks = requirements()
        .into_iter()
        .zip(verdicts)
        .map(|((id, title), verdict)| Check {
            evidence: format!("{name}: {id} seen {verdict:?}"),
            id,
            title,
            verdict: *verdict,
        })
        .collect();
    SubmissionResult::new(
        name.to_owned(),
        vec!["python3".to_owned(), "solution.py".to_owned()],
        42,
        Vec::new(),
        checks,
        &Weights::default(),
    )
}

fn class() -> Vec<SubmissionResult> {
    use Verdict::{Fail, Pass, Warn};
    let mut results = vec![
        graded("alice", &[Pass, Pass, Pass]),
        graded("bob", &[Pass, Warn, Fail]),
        graded("carol", &[Pass, Fail, Fail]),
        graded("<script>dave</script>", &[Pass, Pass, Warn]),
    ];
    results.push(SubmissionResult::ungraded(
        "erin".to_owned(),
        Vec::new(),
        42,
        Finding {
            kind: FindingKind::NothingToStart,
            detail: "no solution.py".to_owned(),
        },
        &requirements(),
        &Weights::default(),
    ));
    results
}

#[test]
fn the_class_page_renders_in_a_browser() {
    const TEST: &str = "the_class_page_renders_in_a_browser";
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("SDSS_REQUIRE_ROOT_TESTS").is_none(),
            "{TEST}: chromium is missing and SDSS_REQUIRE_ROOT_TESTS is set"
        );
        eprintln!("skipping {TEST}: chromium is not installed (apt-get install chromium)");
        return;
    };
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let file = target.join("class-page.html");
    let screenshot = target.join("class-page.png");
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join("class-page-profile");
    let _ = std::fs::remove_file(&screenshot);
    std::fs::write(&file, page(&class(), &requirements(), 42)).unwrap();

    let dom = browse(&browser, &file, &profile, &["--dump-dom".to_owned()]);
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success() && html.contains("</html>"),
        "chromium: {:?}\n{}",
        dom.status,
        String::from_utf8_lossy(&dom.stderr)
    );
    for expected in [
        // The histogram: alice and dave in the last bin (100, 83.3), bob at
        // 50, carol at 33.3, erin at 0.
        "<section id=\"distribution\"><svg",
        "data-bin=\"90\" data-count=\"1\"",
        "data-bin=\"80\" data-count=\"1\"",
        "data-bin=\"50\" data-count=\"1\"",
        "data-bin=\"30\" data-count=\"1\"",
        "data-bin=\"0\" data-count=\"1\"",
        // The rates: server.utc passed by four of five, server.encoding by two.
        "<tr data-check=\"server.utc\">",
        "<td class=\"passed\">4</td><td class=\"warned\">0</td><td class=\"failed\">1</td>",
        "<td class=\"passed\">2</td><td class=\"warned\">1</td><td class=\"failed\">2</td>",
        " 80%</td>",
        " 40%</td>",
        // A checklist's evidence and an ungraded one's finding.
        "<td class=\"evidence\">bob: server.encoding seen Warn</td>",
        "NothingToStart: no solution.py",
        "<td class=\"evidence\">not graded: no solution.py</td>",
        "<b>&lt;script&gt;dave&lt;/script&gt;</b>",
    ] {
        assert!(
            html.contains(expected),
            "{expected} is not in the DOM (kept in {})",
            file.display()
        );
    }
    assert_eq!(html.matches("<details class=\"submission\"").count(), 5);
    assert_eq!(html.matches("<rect class=\"bar\" data-bin=").count(), 10);
    assert!(!html.contains("<script"), "no script");
    assert_eq!(console_errors(&dom), Vec::<String>::new());

    let shot = browse(
        &browser,
        &file,
        &profile,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1200,1400".to_owned(),
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
    if let Some(dir) = std::env::var_os("SDSS_TEST_REPORTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&screenshot, dir.join("class-page.png")).unwrap();
        std::fs::copy(&file, dir.join("class-page.html")).unwrap();
    }
    println!(
        "class page: {}\nclass page screenshot: {}",
        file.display(),
        screenshot.display()
    );
}
