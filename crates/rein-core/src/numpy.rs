//! numpy's floating-point arithmetic where ports must match it to the last bit: scalar
//! `x ** 2` (libm `pow`) and the pairwise summation of `np.sum`.

/// `x ** 2` as numpy computes it for float64 scalars: libm's `pow(x, 2.0)`, which is not
/// always bit-identical to `x * x`. `black_box` keeps LLVM from rewriting it into `x * x`.
pub fn square_pow(x: f64) -> f64 {
    x.powf(std::hint::black_box(2.0))
}

/// `x ** 2` for numpy float32 scalars: libm's `powf(x, 2.0f)`.
pub fn square_powf(x: f32) -> f32 {
    x.powf(std::hint::black_box(2.0))
}

/// `np.sum(np.square(x))` of a contiguous float32 array, in float32 as numpy computes it: the
/// reduction starts from the identity 0 and adds numpy's pairwise sum of the elements
/// (`pairwise_sum` in numpy's `loops_utils.h.src`: fewer than 8 elements in order; up to 128 in
/// eight interleaved partial sums combined as `((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`, then the
/// rest in order; longer arrays split in two halves at a multiple of 8). Gymnasium's control
/// costs are this sum of a float32 action.
pub fn sum_of_squares_f32(x: &[f32]) -> f32 {
    fn pairwise(a: &[f32]) -> f32 {
        let n = a.len();
        if n < 8 {
            let mut res = 0.0f32;
            for &v in a {
                res += v * v;
            }
            res
        } else if n <= 128 {
            let mut r = [0.0f32; 8];
            for j in 0..8 {
                r[j] = a[j] * a[j];
            }
            let mut i = 8;
            while i < n - n % 8 {
                for j in 0..8 {
                    r[j] += a[i + j] * a[i + j];
                }
                i += 8;
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            while i < n {
                res += a[i] * a[i];
                i += 1;
            }
            res
        } else {
            let mut n2 = n / 2;
            n2 -= n2 % 8;
            pairwise(&a[..n2]) + pairwise(&a[n2..])
        }
    }
    0.0 + pairwise(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_sum_orders_like_numpy() {
        // Nine squares whose float32 sum depends on the order: numpy's interleaved partial sums
        // add the 1.0s to each other before they meet 2^24 and keep them (2^24 + 8 after
        // rounding); a left fold adds each to 2^24 and loses it.
        let big = 4096.0f32; // 4096^2 = 2^24
        let x = [big, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let left_fold = x.iter().fold(0.0f32, |s, v| s + v * v);
        assert_eq!(left_fold, 16_777_216.0);
        assert_eq!(sum_of_squares_f32(&x), 16_777_224.0);
        assert_eq!(sum_of_squares_f32(&[3.0, 4.0]), 25.0);
        assert_eq!(sum_of_squares_f32(&[]), 0.0);
    }
}
