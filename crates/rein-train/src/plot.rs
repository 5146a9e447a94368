//! Learning-curve PNGs: a line chart of one `metrics.csv` column against another, drawn on
//! rein-core's rasteriser and encoded with the `png` crate.
//!
//! Written here rather than with plotters: plotters needs a font file for any text, which a
//! fresh machine may not have; the chart needs only digits and a few letters, drawn from the
//! 5 x 7 bitmap font below.

use rein_core::canvas::Canvas;
use std::io::{Error, ErrorKind, Result};
use std::path::Path;

const W: usize = 800;
const H: usize = 500;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const BOTTOM: f64 = 60.0;
const TOP: f64 = 40.0;

/// 5 x 7 glyphs, top row first; `#` is ink.
fn glyph(c: char) -> Option<[&'static str; 7]> {
    Some(match c {
        '0' => [
            " ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### ",
        ],
        '1' => [
            "  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        '2' => [
            " ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####",
        ],
        '3' => [
            "#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### ",
        ],
        '4' => [
            "   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # ",
        ],
        '5' => [
            "#####", "#    ", "#### ", "    #", "    #", "#   #", " ### ",
        ],
        '6' => [
            "  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### ",
        ],
        '7' => [
            "#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   ",
        ],
        '8' => [
            " ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### ",
        ],
        '9' => [
            " ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  ",
        ],
        '.' => [
            "     ", "     ", "     ", "     ", "     ", " ##  ", " ##  ",
        ],
        '-' => [
            "     ", "     ", "     ", "#####", "     ", "     ", "     ",
        ],
        'k' => [
            "#    ", "#    ", "#  # ", "# #  ", "##   ", "# #  ", "#  # ",
        ],
        'M' => [
            "#   #", "## ##", "# # #", "#   #", "#   #", "#   #", "#   #",
        ],
        's' => [
            "     ", "     ", " ####", "#    ", " ### ", "    #", "#### ",
        ],
        't' => [
            " #   ", " #   ", "#### ", " #   ", " #   ", " #  #", "  ## ",
        ],
        'e' => [
            "     ", "     ", " ### ", "#   #", "#####", "#    ", " ### ",
        ],
        // Lowercase letters with descenders: the bowl at x-height (rows 2-4), the descender
        // in rows 5-6, so that they do not read as capitals.
        'p' => [
            "     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    ",
        ],
        'r' => [
            "     ", "     ", "# ## ", "##  #", "#    ", "#    ", "#    ",
        ],
        'u' => [
            "     ", "     ", "#   #", "#   #", "#   #", "#  ##", " ## #",
        ],
        'n' => [
            "     ", "     ", "# ## ", "##  #", "#   #", "#   #", "#   #",
        ],
        'i' => [
            "  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        'o' => [
            "     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### ",
        ],
        'd' => [
            "    #", "    #", " ## #", "#  ##", "#   #", "#   #", " ####",
        ],
        'c' => [
            "     ", "     ", " ### ", "#    ", "#    ", "#   #", " ### ",
        ],
        'a' => [
            "     ", "     ", " ### ", "    #", " ####", "#   #", " ####",
        ],
        'l' => [
            " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### ",
        ],
        'g' => [
            "     ", "     ", " ####", "#   #", " ####", "    #", " ### ",
        ],
        'v' => [
            "     ", "     ", "#   #", "#   #", "#   #", " # # ", "  #  ",
        ],
        'm' => [
            "     ", "     ", "## # ", "# # #", "# # #", "#   #", "#   #",
        ],
        '(' => [
            "   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # ",
        ],
        ')' => [
            " #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   ",
        ],
        ' ' => ["     "; 7],
        _ => return None,
    })
}

/// Draws `text` with its top-left corner at (x, y_top) in y-up canvas coordinates.
fn text(c: &mut Canvas, x: f64, y_top: f64, s: &str, scale: f64) {
    for (k, ch) in s.chars().enumerate() {
        let Some(g) = glyph(ch) else { continue };
        for (row, line) in g.iter().enumerate() {
            for (col, px) in line.chars().enumerate() {
                if px == '#' {
                    let x0 = x + (k as f64 * 6.0 + col as f64) * scale;
                    let y0 = y_top - (row as f64 + 1.0) * scale;
                    c.fill_polygon(
                        &[
                            (x0, y0),
                            (x0 + scale, y0),
                            (x0 + scale, y0 + scale),
                            (x0, y0 + scale),
                        ],
                        [0, 0, 0],
                    );
                }
            }
        }
    }
}

