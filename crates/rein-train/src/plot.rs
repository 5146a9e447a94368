//! Learning-curve PNGs: a line chart of one `metrics.csv` column against another, drawn on
//! rein-core's rasteriser, its text set in DejaVu Sans (embedded, `fonts/`) with `ab_glyph`,
//! and encoded with the `png` crate.
//!
//! Written here rather than with plotters: plotters finds fonts on the machine, which a fresh
//! machine may not have; the chart is one line, a grid and some text.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use rein_core::canvas::Canvas;
use rein_core::RgbFrame;
use std::io::{Error, ErrorKind, Result};
use std::path::Path;

const W: usize = 800;
const H: usize = 500;
const LEFT: f64 = 95.0;
const RIGHT: f64 = 25.0;
const BOTTOM: f64 = 60.0;
const TOP: f64 = 45.0;

/// DejaVu Sans 2.37 (Bitstream Vera licence, `fonts/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

fn font() -> Result<FontRef<'static>> {
    FontRef::try_from_slice(FONT).map_err(|e| Error::other(format!("the embedded font: {e}")))
}

/// `s` set at `px` pixels: its coverage (0..1), `width x height`, top row first.
struct TextImage {
    width: usize,
    height: usize,
    alpha: Vec<f32>,
}

fn rasterize(s: &str, px: f32) -> Result<TextImage> {
    let font = font()?;
    let scaled = font.as_scaled(PxScale::from(px));
    let ascent = scaled.ascent();
    let height = (ascent - scaled.descent()).ceil() as usize + 1;
    let (mut x, mut prev, mut glyphs) = (0.0f32, None, Vec::new());
    for c in s.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            x += scaled.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(px, ab_glyph::point(x, ascent)));
        x += scaled.h_advance(id);
        prev = Some(id);
    }
    let width = x.ceil() as usize + 1;
    let mut alpha = vec![0.0f32; width * height];
    for g in glyphs {
        let Some(outline) = font.outline_glyph(g) else {
            continue;
        };
        let b = outline.px_bounds();
        outline.draw(|gx, gy, c| {
            let (x, y) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
            if x >= 0 && y >= 0 && (x as usize) < width && (y as usize) < height {
                let a = &mut alpha[y as usize * width + x as usize];
                *a = a.max(c);
            }
        });
    }
    Ok(TextImage {
        width,
        height,
        alpha,
    })
}

/// Where a text goes: its box's left and top edge in frame pixels (row 0 at the top).
#[derive(Clone, Copy)]
enum Placement {
    Horizontal {
        left: f64,
        top: f64,
    },
    /// Turned 90 degrees counter-clockwise (reading upwards), for the y axis's title.
    Upwards {
        left: f64,
        top: f64,
    },
}

fn blit(frame: &mut RgbFrame, t: &TextImage, at: Placement, color: [u8; 3]) {
    let (fw, fh) = (frame.width as i64, frame.height as i64);
    for ty in 0..t.height {
        for tx in 0..t.width {
            let a = t.alpha[ty * t.width + tx];
            if a <= 0.0 {
                continue;
            }
            let (x, y) = match at {
                Placement::Horizontal { left, top } => {
                    (left as i64 + tx as i64, top as i64 + ty as i64)
                }
                Placement::Upwards { left, top } => (
                    left as i64 + ty as i64,
                    top as i64 + (t.width - 1 - tx) as i64,
                ),
            };
            if x < 0 || y < 0 || x >= fw || y >= fh {
                continue;
            }
            let i = ((y * fw + x) * 3) as usize;
            for (ch, &c) in frame.data[i..i + 3].iter_mut().zip(&color) {
                *ch = (f32::from(*ch) * (1.0 - a) + f32::from(c) * a).round() as u8;
            }
        }
    }
}

/// A tick label at the resolution of the tick spacing `step`, so that neighbouring labels
/// never read the same: 12000 -> "12k", 1250 (step 250) -> "1.25k", 0.25 -> "0.25".
fn label(v: f64, step: f64) -> String {
    let a = v.abs();
    let decimals = |unit: f64| -> usize {
        let mut d = 0;
        while d < 6 && ((step / unit) * 10f64.powi(d as i32)).fract().abs() > 1e-6 {
            d += 1;
        }
        d
    };
    if a >= 1e6 {
        format!("{:.*}M", decimals(1e6), v / 1e6)
    } else if a >= 1e4 {
        format!("{:.*}k", decimals(1e3), v / 1e3)
    } else {
        format!("{:.*}", decimals(1.0), v)
    }
}

/// Round tick values covering [lo, hi]: the widest spacing of 1, 2, 2.5 or 5 times a power
/// of ten that gives at least four ticks (whole numbers only when `integer`, such as update
/// counts, with at most one tick per unit). Returns the ticks and their spacing.
fn ticks(lo: f64, hi: f64, integer: bool) -> (Vec<f64>, f64) {
    let span = (hi - lo).max(1e-12);
    let mut mag = 10f64.powf(span.log10().floor());
    let make = |step: f64| {
        let mut t = (lo / step).ceil() * step;
        let mut out = Vec::new();
        while t <= hi + 1e-9 * span {
            // Snap rounding noise (e.g. -0.0000001) to zero.
            out.push(if t.abs() < 1e-9 * span { 0.0 } else { t });
            t += step;
        }
        out
    };
    loop {
        for m in [5.0, 2.5, 2.0, 1.0] {
            let step = m * mag;
            if integer && step.fract() != 0.0 {
                continue;
            }
            let t = make(step);
            if t.len() >= 4 || (integer && step <= 1.0) {
                return (t, step);
            }
        }
        if integer && mag <= 1.0 {
            return (make(1.0), 1.0);
        }
        mag /= 10.0;
    }
}

