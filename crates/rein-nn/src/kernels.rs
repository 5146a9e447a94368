//! The numeric kernels of the small-network path: matrix products through the `gemm` crate
//! (the kernel library candle itself uses, with runtime AVX2/FMA/AVX-512 dispatch) and fused,
//! vectorisable element-wise loops.
//!
//! Why not candle tensors here: the networks of classic-control agents are tiny (64 units),
//! and candle's per-operation overhead on CPU (about 100 us for `tanh` over 64 x 64 on these
//! machines) would exceed the whole budget of a PPO gradient step (~0.65 ms for two networks at
//! batch 256). Calling the same matmul kernels on preallocated buffers keeps the arithmetic and
//! drops the overhead.

use gemm::Parallelism;

/// Row-major matrix operand: the slice and whether it is used transposed.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// Elements, row-major.
    pub data: &'a [f32],
    /// Rows as stored.
    pub rows: usize,
    /// Columns as stored.
    pub cols: usize,
    /// Use the transpose.
    pub transposed: bool,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert_eq!(data.len(), rows * cols);
        Self {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            transposed: !self.transposed,
            ..self
        }
    }

    fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// (column stride, row stride) of the operand as used.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (self.cols as isize, 1)
        } else {
            (1, self.cols as isize)
        }
    }
}

/// `out = a * b` (or `out += a * b` with `accumulate`), `out` row-major `m x n`.
///
/// Panics if the shapes do not agree (a programming error inside rein-nn, never user input).
pub fn matmul(a: Mat, b: Mat, out: &mut [f32], accumulate: bool) {
    let (m, k) = a.shape();
    let (k2, n) = b.shape();
    assert_eq!(k, k2, "matmul inner dimensions differ");
    assert_eq!(out.len(), m * n, "matmul output has the wrong size");
    assert!(a.data.len() >= a.rows * a.cols && b.data.len() >= b.rows * b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    let (a_cs, a_rs) = a.strides();
    let (b_cs, b_rs) = b.strides();
    // SAFETY: the pointers cover the operands' full extents (checked above), the strides
    // describe row-major storage, and `out` does not alias the inputs (it is &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Runs `f` compiled for the widest vector unit this CPU has (AVX-512, else AVX2, else the
/// build's baseline SSE2), chosen at run time.
///
/// Why: the binary targets baseline x86-64, so the element-wise loops (Adam, bias, activation
/// and their gradients) vectorise to 4 lanes; on an AVX-512 machine Adam alone was a tenth of a
/// SAC gradient step (it still is: its divisions bound it, and the measured gain of this
/// dispatch on `rein bench sac` was within the machine's noise). `f` must be inlined into the
/// `#[target_feature]` functions for its loops to be compiled for the wider unit: pass it as
/// `with_widest_simd(#[inline(always)] || ...)`, and mark the helpers it calls
/// `#[inline(always)]`. A closure called from three places is otherwise too big to inline, and
/// stays a baseline function (`perf` showed it so: the language-model kernels ran scalar or
/// SSE2 until they were marked). The results are bit-identical on every path: these loops are
/// lane-wise IEEE additions, products, divisions and square roots, and Rust never contracts a
/// product and a sum into a fused multiply-add.
#[inline(always)]
pub fn with_widest_simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { avx512(f) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// tanh by a rational approximation (the minimax form Eigen uses for `float`), accurate to a
/// few ulp and free of branches so that the loop vectorises; `std`'s `tanh` is a libm call per
/// element and dominated the small-network step.
#[inline(always)]
pub fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16_f32;
    p = p * x2 + 2.000_188e-13;
    p = p * x2 - 8.604_672e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    p *= x;
    let mut q = 1.198_258_4e-6_f32;
    q = q * x2 + 1.185_347e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525e-3;
    p / q
}

/// Applies tanh in place.
pub fn tanh_inplace(x: &mut [f32]) {
    with_widest_simd(
        #[inline(always)]
        || {
            for v in x.iter_mut() {
                *v = fast_tanh(*v);
            }
        },
    )
}

/// Adds `bias` (length `cols`) to every row of the row-major `x`.
pub fn add_row_bias(x: &mut [f32], bias: &[f32]) {
    with_widest_simd(
        #[inline(always)]
        || {
            for row in x.chunks_exact_mut(bias.len()) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                }
            }
        },
    )
}

