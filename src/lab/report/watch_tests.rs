use super::*;
use crate::lab::judge::delays::Summary;

/// A lab of `n` nodes named n0, n1, ... (tolerance 0.5 ms, 5%).
fn lab(n: usize) -> Plan {
    let mut text = "name = \"w\"\n[verify]\ntolerance = \"0.5ms\"\n".to_owned();
    for i in 0..n {
        text.push_str(&format!("[[node]]\nname = \"n{i}\"\n"));
    }
    Plan::from_text(&text)
}

/// Every pair of `plan` with the error `error(index)` in ms (`None`: not measured).
fn measured(plan: &Plan, error: impl Fn(usize) -> Option<f64>) -> Verification {
    let pairs: Vec<PairResult> = plan
        .expected
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let expected_ms = p.impairment.delay.as_secs_f64() * 1e3;
            let error_ms = error(i);
            PairResult {
                from: p.from.clone(),
                to: p.to.clone(),
                expected_ms,
                measured_ms: error_ms.map(|e| expected_ms + e),
                error_ms,
                floor_ms: None,
                tolerance_ms: 0.5,
                samples: 5,
                total_samples: 6,
                set_aside: 0,
                verdict: match error_ms {
                    Some(e) if e.abs() <= 0.5 => PairVerdict::Pass,
                    _ => PairVerdict::Fail,
                },
                reason: error_ms.is_none().then(|| "not discovered".to_owned()),
                p95_ms: None,
                max_ms: None,
                spread: false,
                series: Vec::new(),
            }
        })
        .collect();
    Verification {
        summary: Summary {
            pairs: pairs.len(),
            ..Summary::default()
        },
        pairs,
        samples_wanted: 5,
        set_aside: None,
    }
}

fn text(line: &Line) -> String {
    line.iter().map(|s| s.text.as_str()).collect()
}

fn fits(frame: &Frame, size: Size) {
    assert!(
        frame.lines.len() <= usize::from(size.rows),
        "{}",
        frame.plain()
    );
    for line in &frame.lines {
        assert!(
            text(line).chars().count() <= usize::from(size.cols),
            "too wide: {:?}",
            text(line)
        );
    }
}

#[test]
fn pairs_are_classed_by_their_error_against_the_tolerance() {
    let plan = lab(3);
    // Six pairs: within, within 2x, beyond, not measured, within, beyond.
    let errors = [
        Some(0.2),
        Some(-0.8),
        Some(3.0),
        None,
        Some(-0.5),
        Some(-1.01),
    ];
    let verification = measured(&plan, |i| errors[i]);
    let classes: Vec<Class> = verification.pairs.iter().map(classify).collect();
    use Class::*;
    assert_eq!(classes, [Pass, Near, Off, Unmeasured, Pass, Off]);

    let size = Size {
        cols: 100,
        rows: 30,
    };
    let frame = render(&plan, &verification, 12.34, size);
    fits(&frame, size);
    let plain = frame.plain();
    assert!(
        plain.starts_with(
            "lab w at t=12.3s: 6 pairs, 2 within tolerance, 1 within 2x, 2 beyond, 1 not measured"
        ),
        "{plain}"
    );
    // Numbers in ms, each cell coloured by its class, marked for plain text.
    let cells: Vec<&Span> = frame
        .lines
        .iter()
        .flatten()
        .filter(|s| s.class.is_some())
        .collect();
    let find = |needle: &str| {
        cells
            .iter()
            .find(|s| s.text.trim() == needle)
            .unwrap_or_else(|| panic!("no cell {needle:?} in\n{plain}"))
            .class
    };
    assert_eq!(find("0.2"), Some(Pass));
    assert_eq!(find("-0.8~"), Some(Near));
    assert_eq!(find("3.0!"), Some(Off));
    assert_eq!(find("?"), Some(Unmeasured));
    assert!(
        plain.contains("  B \\ A       n0       n1       n2\n"),
        "{plain}"
    );
    // The worst pairs: the furthest off first, the unmeasured last, with reasons.
    let worst = plain
        .split("worst pairs (4 not within tolerance):\n")
        .nth(1)
        .unwrap();
    let order: Vec<&str> = worst
        .lines()
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    let p = &verification.pairs;
    let name = |i: usize| format!("{} -> {}", p[i].from, p[i].to);
    assert_eq!(order, [name(2), name(5), name(1), name(3)], "{plain}");
    assert!(worst.contains("not discovered"), "{plain}");
    assert!(!plain.contains('\x1b'));
}

#[test]
fn a_big_lab_gets_a_compact_grid_that_fits() {
    let plan = lab(100);
    let verification = measured(&plan, |i| match i % 4 {
        0 => Some(0.1),
        1 => Some(0.9),
        2 => Some(7.0),
        _ => None,
    });
    let size = Size {
        cols: 120,
        rows: 40,
    };
    let frame = render(&plan, &verification, 3.0, size);
    fits(&frame, size);
    let plain = frame.plain();
    assert!(plain.contains("one cell per pair"), "{plain}");
    assert!(
        plain.contains("showing 29 of 100 rows, 100 of 100 columns"),
        "{plain}"
    );
    assert!(plain.contains("2475 beyond"), "{plain}");
    // A grid row: its index, its name, then one classed character per pair.
    let row = frame
        .lines
        .iter()
        .find(|l| text(l).starts_with("   7 n7 "))
        .unwrap();
    let cells: Vec<&Span> = row.iter().skip(1).collect();
    assert_eq!(cells.len(), 100);
    assert!(cells.iter().all(|s| s.text.chars().count() == 1));
    assert_eq!(cells[7].class, None, "the diagonal is no pair");
    for cell in cells.iter().filter(|s| s.class.is_some()) {
        assert_eq!(cell.text.chars().next(), cell.class.map(Class::mark));
    }
    // No numbers matrix, and the worst pairs fill what room is left.
    assert!(!plain.contains("B \\ A"), "{plain}");
    assert!(
        plain.contains("worst pairs (7425 not within tolerance):"),
        "{plain}"
    );
    assert_eq!(frame.lines.len(), 40);
    let last = frame.lines.last().map(text).unwrap_or_default();
    assert!(last.ends_with("off by +7.000 (tolerance 0.500)"), "{plain}");
}

#[test]
fn a_narrow_short_terminal_gets_what_fits() {
    let plan = lab(5);
    let verification = measured(&plan, |i| (i % 2 == 0).then_some(2.0));
    // Wide enough for the numbers: they are shown.
    let wide = Size { cols: 80, rows: 24 };
    assert!(render(&plan, &verification, 1.0, wide)
        .plain()
        .contains("B \\ A"));
    // Too narrow for them: the grid, cut to the width and the height.
    let narrow = Size { cols: 12, rows: 8 };
    let frame = render(&plan, &verification, 1.0, narrow);
    fits(&frame, narrow);
    assert_eq!(frame.lines.len(), 8);
    let rows: Vec<String> = frame.lines.iter().map(text).collect();
    assert_eq!(rows[0], "lab w at t=1");
    assert_eq!(rows[2], "showing 2 of", "{rows:?}");
    assert_eq!(rows[5], "  0 n0  !?!?", "{rows:?}");
    // A terminal with no room at all: nothing, and no panic.
    let none = render(&plan, &verification, 1.0, Size { cols: 0, rows: 0 });
    assert!(none.lines.is_empty());
    let one = render(&plan, &verification, 1.0, Size { cols: 3, rows: 1 });
    assert_eq!(one.plain(), "lab\n");
}