/// Writes a PNG line chart of `points` (x, y) titled `title`; NaN ys are skipped.
pub fn line_chart(
    path: &Path,
    points: &[(f64, f64)],
    (x_title, y_title): (&str, &str),
    title: &str,
) -> Result<()> {
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
    let x_integer = pts.iter().all(|p| p.0.fract() == 0.0);
    let pad = 0.05 * (ymax - ymin);
    let (ymin, ymax) = (ymin - pad, ymax + pad);
    let sx = |x: f64| x0 + (x - xmin) / (xmax - xmin) * (x1 - x0);
    let sy = |y: f64| y0 + (y - ymin) / (ymax - ymin) * (y1 - y0);
    let (yt, ystep) = ticks(ymin, ymax, false);
    let (xt, xstep) = ticks(xmin, xmax, x_integer);
    for &t in &yt {
        c.line((x0, sy(t)), (x1, sy(t)), 1.0, [225, 225, 225]);
    }
    for &t in &xt {
        c.line((sx(t), y0), (sx(t), y1), 1.0, [225, 225, 225]);
    }
    c.line((x0, y0), (x1, y0), 1.5, [0, 0, 0]);
    c.line((x0, y0), (x0, y1), 1.5, [0, 0, 0]);
    let curve: Vec<(f64, f64)> = pts.iter().map(|&(x, y)| (sx(x), sy(y))).collect();
    c.polyline(&curve, 2.0, [31, 119, 180]);
    let mut frame = c.into_frame();
    // Text, in frame pixels (row 0 at the top).
    let row = |y: f64| H as f64 - 1.0 - y;
    let black = [0, 0, 0];
    for &t in &yt {
        let im = rasterize(&label(t, ystep), 13.0)?;
        let at = Placement::Horizontal {
            left: x0 - 8.0 - im.width as f64,
            top: row(sy(t)) - im.height as f64 / 2.0,
        };
        blit(&mut frame, &im, at, black);
    }
    for &t in &xt {
        let im = rasterize(&label(t, xstep), 13.0)?;
        let at = Placement::Horizontal {
            left: sx(t) - im.width as f64 / 2.0,
            top: row(y0) + 6.0,
        };
        blit(&mut frame, &im, at, black);
    }
    let im = rasterize(x_title, 15.0)?;
    let at = Placement::Horizontal {
        left: (x0 + x1) / 2.0 - im.width as f64 / 2.0,
        top: H as f64 - 8.0 - im.height as f64,
    };
    blit(&mut frame, &im, at, black);
    let im = rasterize(y_title, 15.0)?;
    let at = Placement::Upwards {
        left: 6.0,
        top: (row(y0) + row(y1)) / 2.0 - im.width as f64 / 2.0,
    };
    blit(&mut frame, &im, at, black);
    let im = rasterize(title, 16.0)?;
    let at = Placement::Horizontal {
        left: (x0 + x1) / 2.0 - im.width as f64 / 2.0,
        top: 10.0,
    };
    blit(&mut frame, &im, at, black);
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
    // The run directory's name says env, algorithm, seed and time (`CartPole-v1__ppo__1__...`).
    let title = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    line_chart(&dir.join(file), &pts, (x_title, y_title), &title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_labels_are_round_distinct_and_at_least_four() {
        assert_eq!(
            ticks(0.0, 100.0, false).0,
            vec![0.0, 25.0, 50.0, 75.0, 100.0]
        );
        assert_eq!(label(20000.0, 5000.0), "20k");
        assert_eq!(label(1_500_000.0, 500_000.0), "1.5M");
        assert_eq!(label(-150.0, 50.0), "-150");
        assert_eq!(label(0.25, 0.25), "0.25");
        assert_eq!(label(12_500.0, 2500.0), "12.5k");
        // GRPO's step axis: whole steps only.
        assert_eq!(ticks(1.0, 3.0, true).0, vec![1.0, 2.0, 3.0]);
        assert_eq!(
            ticks(1.0, 30.0, true).0,
            vec![5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
        );
        for (lo, hi) in [
            (-1650.0, -120.0),
            (0.0, 1.0),
            (-0.003, 0.017),
            (7.0, 9.5),
            (1e5, 1e6),
        ] {
            let (t, step) = ticks(lo, hi, false);
            assert!(t.len() >= 4, "{lo}..{hi}: {t:?}");
            let labels: Vec<String> = t.iter().map(|&v| label(v, step)).collect();
            let mut distinct = labels.clone();
            distinct.dedup();
            assert_eq!(distinct, labels, "{lo}..{hi}");
        }
    }

    #[test]
    fn chart_is_a_valid_png() {
        let dir = std::env::temp_dir().join(format!("rein-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.png");
        let pts: Vec<(f64, f64)> = (0..50)
            .map(|i| (i as f64 * 1000.0, (i as f64).sqrt() * 10.0))
            .collect();
        line_chart(
            &p,
            &pts,
            ("steps", "episodic return"),
            "CartPole-v1__ppo__1",
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
