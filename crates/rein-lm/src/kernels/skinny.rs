//! Matrix products with few rows, as in token-by-token decoding (8 sequences:
//! `[8, 256] x [256, 768]`, and `[8, 256] x E^T` for the LM head).
//!
//! Why not the `gemm` crate here: it packs the whole right-hand matrix into panels on every
//! call, which for 8 rows costs as much as the product itself (`perf` of a generation step: a
//! fifth of the time in packing, the microkernels on 8-row panels at a fraction of their
//! speed). These kernels read the weights in place with AVX2 + FMA register tiles of up to 4
//! rows, once per block of columns (the block stays in L1 for the next 4 rows), so decoding
//! streams each weight matrix once per token from cache.
//!
//! Each output element is summed over `k` in order by one thread, so results do not depend on
//! the number of threads.

use crate::kernels::ops::SendPtr;
use rayon::prelude::*;

/// Rows up to which [`skinny_gemm`] is used instead of `gemm` (whose packing pays off on more).
pub(crate) const MAX_ROWS: usize = 16;

/// The right-hand matrix of `y = x * rhs` and its layout.
#[derive(Clone, Copy)]
pub(crate) enum Rhs<'a> {
    /// `W` `[k, n]` row-major (`y = x W`): Hugging Face's `Conv1D` weights.
    KByN(&'a [f32]),
    /// `E` `[n, k]` row-major (`y = x E^T`): the tied LM head.
    NByK(&'a [f32]),
}

/// Whether this CPU has the instructions the kernels use (AVX2 and FMA).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y [m, n] (+)= x [m, k] * rhs` (`+=` when `accumulate`, else `=`; `y` row-major), the
/// columns split over rayon's threads. Returns `false`, doing nothing, where the kernels do
/// not apply (no AVX2/FMA, `m > MAX_ROWS`, or `k` not a multiple of 8 for `NByK`); the caller
/// then uses `gemm`.
///
/// # Panics
/// If a slice is shorter than the shapes say.
pub(crate) fn skinny_gemm(
    (m, n, k): (usize, usize, usize),
    x: &[f32],
    rhs: Rhs,
    y: &mut [f32],
    accumulate: bool,
) -> bool {
    if m == 0 || m > MAX_ROWS || !available() {
        return false;
    }
    if let Rhs::NByK(_) = rhs {
        if k % 8 != 0 {
            return false;
        }
    }
    let w = match rhs {
        Rhs::KByN(w) | Rhs::NByK(w) => w,
    };
    assert!(x.len() >= m * k && w.len() >= k * n && y.len() >= m * n);
    let threads = rayon::current_num_threads().max(1);
    let per = if m * n * k >= 1 << 16 {
        n.div_ceil(threads).next_multiple_of(16)
    } else {
        n
    };
    let out = SendPtr(y.as_mut_ptr());
    let block = |c0: usize| {
        let c1 = (c0 + per).min(n);
        let kernel = match rhs {
            Rhs::KByN(_) => kernels::kn_columns,
            Rhs::NByK(_) => kernels::nk_columns,
        };
        // SAFETY: AVX2/FMA checked above; every pointer stays within the slices checked by
        // the assert (rows < m, columns < n, inner index < k); each block writes only its own
        // columns [c0, c1) of y.
        unsafe {
            kernel(
                (m, n, k),
                x.as_ptr(),
                w.as_ptr(),
                out.ptr(),
                (c0, c1),
                accumulate,
            )
        }
    };
    if per >= n {
        block(0);
    } else {
        (0..n.div_ceil(per))
            .into_par_iter()
            .for_each(|i| block(i * per));
    }
    true
}

#[cfg(not(target_arch = "x86_64"))]
mod kernels {
    /// Never called: [`super::available`] is false off x86_64.
    pub(super) unsafe fn kn_columns(
        _: (usize, usize, usize),
        _: *const f32,
        _: *const f32,
        _: *mut f32,
        _: (usize, usize),
        _: bool,
    ) {
        unreachable!("skinny kernels need x86_64 (available() is false elsewhere)")
    }
    pub(super) use kn_columns as nk_columns;
}

#[cfg(target_arch = "x86_64")]
mod kernels {
    use std::arch::x86_64::*;

    /// Up to 4 rows per tile: 4 x 2 accumulators + 2 weight vectors + 1 broadcast fit the 16
    /// AVX registers.
    const TILE_ROWS: usize = 4;

    /// Rows of `W` per sweep of [`kn_columns`].
    const K_BLOCK: usize = 16;

    /// Calls `$tile::<R, $cols>` on the rows of `x` and `y` in groups of up to `TILE_ROWS`
    /// (`R` sizes the register tile and must be a constant: a macro, not a closure).
    macro_rules! row_tiles {
        ($tile:ident::<$cols:ident>, ($m:expr, $n:expr, $k:expr), $dims:expr, $x:expr, $w:expr, $y:expr, $acc:expr) => {{
            let mut r = 0;
            while r < $m {
                let rows = ($m - r).min(TILE_ROWS);
                let (xr, yr) = ($x.add(r * $k), $y.add(r * $n));
                match rows {
                    4 => $tile::<4, $cols>($dims, xr, $w, yr, $acc),
                    3 => $tile::<3, $cols>($dims, xr, $w, yr, $acc),
                    2 => $tile::<2, $cols>($dims, xr, $w, yr, $acc),
                    _ => $tile::<1, $cols>($dims, xr, $w, yr, $acc),
                }
                r += rows;
            }
        }};
    }

    /// Stores (or adds) one accumulator to 8 floats at `p`.
    #[inline(always)]
    unsafe fn put(p: *mut f32, v: __m256, accumulate: bool) {
        let v = if accumulate {
            _mm256_add_ps(_mm256_loadu_ps(p), v)
        } else {
            v
        };
        _mm256_storeu_ps(p, v);
    }

    /// Rows `[r0, r0 + R)`, columns `[c, c + 8 V)` of `y (+)= x W` over `kl` steps of the
    /// inner index (`W` `[k, n]`, `x` rows `k` apart).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kn_tile<const R: usize, const V: usize>(
        (n, k, kl): (usize, usize, usize),
        x: *const f32,
        w: *const f32,
        y: *mut f32,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        for kk in 0..kl {
            let row = w.add(kk * n);
            // This row two column blocks ahead (a prefetch never faults; wrapping_add keeps
            // an address past the end from being UB).
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(16 * V) as *const i8);
            let mut wv = [_mm256_setzero_ps(); V];
            for (v, slot) in wv.iter_mut().enumerate() {
                *slot = _mm256_loadu_ps(row.add(8 * v));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let xb = _mm256_set1_ps(*x.add(r * k + kk));
                for v in 0..V {
                    a[v] = _mm256_fmadd_ps(xb, wv[v], a[v]);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            for (v, &val) in a.iter().enumerate() {
                put(y.add(r * n + 8 * v), val, accumulate);
            }
        }
    }

    /// `kn_tile` for every row of one column block of width `8 V`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kn_rows<const V: usize>(
        (m, n, k, kl): (usize, usize, usize, usize),
        x: *const f32,
        w: *const f32,
        y: *mut f32,
        accumulate: bool,
    ) {
        row_tiles!(kn_tile::<V>, (m, n, k), (n, k, kl), x, w, y, accumulate);
    }

    /// Columns `[c0, c1)` of `y (+)= x W` for `W` `[k, n]` row-major.
    ///
    /// # Safety
    /// AVX2 and FMA present; `x` `m * k`, `w` `k * n` and `y` `m * n` floats valid; `c1 <= n`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kn_columns(
        (m, n, k): (usize, usize, usize),
        x: *const f32,
        w: *const f32,
        y: *mut f32,
        (c0, c1): (usize, usize),
        accumulate: bool,
    ) {
        // Blocks of K_BLOCK rows of W, each swept left to right: K_BLOCK sequential streams
        // that the hardware prefetcher follows (a column strip down all of W touches a new
        // page per row, and ran at a third of the speed on weights outside the cache).
        let vector_end = c0 + (c1 - c0) / 8 * 8;
        let mut kb = 0;
        while kb < k {
            let kl = K_BLOCK.min(k - kb);
            let (xb, wb) = (x.add(kb), w.add(kb * n));
            let acc = accumulate || kb > 0;
            let mut c = c0;
            while c + 16 <= vector_end {
                kn_rows::<2>((m, n, k, kl), xb, wb.add(c), y.add(c), acc);
                c += 16;
            }
            if c < vector_end {
                kn_rows::<1>((m, n, k, kl), xb, wb.add(c), y.add(c), acc);
            }
            kb += kl;
        }
        for c in vector_end..c1 {
            for r in 0..m {
                let mut s = 0f32;
                for kk in 0..k {
                    s = (*x.add(r * k + kk)).mul_add(*w.add(kk * n + c), s);
                }
                let p = y.add(r * n + c);
                *p = if accumulate { *p + s } else { s };
            }
        }
    }

    /// The sum of the 8 lanes.
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0b01));
        _mm_cvtss_f32(s)
    }

    /// Rows `[r0, r0 + R)`, columns `[j, j + J)` of `y (+)= x E^T`, `E` `[n, k]`: dot
    /// products along `k` in 8 lanes, summed across lanes at the end.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nk_tile<const R: usize, const J: usize>(
        (n, k): (usize, usize),
        x: *const f32,
        e: *const f32,
        y: *mut f32,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); J]; R];
        let mut kk = 0;
        while kk < k {
            let mut ev = [_mm256_setzero_ps(); J];
            for (j, slot) in ev.iter_mut().enumerate() {
                *slot = _mm256_loadu_ps(e.add(j * k + kk));
                // The next tile's rows, one line ahead of need (a prefetch never faults, and
                // wrapping_add keeps an address past the end from being UB).
                _mm_prefetch::<_MM_HINT_T0>(e.wrapping_add((J + j) * k + kk) as *const i8);
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let xv = _mm256_loadu_ps(x.add(r * k + kk));
                for j in 0..J {
                    a[j] = _mm256_fmadd_ps(xv, ev[j], a[j]);
                }
            }
            kk += 8;
        }
        for (r, a) in acc.iter().enumerate() {
            for (j, &val) in a.iter().enumerate() {
                let p = y.add(r * n + j);
                let s = hsum(val);
                *p = if accumulate { *p + s } else { s };
            }
        }
    }

    /// `nk_tile` for every row of `J` columns.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn nk_rows<const J: usize>(
        (m, n, k): (usize, usize, usize),
        x: *const f32,
        e: *const f32,
        y: *mut f32,
        accumulate: bool,
    ) {
        row_tiles!(nk_tile::<J>, (m, n, k), (n, k), x, e, y, accumulate);
    }

    /// Columns `[c0, c1)` of `y (+)= x E^T` for `E` `[n, k]` row-major, `k` a multiple of 8.
    ///
    /// # Safety
    /// AVX2 and FMA present; `x` `m * k`, `e` `n * k` and `y` `m * n` floats valid;
    /// `c1 <= n`; `k % 8 == 0`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn nk_columns(
        (m, n, k): (usize, usize, usize),
        x: *const f32,
        e: *const f32,
        y: *mut f32,
        (c0, c1): (usize, usize),
        accumulate: bool,
    ) {
        let mut c = c0;
        while c + 3 <= c1 {
            nk_rows::<3>((m, n, k), x, e.add(c * k), y.add(c), accumulate);
            c += 3;
        }
        match c1 - c {
            2 => nk_rows::<2>((m, n, k), x, e.add(c * k), y.add(c), accumulate),
            1 => nk_rows::<1>((m, n, k), x, e.add(c * k), y.add(c), accumulate),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 500.0
                    - 1.0
            })
            .collect()
    }

    /// Both layouts, every row count up to MAX_ROWS, column counts that leave each kind of
    /// tail, with and without accumulation, against a plain f64 triple loop.
    #[test]
    fn skinny_products_match_the_definition() {
        if !available() {
            return;
        }
        let all: Vec<usize> = (1..=MAX_ROWS).collect();
        for (n, k, rows) in [
            (8192usize, 256usize, vec![1usize, 8]),
            (768, 256, vec![3, 8, 16]),
            (37, 24, all.clone()),
            (5, 8, all.clone()),
            (19, 40, all),
        ] {
            for m in rows {
                let x = data(m * k, 1);
                let w = data(k * n, 2);
                for (layout, acc) in [(0, false), (0, true), (1, false), (1, true)] {
                    let rhs = if layout == 0 {
                        Rhs::KByN(&w)
                    } else {
                        Rhs::NByK(&w)
                    };
                    let init = data(m * n, 3);
                    let mut y = if acc {
                        init.clone()
                    } else {
                        vec![f32::NAN; m * n]
                    };
                    assert!(skinny_gemm((m, n, k), &x, rhs, &mut y, acc));
                    for r in 0..m {
                        for c in 0..n {
                            let mut s: f64 = if acc { f64::from(init[r * n + c]) } else { 0.0 };
                            for kk in 0..k {
                                let wv = if layout == 0 {
                                    w[kk * n + c]
                                } else {
                                    w[c * k + kk]
                                };
                                s += f64::from(x[r * k + kk]) * f64::from(wv);
                            }
                            let got = f64::from(y[r * n + c]);
                            assert!(
                                (got - s).abs() <= 1e-4 * (1.0 + s.abs()),
                                "m {m} n {n} k {k} layout {layout} acc {acc} ({r}, {c}): {got} vs {s}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn skinny_declines_what_it_cannot_do() {
        let x = vec![0f32; 17 * 8];
        let w = vec![0f32; 8 * 8];
        let mut y = vec![0f32; 17 * 8];
        assert!(!skinny_gemm((17, 8, 8), &x, Rhs::KByN(&w), &mut y, false));
        let w = vec![0f32; 12];
        let mut y = vec![0f32; 2];
        assert!(!skinny_gemm(
            (1, 2, 6),
            &x[..6],
            Rhs::NByK(&w),
            &mut y,
            false
        ));
    }
}