fn text_width(s: &str, scale: f64) -> f64 {
    s.chars().count() as f64 * 6.0 * scale
}

/// Compact tick label: 12000 -> "12k", 1500000 -> "1.5M", 0.25 -> "0.25".
fn label(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    s.replace(".0M", "M")
}

/// About five round tick values covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + 1e-9 * span {
        // Snap rounding noise (e.g. -0.0000001) to zero.
        out.push(if t.abs() < 1e-9 * span { 0.0 } else { t });
        t += step;
    }
    out
}

/// Writes a PNG line chart of `points` (x, y); NaN ys are skipped.
pub fn line_chart(path: &Path, points: &[(f64, f64)], x_title: &str, y_title: &str) -> Result<()> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    let mut c = Canvas::new(W, H);
    let (x0, x1) = (LEFT, W as f64 - RIGHT);
    let (y0, y1) = (BOTTOM, H as f64 - TOP);
    let (mut xmin, mut xmax) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.0), a.1.max(p.0))
    });
    let (mut ymin, mut ymax) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.1), a.1.max(p.1))
    });
    if pts.is_empty() {
        (xmin, xmax, ymin, ymax) = (0.0, 1.0, 0.0, 1.0);
    }
    if xmax <= xmin {
        xmax = xmin + 1.0;
    }
    if ymax <= ymin {
        (ymin, ymax) = (ymin - 1.0, ymax + 1.0);
    }
    let pad = 0.05 * (ymax - ymin);
    let (ymin, ymax) = (ymin - pad, ymax + pad);
    let sx = |x: f64| x0 + (x - xmin) / (xmax - xmin) * (x1 - x0);
    let sy = |y: f64| y0 + (y - ymin) / (ymax - ymin) * (y1 - y0);
    for t in ticks(ymin, ymax) {
        c.line((x0, sy(t)), (x1, sy(t)), 1.0, [225, 225, 225]);
        let l = label(t);
        text(&mut c, x0 - 8.0 - text_width(&l, 1.5), sy(t) + 5.0, &l, 1.5);
    }
    for t in ticks(xmin, xmax) {
        c.line((sx(t), y0), (sx(t), y1), 1.0, [225, 225, 225]);
        let l = label(t);
        text(&mut c, sx(t) - text_width(&l, 1.5) / 2.0, y0 - 8.0, &l, 1.5);
    }
    c.line((x0, y0), (x1, y0), 1.5, [0, 0, 0]);
    c.line((x0, y0), (x0, y1), 1.5, [0, 0, 0]);
    let curve: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (sx(x), sy(y))).collect();
    c.polyline(&curve, 2.0, [31, 119, 180]);
    text(
        &mut c,
        (x0 + x1) / 2.0 - text_width(x_title, 2.0) / 2.0,
        28.0,
        x_title,
        2.0,
    );
    text(&mut c, 10.0, H as f64 - 10.0, y_title, 2.0);
    let frame = c.into_frame();
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(
        std::io::BufWriter::new(file),
        frame.width as u32,
        frame.height as u32,
    );
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let png_error = |e: png::EncodingError| Error::other(format!("{}: {e}", path.display()));
    let mut w = enc.write_header().map_err(png_error)?;
    w.write_image_data(&frame.data).map_err(png_error)
}

/// Plots column `y_col` of `dir/metrics.csv` against `x_col` into `dir/file`.
pub fn csv_curve(
    dir: &Path,
    file: &str,
    (x_col, y_col): (&str, &str),
    (x_title, y_title): (&str, &str),
) -> Result<()> {
    let text_csv = std::fs::read_to_string(dir.join("metrics.csv"))?;
    let mut lines = text_csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidData,
                format!("{}: no column {name}", dir.join("metrics.csv").display()),
            )
        })
    };
    let (xi, yi) = (column(x_col)?, column(y_col)?);
    let pts: Vec<(f64, f64)> = lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.get(xi)?.parse().ok()?, f.get(yi)?.parse().ok()?))
        })
        .collect();
    line_chart(&dir.join(file), &pts, x_title, y_title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_labels_are_round() {
        assert_eq!(ticks(0.0, 100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(label(20000.0), "20k");
        assert_eq!(label(1_500_000.0), "1.5M");
        assert_eq!(label(-150.0), "-150");
        assert_eq!(label(0.25), "0.25");
    }

    #[test]
    fn chart_is_a_valid_png() {
        let dir = std::env::temp_dir().join(format!("rein-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.png");
        let pts: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64 * 1000.0, (i as f64).sqrt() * 10.0))
            .collect();
        line_chart(&p, &pts, "steps", "episodic return").unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
