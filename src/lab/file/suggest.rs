//! Candidates for a name that names nothing in the lab file: the closest
//! known one when close, then every known one.

/// What a misspelt name could have been: the closest known name (by edit
/// distance, when close), then every known one.
pub(super) fn one_of<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let known: Vec<&str> = known.into_iter().collect();
    if known.is_empty() {
        return "there is none".to_owned();
    }
    let closest = known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .min()
        .filter(|(distance, k)| {
            *distance <= (k.len() / 3).max(1) && *distance < k.len().min(name.len())
        });
    let listed = format!("expected one of {}", known.join(", "));
    match closest {
        Some((_, k)) => format!("did you mean {k:?}? {listed}"),
        None => listed,
    }
}

/// Levenshtein distance: names are short, so the quadratic table is tiny.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_name_is_suggested_and_a_far_one_is_not() {
        assert_eq!(
            one_of("sever", ["server", "client"]),
            "did you mean \"server\"? expected one of server, client"
        );
        assert_eq!(one_of("d", ["a", "b"]), "expected one of a, b");
        assert_eq!(one_of("x", []), "there is none");
        assert_eq!(edit_distance("cutt", "cut"), 1);
    }
}