/// `acc[j] += sum_i x[i][j]`: the gradient of a bias.
pub fn add_column_sums(x: &[f32], acc: &mut [f32]) {
    with_widest_simd(
        #[inline(always)]
        || {
            for row in x.chunks_exact(acc.len()) {
                for (a, v) in acc.iter_mut().zip(row) {
                    *a += v;
                }
            }
        },
    )
}

/// This machine's one-thread sgemm throughput in GFLOP/s: five 1024^3 products through the
/// same `gemm` kernels the networks use (after one warm-up), the peak the agents' figures are
/// compared with.
pub fn sgemm_peak_gflops() -> f64 {
    let n = 1024;
    let a: Vec<f32> = (0..n * n).map(|k| (k % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|k| (k % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    matmul(Mat::new(&a, n, n), Mat::new(&b, n, n), &mut c, false);
    let reps = 5;
    let start = std::time::Instant::now();
    for _ in 0..reps {
        matmul(Mat::new(&a, n, n), Mat::new(&b, n, n), &mut c, false);
    }
    2.0 * (n * n * n) as f64 * reps as f64 / start.elapsed().as_secs_f64() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_with_transposes_matches_naive() {
        let a: Vec<f32> = (0..6).map(|x| x as f32).collect(); // 2x3
        let b: Vec<f32> = (0..12).map(|x| (x as f32) * 0.5 - 1.0).collect(); // 3x4
        let mut c = vec![0.0; 8];
        matmul(Mat::new(&a, 2, 3), Mat::new(&b, 3, 4), &mut c, false);
        for i in 0..2 {
            for j in 0..4 {
                let want: f32 = (0..3).map(|k| a[i * 3 + k] * b[k * 4 + j]).sum();
                assert!((c[i * 4 + j] - want).abs() < 1e-5);
            }
        }
        // (a^T)^T b with a stored transposed.
        let at: Vec<f32> = (0..3)
            .flat_map(|k| (0..2).map(move |i| (i * 3 + k) as f32))
            .collect(); // 3x2
        let mut c2 = vec![1.0; 8];
        matmul(Mat::new(&at, 3, 2).t(), Mat::new(&b, 3, 4), &mut c2, true);
        for (x, y) in c2.iter().zip(&c) {
            assert!((x - (y + 1.0)).abs() < 1e-5);
        }
        // a b^T with b stored 4x3.
        let bt: Vec<f32> = (0..4)
            .flat_map(|j| (0..3).map(move |k| (j, k)))
            .map(|(j, k)| b[k * 4 + j])
            .collect();
        let mut c3 = vec![0.0; 8];
        matmul(Mat::new(&a, 2, 3), Mat::new(&bt, 4, 3).t(), &mut c3, false);
        for (x, y) in c3.iter().zip(&c) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    /// The element-wise kernels under [`with_widest_simd`] against plain loops, bit for bit.
    #[test]
    fn vectorised_element_wise_kernels_are_bit_identical() {
        let x: Vec<f32> = (0..999)
            .map(|k| ((k * 71 % 211) as f32 - 105.0) * 0.031)
            .collect();
        let mut t = x.clone();
        tanh_inplace(&mut t);
        for (a, &b) in t.iter().zip(&x) {
            assert_eq!(a.to_bits(), fast_tanh(b).to_bits());
        }
        let bias: Vec<f32> = (0..27).map(|k| k as f32 * 0.37 - 4.1).collect();
        let mut y = x[..27 * 37].to_vec();
        add_row_bias(&mut y, &bias);
        let mut sums = bias.clone();
        add_column_sums(&x[..27 * 37], &mut sums);
        for j in 0..27 {
            let mut s = bias[j];
            for i in 0..37 {
                assert_eq!(y[i * 27 + j].to_bits(), (x[i * 27 + j] + bias[j]).to_bits());
                s += x[i * 27 + j];
            }
            assert_eq!(sums[j].to_bits(), s.to_bits(), "column {j}");
        }
    }

    #[test]
    fn fast_tanh_is_accurate() {
        let mut worst = 0.0f64;
        for i in -20000..=20000 {
            let x = i as f32 * 0.0005;
            let err = (fast_tanh(x) as f64 - (x as f64).tanh()).abs();
            worst = worst.max(err);
        }
        assert!(worst < 1e-6, "max error {worst}");
        assert_eq!(fast_tanh(100.0), 1.0);
        assert_eq!(fast_tanh(-100.0), -1.0);
    }
}
