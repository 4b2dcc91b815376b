//! What the SVG pictures share. Their markup is built with `maud`, which
//! escapes every value it is given: no text reaches a page unescaped.

/// `value` with `places` decimals, as coordinates are written.
pub fn fixed(value: f64, places: usize) -> String {
    format!("{value:.places$}")
}
