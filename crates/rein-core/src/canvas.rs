//! A small software rasteriser for the classic-control RGB frames and the learning-curve plots: filled polygons, circles
//! and lines on a white canvas, with y pointing up as in Gymnasium's pygame drawings.
//!
//! Written here rather than pulled from a crate: the envs need four primitives, and a 2D
//! graphics dependency would dominate rein-envs' build time.

use crate::RgbFrame;

/// An RGB colour.
pub type Rgb = [u8; 3];

/// A drawing surface; `(0, 0)` is the bottom-left corner.
pub struct Canvas {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![255; width * height * 3],
        }
    }

    fn put(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        // Flip vertically: row 0 of the frame is the top.
        let row = self.height - 1 - y as usize;
        let i = (row * self.width + x as usize) * 3;
        self.data[i..i + 3].copy_from_slice(&c);
    }

    /// Fills a polygon (even-odd rule) given its vertices.
    pub fn fill_polygon(&mut self, pts: &[(f64, f64)], c: Rgb) {
        if pts.len() < 3 {
            return;
        }
        let ymin = pts
            .iter()
            .map(|p| p.1)
            .fold(f64::INFINITY, f64::min)
            .floor()
            .max(0.0) as i64;
        let ymax = pts
            .iter()
            .map(|p| p.1)
            .fold(f64::NEG_INFINITY, f64::max)
            .ceil()
            .min(self.height as f64 - 1.0) as i64;
        let mut xs = Vec::new();
        for y in ymin..=ymax {
            let yc = y as f64 + 0.5;
            xs.clear();
            for i in 0..pts.len() {
                let (x0, y0) = pts[i];
                let (x1, y1) = pts[(i + 1) % pts.len()];
                if (y0 <= yc) != (y1 <= yc) {
                    xs.push(x0 + (yc - y0) * (x1 - x0) / (y1 - y0));
                }
            }
            xs.sort_by(|a, b| a.total_cmp(b));
            for pair in xs.chunks(2) {
                if let [a, b] = pair {
                    let (xa, xb) = ((a - 0.5).ceil() as i64, (b - 0.5).floor() as i64);
                    for x in xa..=xb {
                        self.put(x, y, c);
                    }
                }
            }
        }
    }

    /// Fills a disc.
    pub fn fill_circle(&mut self, cx: f64, cy: f64, r: f64, c: Rgb) {
        let (x0, x1) = ((cx - r).floor() as i64, (cx + r).ceil() as i64);
        let (y0, y1) = ((cy - r).floor() as i64, (cy + r).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                if dx * dx + dy * dy <= r * r {
                    self.put(x, y, c);
                }
            }
        }
    }

    /// Draws a line of the given width (a thin rectangle).
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), width: f64, c: Rgb) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = (dx * dx + dy * dy).sqrt().max(1e-9);
        let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
        self.fill_polygon(
            &[
                (a.0 + nx, a.1 + ny),
                (b.0 + nx, b.1 + ny),
                (b.0 - nx, b.1 - ny),
                (a.0 - nx, a.1 - ny),
            ],
            c,
        );
    }

    /// Draws a polyline.
    pub fn polyline(&mut self, pts: &[(f64, f64)], width: f64, c: Rgb) {
        for w in pts.windows(2) {
            self.line(w[0], w[1], width, c);
        }
    }

    /// The finished frame.
    pub fn into_frame(self) -> RgbFrame {
        RgbFrame {
            width: self.width,
            height: self.height,
            data: self.data,
        }
    }
}

/// Rotates `(x, y)` by `angle` radians (counter-clockwise) and translates by `(tx, ty)`.
pub fn rotate(p: (f64, f64), angle: f64, t: (f64, f64)) -> (f64, f64) {
    let (s, c) = angle.sin_cos();
    (p.0 * c - p.1 * s + t.0, p.0 * s + p.1 * c + t.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygon_fills_its_inside_only() {
        let mut c = Canvas::new(10, 10);
        c.fill_polygon(&[(2.0, 2.0), (6.0, 2.0), (6.0, 6.0), (2.0, 6.0)], [0, 0, 0]);
        let f = c.into_frame();
        let px = |x: usize, y_up: usize| {
            let row = 9 - y_up;
            f.data[(row * 10 + x) * 3]
        };
        assert_eq!(px(3, 3), 0);
        assert_eq!(px(5, 5), 0);
        assert_eq!(px(7, 3), 255);
        assert_eq!(px(3, 7), 255);
        assert_eq!(f.data.len(), 300);
    }
}
