//! Scaled dot-product attention as one candle op with a backward pass, parallel over
//! (batch, head) pairs with a single-threaded matrix product per pair.
//!
//! Why not candle's batched `matmul`: it loops over the batch and splits every small
//! `[t, head_dim] x [head_dim, T]` product over all rayon threads, which on these machines runs
//! at a tenth of the one-thread speed (64^3: ~8 vs ~73 GFLOP/s). Attention was a third of the
//! tiny GPT-2's forward pass that way; one product per thread restores the kernel's speed and
//! fuses the scale, mask and softmax into the same pass.
//!
//! Forward, per pair (Vaswani et al. 2017, eq. 1): `S = scale * Q K^T + bias`,
//! `P = softmax_rows(S)` (rows with no visible key are all zero, PyTorch SDPA's convention),
//! `O = P V`. Backward: `dV = P^T dO`, `dP = dO V^T`, `dS = P * (dP - rowsum(dP * P))`,
//! `dQ = scale * dS K`, `dK = scale * dS^T Q` (P recomputed, not stored).

use std::sync::Arc;

use crate::kernels::ops::{contiguous_slice, with_f32_slice};
use crate::kernels::ops::{lane_dot, KeptForBackward};
use crate::kernels::rotary::{rotate_heads, RotaryAngles};
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use rein_nn::kernels::{matmul, with_widest_simd, Mat};

/// The additive mask and dead-row markers shared by all layers of one forward pass.
#[derive(Clone)]
pub struct AttentionMask {
    /// `[batch, t, total]` additive bias (0 or a large negative number).
    pub bias: Arc<Vec<f32>>,
    /// `[batch, t]`: 0 where a query sees no key at all, else 1; `None` when every row sees one.
    pub row_ok: Option<Arc<Vec<f32>>>,
}

/// Finite stand-in for minus infinity in attention masks (a fully masked row stays finite and
/// is zeroed, as PyTorch's SDPA does).
pub const MASKED: f32 = -1e30;

impl AttentionMask {
    /// The causal mask of a batch of `b` rows with `t` new positions after `past` cached ones:
    /// query `q` sees key `k` when `k <= past + q`, the key is real (`mask[row][k] != 0`, all
    /// real without a mask) and, with a sliding window `w`, `past + q - k < w` (Mistral's
    /// window over cache indices, as transformers' `sliding_window_causal_mask`).
    pub fn causal(
        b: usize,
        t: usize,
        past: usize,
        mask: Option<&[Vec<u8>]>,
        sliding_window: Option<usize>,
    ) -> Self {
        let total = past + t;
        let mut bias = vec![0f32; b * t * total];
        let mut row_ok = vec![1f32; b * t];
        let mut any_dead = false;
        for bi in 0..b {
            for qi in 0..t {
                let mut seen = false;
                for kj in 0..total {
                    let allowed = kj <= past + qi
                        && mask.is_none_or(|m| m[bi][kj] != 0)
                        && sliding_window.is_none_or(|w| past + qi - kj < w);
                    if allowed {
                        seen = true;
                    } else {
                        bias[(bi * t + qi) * total + kj] = MASKED;
                    }
                }
                if !seen {
                    row_ok[bi * t + qi] = 0.0;
                    any_dead = true;
                }
            }
        }
        Self {
            bias: Arc::new(bias),
            row_ok: any_dead.then(|| Arc::new(row_ok)),
        }
    }
}

/// The attention op for one layer: `q` `[b, h, t, d]`, `k`/`v` `[b, h, T, d]`, contiguous.
pub struct Attention {
    /// Mask of the batch.
    pub mask: AttentionMask,
    /// Multiplier of `Q K^T`.
    pub scale: f32,
    /// Where the forward pass keeps the probabilities `P` for the backward pass; `None` when
    /// no gradient can flow. Kept only up to [`KEEP_PROBS_MAX_FLOATS`]: beyond, the backward
    /// pass recomputes them (FlashAttention's trade, Dao et al. 2022), as it does when a second
    /// backward pass finds them consumed.
    saved_probs: KeptForBackward<Vec<f32>>,
}

/// Largest `P` (`b * h * t * T` floats, 32 MB) a layer keeps for its backward pass: at
/// training lengths (a few hundred tokens) the backward pass then skips `Q K^T` and the
/// softmax; at long ones the memory would grow with `T^2`.
const KEEP_PROBS_MAX_FLOATS: usize = 8 << 20;

impl Attention {
    /// The op for `mask` and `scale`; `keep_probs` when a gradient can flow (an input
    /// tracked by autograd).
    pub fn new(mask: AttentionMask, scale: f32, keep_probs: bool) -> Self {
        Self {
            mask,
            scale,
            saved_probs: KeptForBackward::new(keep_probs),
        }
    }
}

/// `exp` for `x <= 0` (softmax arguments after subtracting the maximum) by range reduction to
/// `2^n * 2^f` and a degree-6 polynomial for `2^f` (relative error ~3e-7 in f32): branch-free, so the
/// loop vectorises, unlike libm's `expf` per element.
///
/// Below `2^-100` (`x < -69.3`) the result is exactly 0. A term that small is below f32's
/// resolution next to the maximum's `e^0 = 1` in any softmax sum, and returning it would be
/// worse than useless: divided by the sum it becomes a subnormal number (masked attention
/// entries did, at the clamp's `2^-126`), and subnormal operands slow every product that reads
/// them by 2-4x on x86 (measured on the tiny GPT-2 training step of `rein bench lm`: 0.69 -> 0.49 s). With
/// the cut, a result divided by any sum below `2^26` stays a normal number.
#[inline(always)]
pub(crate) fn fast_exp_nonpos(x: f32) -> f32 {
    let y = x * std::f32::consts::LOG2_E;
    let negligible = y < EXP_CUTOFF_LOG2;
    let y = y.max(EXP_CUTOFF_LOG2);
    // floor without a libm call (y <= 0: truncation rounds up, so step down where it did).
    let i = y as i32;
    let i = if (i as f32) > y { i - 1 } else { i };
    let f = y - i as f32;
    // Least-squares fit of 2^f on [0, 1) (relative error 5e-9 before f32 rounding).
    let mut p = 2.187_751_7e-4_f32;
    p = p * f + 1.238_783_2e-3;
    p = p * f + 9.684_577e-3;
    p = p * f + 5.548_043e-2;
    p = p * f + 2.402_305e-1;
    p = p * f + 6.931_469_3e-1;
    p = p * f + 1.0;
    let e = f32::from_bits(((i + 127) as u32) << 23) * p;
    if negligible {
        0.0
    } else {
        e
    }
}

/// `log2` of the smallest nonzero result of [`fast_exp_nonpos`].
const EXP_CUTOFF_LOG2: f32 = -100.0;

/// Query rows per block of the causal product.
const BLOCK: usize = 32;

/// Keys that rows before `row_end` may see: all past keys and the new ones up to the row.
#[inline]
fn visible_keys(past: usize, row_end: usize, total: usize) -> usize {
    (past + row_end).min(total)
}

/// `dst = a b` for an `m x k` row-major `a` with row stride `a_rs` and a `k x n` `b` given by
/// (data, column stride, row stride), into `dst` with row stride `dst_rs`; one thread.
///
/// Panics if a slice is too short for the shapes (a bug in this module, never user input).
fn gemm_block(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    (a, a_rs): (&[f32], usize),
    (b, b_cs, b_rs): (&[f32], isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * dst_rs + n && dst_rs >= n);
    if k == 0 {
        for r in 0..m {
            dst[r * dst_rs..r * dst_rs + n].fill(0.0);
        }
        return;
    }
    assert!(a.len() >= (m - 1) * a_rs + k && a_rs >= k);
    assert!(b_cs > 0 && b_rs > 0);
    assert!(b.len() > (k - 1) * b_rs as usize + (n - 1) * b_cs as usize);
    // SAFETY: the assertions above bound every element the product reads and writes; dst
    // does not alias a or b (it is &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            false,
            a.as_ptr(),
            1,
            a_rs as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

struct Dims {
    b: usize,
    h: usize,
    /// Key/value heads: each serves `h / kv_h` consecutive query heads (grouped-query
    /// attention, Ainslie et al. 2023; `kv_h == h` is multi-head, `kv_h == 1` multi-query).
    kv_h: usize,
    t: usize,
    total: usize,
    d: usize,
}

impl Dims {
    /// The (batch, key/value head) pair that query pair `i` (batch-major) reads.
    fn kv_pair(&self, i: usize) -> usize {
        let (bi, hi) = (i / self.h, i % self.h);
        bi * self.kv_h + hi / (self.h / self.kv_h)
    }
}

fn dims(q: &Layout, k: &Layout, v: &Layout) -> Result<Dims> {
    let (b, h, t, d) = q.shape().dims4()?;
    let (kb, kv_h, total, kd) = k.shape().dims4()?;
    if (kb, kd) != (b, d) || kv_h == 0 || h % kv_h != 0 || v.shape() != k.shape() {
        candle_core::bail!(
            "attention: q {:?}, k {:?}, v {:?} do not agree",
            q.shape(),
            k.shape(),
            v.shape()
        );
    }
    Ok(Dims {
        b,
        h,
        kv_h,
        t,
        total,
        d,
    })
}

impl Attention {
    fn check_mask(&self, dm: &Dims) -> Result<()> {
        if self.mask.bias.len() != dm.b * dm.t * dm.total {
            candle_core::bail!("attention mask has the wrong size");
        }
        Ok(())
    }

    /// `P = softmax(scale * Q K^T + bias)` for pair `i` into `p` (`[t, total]`).
    ///
    /// Causal structure: query `r` never sees keys after `past + r`, so rows go in blocks of
    /// `BLOCK` and each block's product stops at the last key its last row may see (about half
    /// the work of the full square); the entries beyond are set to zero.
    fn probs(&self, dm: &Dims, i: usize, q: &[f32], k: &[f32], p: &mut [f32]) {
        let (t, total, d) = (dm.t, dm.total, dm.d);
        let past = total - t;
        let bi = i / dm.h;
        let kvi = dm.kv_pair(i);
        let (qi, ki) = (
            &q[i * t * d..(i + 1) * t * d],
            &k[kvi * total * d..(kvi + 1) * total * d],
        );
        for r0 in (0..t).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(t);
            let kv = visible_keys(past, r1, total);
            gemm_block(
                (r1 - r0, kv, d),
                &mut p[r0 * total..],
                total,
                (&qi[r0 * d..], d),
                (ki, d as isize, 1),
            );
        }
        let bias = &self.mask.bias[bi * t * total..(bi + 1) * t * total];
        // The exponentials are most of this loop: compiled for the widest vector unit (the
        // same bits on every path, see `with_widest_simd`).
        with_widest_simd(
            #[inline(always)]
            || self.softmax_rows(dm, bi, past, p, bias),
        );
    }

    /// Row-wise `softmax(scale * s + bias)` of pair `i`'s scores `p` (`[t, total]`, only the
    /// visible keys of each row's block), in place; masked rows become zero.
    #[inline(always)]
    fn softmax_rows(&self, dm: &Dims, bi: usize, past: usize, p: &mut [f32], bias: &[f32]) {
        let (t, total) = (dm.t, dm.total);
        for (r, (row, brow)) in p
            .chunks_exact_mut(total)
            .zip(bias.chunks_exact(total))
            .enumerate()
        {
            let kv = visible_keys(past, (r / BLOCK * BLOCK + BLOCK).min(t), total);
            let (row, rest) = row.split_at_mut(kv);
            rest.fill(0.0);
            let brow = &brow[..kv];
            if self
                .mask
                .row_ok
                .as_ref()
                .is_some_and(|ok| ok[bi * t + r] == 0.0)
            {
                row.fill(0.0);
                continue;
            }
            // Eight independent lanes so that the max and sum reductions vectorise.
            let (scale, mut m8) = (self.scale, [f32::NEG_INFINITY; 8]);
            let mut chunks = row.chunks_exact_mut(8);
            let mut bchunks = brow.chunks_exact(8);
            for (s8, b8) in (&mut chunks).zip(&mut bchunks) {
                for ((s, &bv), m) in s8.iter_mut().zip(b8).zip(m8.iter_mut()) {
                    *s = *s * scale + bv;
                    *m = if *s > *m { *s } else { *m };
                }
            }
            for ((s, &bv), m) in chunks
                .into_remainder()
                .iter_mut()
                .zip(bchunks.remainder())
                .zip(m8.iter_mut())
            {
                *s = *s * scale + bv;
                *m = if *s > *m { *s } else { *m };
            }
            let m = m8
                .iter()
                .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
            // Whole chunks of eight, then the tail: a loop of at most eight does not vectorise.
            let mut sum8 = [0f32; 8];
            let mut chunks = row.chunks_exact_mut(8);
            for s8 in &mut chunks {
                for (s, acc) in s8.iter_mut().zip(sum8.iter_mut()) {
                    *s = fast_exp_nonpos(*s - m);
                    *acc += *s;
                }
            }
            for (s, acc) in chunks.into_remainder().iter_mut().zip(sum8.iter_mut()) {
                *s = fast_exp_nonpos(*s - m);
                *acc += *s;
            }
            let sum: f32 = sum8.iter().sum();
            let inv = 1.0 / sum;
            for s in row.iter_mut() {
                *s *= inv;
            }
        }
    }
}

impl Attention {
    /// `O = P V` for every (batch, head) pair: `[b, h, t, d]` out of contiguous `q`
    /// `[b, h, t, d]` and `k`, `v` `[b, kv_h, total, d]`.
    fn forward_pairs(&self, dm: &Dims, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
        let (t, total, d) = (dm.t, dm.total, dm.d);
        let pairs = dm.b * dm.h;
        let mut out = vec![0f32; pairs * t * d];
        let pv = |i: usize, p: &[f32], o: &mut [f32]| {
            let kvi = dm.kv_pair(i);
            let vi = &v[kvi * total * d..(kvi + 1) * total * d];
            for r0 in (0..t).step_by(BLOCK) {
                let r1 = (r0 + BLOCK).min(t);
                let kv = visible_keys(total - t, r1, total);
                gemm_block(
                    (r1 - r0, d, kv),
                    &mut o[r0 * d..],
                    d,
                    (&p[r0 * total..], total),
                    (vi, 1, d as isize),
                );
            }
        };
        if self.saved_probs.wanted() && pairs * t * total <= KEEP_PROBS_MAX_FLOATS {
            let mut probs = vec![0f32; pairs * t * total];
            out.par_chunks_mut(t * d)
                .zip(probs.par_chunks_mut(t * total))
                .enumerate()
                .for_each(|(i, (o, p))| {
                    self.probs(dm, i, q, k, p);
                    pv(i, p, o);
                });
            self.saved_probs.keep(probs);
        } else {
            out.par_chunks_mut(t * d).enumerate().for_each_init(
                || vec![0f32; t * total],
                |p, (i, o)| {
                    self.probs(dm, i, q, k, p);
                    pv(i, p, o);
                },
            );
        }
        out
    }

    /// `(dQ, dK, dV)` of the output gradient `go` (`[b, h, t, d]`), the key/value gradients
    /// summed over the query heads that share them (`[b, kv_h, total, d]`).
    fn backward_pairs(
        &self,
        dm: &Dims,
        (qv, kv, vv): (&[f32], &[f32], &[f32]),
        go: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (t, total, d) = (dm.t, dm.total, dm.d);
        let mut dq = vec![0f32; qv.len()];
        // Per query head; the heads that share a key/value head are summed below.
        let mut dk = vec![0f32; dm.b * dm.h * total * d];
        let mut dv = vec![0f32; dm.b * dm.h * total * d];
        // The forward pass's probabilities, else recomputed per pair.
        let saved = self.saved_probs.take();
        dq.par_chunks_mut(t * d)
            .zip(dk.par_chunks_mut(total * d))
            .zip(dv.par_chunks_mut(total * d))
            .enumerate()
            .for_each_init(
                || (vec![0f32; t * total], vec![0f32; t * total]),
                |(scratch, dp), (i, ((dqi, dki), dvi))| {
                    let p: &[f32] = match &saved {
                        Some(all) => &all[i * t * total..(i + 1) * t * total],
                        None => {
                            self.probs(dm, i, qv, kv, scratch);
                            scratch
                        }
                    };
                    let doi = &go[i * t * d..(i + 1) * t * d];
                    let kvi = dm.kv_pair(i);
                    let vi = &vv[kvi * total * d..(kvi + 1) * total * d];
                    let ki = &kv[kvi * total * d..(kvi + 1) * total * d];
                    let qi = &qv[i * t * d..(i + 1) * t * d];
                    matmul(Mat::new(p, t, total).t(), Mat::new(doi, t, d), dvi, false);
                    matmul(Mat::new(doi, t, d), Mat::new(vi, total, d).t(), dp, false);
                    // dS = P (dP - rowsum(P dP)) scale (softmax's Jacobian).
                    with_widest_simd(
                        #[inline(always)]
                        || {
                            for (prow, dprow) in
                                p.chunks_exact(total).zip(dp.chunks_exact_mut(total))
                            {
                                let dot = lane_dot(prow, dprow);
                                for (g, &pv) in dprow.iter_mut().zip(prow) {
                                    *g = pv * (*g - dot) * self.scale;
                                }
                            }
                        },
                    );
                    matmul(Mat::new(dp, t, total), Mat::new(ki, total, d), dqi, false);
                    matmul(Mat::new(dp, t, total).t(), Mat::new(qi, t, d), dki, false);
                },
            );
        if dm.kv_h == dm.h {
            return (dq, dk, dv);
        }
        let (group, block) = (dm.h / dm.kv_h, total * d);
        let sum_groups = |full: Vec<f32>| -> Vec<f32> {
            let mut out = vec![0f32; dm.b * dm.kv_h * block];
            for (i, src) in full.chunks_exact(block).enumerate() {
                let j = (i / dm.h) * dm.kv_h + (i % dm.h) / group;
                for (o, &g) in out[j * block..(j + 1) * block].iter_mut().zip(src) {
                    *o += g;
                }
            }
            out
        };
        (dq, sum_groups(dk), sum_groups(dv))
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "rein-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dm = dims(l1, l2, l3)?;
        self.check_mask(&dm)?;
        let (q, k, v) = (
            contiguous_slice::<f32>(s1, l1, self.name())?,
            contiguous_slice::<f32>(s2, l2, self.name())?,
            contiguous_slice::<f32>(s3, l3, self.name())?,
        );
        let out = self.forward_pairs(&dm, q, k, v);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let flat = |x: &Tensor| -> Result<Vec<f32>> { x.contiguous()?.flatten_all()?.to_vec1() };
        let dm = dims(q.layout(), k.layout(), v.layout())?;
        self.check_mask(&dm)?;
        let (qv, kv, vv, go) = (flat(q)?, flat(k)?, flat(v)?, flat(grad_res)?);
        let (dq, dk, dv) = self.backward_pairs(&dm, (&qv, &kv, &vv), &go);
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

/// Multi-head self-attention without a cache straight from the fused projection `qkv`
/// (`[b * t, 3 * h * d]`, queries then keys then values, head-major within each: GPT-2's
/// `c_attn` output) to the merged heads `[b * t, h * d]` that the output projection reads.
///
/// Why one op: splitting `qkv` into heads with candle's `narrow`, `reshape`, `transpose` and
/// `contiguous` (and merging the heads back) made fifteen graph nodes per layer, and candle's
/// backward pass allocates, zero-fills and adds a full gradient at every node; here the
/// heads are gathered into scratch buffers in one pass each way, forward and backward.
struct PackedSelfAttention {
    attention: Attention,
    batch: usize,
    heads: usize,
}

impl PackedSelfAttention {
    /// Shape of the problem, checked against `qkv`'s layout.
    fn dims(&self, l: &Layout) -> Result<Dims> {
        let (rows, cols) = l.shape().dims2()?;
        let (b, h) = (self.batch, self.heads);
        if b == 0 || rows % b != 0 || cols % (3 * h) != 0 {
            candle_core::bail!(
                "packed attention: qkv {:?} is not [{b} x t, 3 x {h} x d]",
                l.shape()
            );
        }
        let t = rows / b;
        let dims = Dims {
            b,
            h,
            kv_h: h,
            t,
            total: t,
            d: cols / (3 * h),
        };
        self.attention.check_mask(&dims)?;
        Ok(dims)
    }
}

/// Gathers `heads` heads of `d` columns starting at column `offset` of rows of `stride`
/// floats (`[b * t, stride]`) into `[b, heads, t, d]`: the queries, keys or values of a fused
/// projection (GPT-2's `qkv`, offset `part * h * d`), of one projection (offset 0, stride
/// `heads * d`), or the merged heads' gradient.
fn split_heads(dm: &Dims, src: &[f32], (stride, offset, heads): (usize, usize, usize)) -> Vec<f32> {
    let (t, d) = (dm.t, dm.d);
    let mut out = vec![0f32; dm.b * heads * t * d];
    for (pair, o) in out.chunks_exact_mut(t * d).enumerate() {
        let (bi, hi) = (pair / heads, pair % heads);
        for (ti, orow) in o.chunks_exact_mut(d).enumerate() {
            let at = (bi * t + ti) * stride + offset + hi * d;
            orow.copy_from_slice(&src[at..at + d]);
        }
    }
    out
}

/// Scatters `[b, heads, t, d]` into the columns of rows of `stride` floats that
/// [`split_heads`] with the same `(stride, offset, heads)` gathers them from.
fn merge_heads(
    dm: &Dims,
    src: &[f32],
    dst: &mut [f32],
    (stride, offset, heads): (usize, usize, usize),
) {
    let (t, d) = (dm.t, dm.d);
    for (pair, s) in src.chunks_exact(t * d).enumerate() {
        let (bi, hi) = (pair / heads, pair % heads);
        for (ti, srow) in s.chunks_exact(d).enumerate() {
            let at = (bi * t + ti) * stride + offset + hi * d;
            dst[at..at + d].copy_from_slice(srow);
        }
    }
}

impl CustomOp1 for PackedSelfAttention {
    fn name(&self) -> &'static str {
        "rein-packed-self-attention"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        let dm = self.dims(l1)?;
        let qkv = contiguous_slice::<f32>(s1, l1, self.name())?;
        let width = dm.h * dm.d;
        let part = |i: usize| (3 * width, i * width, dm.h);
        let (q, k, v) = (
            split_heads(&dm, qkv, part(0)),
            split_heads(&dm, qkv, part(1)),
            split_heads(&dm, qkv, part(2)),
        );
        let heads = self.attention.forward_pairs(&dm, &q, &k, &v);
        let mut out = vec![0f32; dm.b * dm.t * width];
        merge_heads(&dm, &heads, &mut out, (width, 0, dm.h));
        Ok((CpuStorage::F32(out), Shape::from((dm.b * dm.t, width))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dm = self.dims(qkv.layout())?;
        let width = dm.h * dm.d;
        let part = |i: usize| (3 * width, i * width, dm.h);
        let (q, k, v) = with_f32_slice(qkv, |x| {
            Ok::<_, candle_core::Error>((
                split_heads(&dm, x, part(0)),
                split_heads(&dm, x, part(1)),
                split_heads(&dm, x, part(2)),
            ))
        })?;
        let go = with_f32_slice(grad, |g| {
            Ok::<_, candle_core::Error>(split_heads(&dm, g, (width, 0, dm.h)))
        })?;
        let (dq, dk, dv) = self.attention.backward_pairs(&dm, (&q, &k, &v), &go);
        let mut dqkv = vec![0f32; dm.b * dm.t * 3 * width];
        for (i, src) in [dq, dk, dv].iter().enumerate() {
            merge_heads(&dm, src, &mut dqkv, part(i));
        }
        Ok(Some(Tensor::from_vec(dqkv, qkv.shape(), qkv.device())?))
    }
}

/// Causal multi-head self-attention of a fused projection: `qkv` `[b * t, 3 * heads * d]`
/// (no cache: `mask` is `AttentionMask::causal(b, t, 0, ..)`) to `[b * t, heads * d]`, the
/// same numbers as [`attention`] on the split heads; differentiable in `qkv`.
pub fn packed_self_attention(
    qkv: &Tensor,
    batch: usize,
    heads: usize,
    mask: &AttentionMask,
    scale: f64,
) -> Result<Tensor> {
    let op = PackedSelfAttention {
        attention: Attention::new(mask.clone(), scale as f32, qkv.track_op()),
        batch,
        heads,
    };
    qkv.contiguous()?.apply_op1(op)
}

/// Grouped-query self-attention without a cache straight from the three projections of a
/// Llama-family layer, with the rotary position embedding applied inside: `q` `[b * t, h * d]`,
/// `k` and `v` `[b * t, kv_h * d]` to the merged heads `[b * t, h * d]` that `o_proj` reads.
///
/// Why one op: the unfused path (reshape, transpose and `contiguous` of each projection, two
/// rotary ops, the attention, and transpose/`contiguous`/reshape of its output) made fifteen
/// graph nodes per layer, each a gradient allocation, zero-fill and add in candle's backward
/// pass. The backward pass here recomputes the rotated heads (cheaper than keeping them) and
/// applies the transposed rotation to their gradients.
struct PackedRotaryAttention {
    attention: Attention,
    angles: RotaryAngles,
    heads: usize,
    kv_heads: usize,
}

impl PackedRotaryAttention {
    /// Shape of the problem, checked against the three layouts and the angles.
    fn dims(&self, q: &Layout, k: &Layout, v: &Layout) -> Result<Dims> {
        let a = &self.angles;
        let (b, t, d) = (a.batch, a.t, 2 * a.half);
        let (h, kv_h) = (self.heads, self.kv_heads);
        let want_q = [b * t, h * d];
        let want_kv = [b * t, kv_h * d];
        if kv_h == 0
            || h % kv_h != 0
            || q.dims() != want_q
            || k.dims() != want_kv
            || v.dims() != want_kv
        {
            candle_core::bail!(
                "packed rotary attention: q {:?}, k {:?}, v {:?} are not {want_q:?}, {want_kv:?}, {want_kv:?}",
                q.shape(),
                k.shape(),
                v.shape()
            );
        }
        let dims = Dims {
            b,
            h,
            kv_h,
            t,
            total: t,
            d,
        };
        self.attention.check_mask(&dims)?;
        Ok(dims)
    }

    /// The rotated query and key heads and the value heads of the three projections.
    fn heads(&self, dm: &Dims, q: &[f32], k: &[f32], v: &[f32]) -> [Vec<f32>; 3] {
        let (h, kv_h, d) = (dm.h, dm.kv_h, dm.d);
        let qh = split_heads(dm, q, (h * d, 0, h));
        let kh = split_heads(dm, k, (kv_h * d, 0, kv_h));
        let mut qr = vec![0f32; qh.len()];
        let mut kr = vec![0f32; kh.len()];
        rotate_heads(&self.angles, h, &qh, &mut qr, false);
        rotate_heads(&self.angles, kv_h, &kh, &mut kr, false);
        [qr, kr, split_heads(dm, v, (kv_h * d, 0, kv_h))]
    }
}

impl CustomOp3 for PackedRotaryAttention {
    fn name(&self) -> &'static str {
        "rein-packed-rotary-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dm = self.dims(l1, l2, l3)?;
        let [q, k, v] = self.heads(
            &dm,
            contiguous_slice::<f32>(s1, l1, self.name())?,
            contiguous_slice::<f32>(s2, l2, self.name())?,
            contiguous_slice::<f32>(s3, l3, self.name())?,
        );
        let out = self.attention.forward_pairs(&dm, &q, &k, &v);
        let width = dm.h * dm.d;
        let mut merged = vec![0f32; dm.b * dm.t * width];
        merge_heads(&dm, &out, &mut merged, (width, 0, dm.h));
        Ok((CpuStorage::F32(merged), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dm = self.dims(q.layout(), k.layout(), v.layout())?;
        let (h, kv_h, d) = (dm.h, dm.kv_h, dm.d);
        let [qh, kh, vh] = with_f32_slice(q, |qs| {
            with_f32_slice(k, |ks| {
                with_f32_slice(v, |vs| {
                    Ok::<_, candle_core::Error>(self.heads(&dm, qs, ks, vs))
                })
            })
        })?;
        let go = with_f32_slice(grad, |g| {
            Ok::<_, candle_core::Error>(split_heads(&dm, g, (h * d, 0, h)))
        })?;
        let (dq, dk, dv) = self.attention.backward_pairs(&dm, (&qh, &kh, &vh), &go);
        // Back through the rotation: its transpose.
        let mut dq_in = vec![0f32; dq.len()];
        let mut dk_in = vec![0f32; dk.len()];
        rotate_heads(&self.angles, h, &dq, &mut dq_in, true);
        rotate_heads(&self.angles, kv_h, &dk, &mut dk_in, true);
        let rows = dm.b * dm.t;
        let mut gq = vec![0f32; rows * h * d];
        let mut gk = vec![0f32; rows * kv_h * d];
        let mut gv = vec![0f32; rows * kv_h * d];
        merge_heads(&dm, &dq_in, &mut gq, (h * d, 0, h));
        merge_heads(&dm, &dk_in, &mut gk, (kv_h * d, 0, kv_h));
        merge_heads(&dm, &dv, &mut gv, (kv_h * d, 0, kv_h));
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(gq, q.shape(), dev)?),
            Some(Tensor::from_vec(gk, k.shape(), dev)?),
            Some(Tensor::from_vec(gv, v.shape(), dev)?),
        ))
    }
}

/// Causal grouped-query self-attention of a Llama-family layer from its projections, with the
/// rotary embedding applied inside: `q` `[b * t, heads * d]`, `k`, `v` `[b * t, kv_heads *
/// d]` (no cache: `mask` is `AttentionMask::causal(b, t, 0, ..)`, `angles` those of the
/// batch) to `[b * t, heads * d]`; the same numbers as rotating the split heads and calling
/// [`attention`]; differentiable in all three.
pub fn packed_rotary_attention(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    (heads, kv_heads): (usize, usize),
    angles: &RotaryAngles,
    mask: &AttentionMask,
    scale: f64,
) -> Result<Tensor> {
    let op = PackedRotaryAttention {
        attention: Attention::new(
            mask.clone(),
            scale as f32,
            q.track_op() || k.track_op() || v.track_op(),
        ),
        angles: angles.clone(),
        heads,
        kv_heads,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// Attention output `[b, h, t, d]` of `q` `[b, h, t, d]` and `k`, `v` `[b, kv_h, T, d]` (`h` a
/// multiple of `kv_h`: grouped-query attention without repeating the keys); differentiable in
/// all three.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &AttentionMask,
    scale: f64,
) -> Result<Tensor> {
    let op = Attention::new(
        mask.clone(),
        scale as f32,
        q.track_op() || k.track_op() || v.track_op(),
    );
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    #[test]
    fn fast_exp_is_accurate_on_softmax_arguments() {
        // Down to the cut at 2^-100 (x = -69.3).
        for i in 0..13_860 {
            let x = -(i as f32) * 0.005;
            let (a, b) = (fast_exp_nonpos(x), x.exp());
            // The f32 product x * log2(e) carries |x| * 6e-8 of rounding into the exponent.
            let tol = (3e-7 + 1e-7 * x.abs()) * b;
            assert!((a - b).abs() <= tol, "x = {x}: {a} vs {b}");
        }
        // Below it, exactly zero (never a subnormal number), down to minus infinity.
        for x in [-69.4f32, -87.0, -100.0, -1e30, f32::NEG_INFINITY] {
            assert_eq!(fast_exp_nonpos(x), 0.0, "x = {x}");
        }
    }

    /// The packed op equals [`attention`] on heads split from the same projection, values and
    /// the projection's gradient, with a left-padded row (dead query rows included).
    /// The gradients of `sum(out * w)`.
    fn weighted_sum_grads(out: Tensor, w: &Tensor) -> candle_core::backprop::GradStore {
        (out * w).unwrap().sum_all().unwrap().backward().unwrap()
    }

    #[test]
    fn packed_self_attention_matches_split_heads() {
        let dev = Device::Cpu;
        let (b, h, t, d) = (2, 3, 37, 8);
        let width = h * d;
        let qkv: Vec<f32> = (0..b * t * 3 * width)
            .map(|i| ((i as f32) * 0.173).sin())
            .collect();
        let qkv = Var::from_vec(qkv, (b * t, 3 * width), &dev).unwrap();
        let mut pad = vec![vec![1u8; t]; b];
        pad[1][..5].fill(0);
        let mask = AttentionMask::causal(b, t, 0, Some(&pad), None);
        let packed = packed_self_attention(qkv.as_tensor(), b, h, &mask, 0.3).unwrap();
        let split = |i: usize| {
            qkv.as_tensor()
                .reshape((b, t, 3 * width))
                .unwrap()
                .narrow(2, i * width, width)
                .unwrap()
                .reshape((b, t, h, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let reference = attention(&split(0), &split(1), &split(2), &mask, 0.3)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((b * t, width))
            .unwrap();
        let w: Vec<f32> = (0..b * t * width).map(|i| ((i % 7) as f32) - 3.0).collect();
        let w = Tensor::from_vec(w, (b * t, width), &dev).unwrap();
        let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&packed), flat(&reference));
        // The first backward pass reads the probabilities the forward pass kept; a second
        // one over the same graph finds them consumed and recomputes them: same gradients.
        let loss = (&packed * &w).unwrap().sum_all().unwrap();
        let (gp, gp_again, gr) = (
            loss.backward().unwrap(),
            loss.backward().unwrap(),
            weighted_sum_grads(reference, &w),
        );
        assert_eq!(flat(gp.get(&qkv).unwrap()), flat(gr.get(&qkv).unwrap()));
        assert_eq!(
            flat(gp_again.get(&qkv).unwrap()),
            flat(gr.get(&qkv).unwrap())
        );
        let err = packed_self_attention(qkv.as_tensor(), 4, h, &mask, 0.3).unwrap_err();
        assert!(err.to_string().contains("packed attention"), "{err}");
    }

    /// The Llama-family op against the unfused path (split heads, rotary ops, attention,
    /// merged heads) with grouped-query heads and left padding: values and gradients of all
    /// three projections bit-equal.
    #[test]
    fn packed_rotary_attention_matches_the_unfused_path() {
        use crate::kernels::rotary::apply_rotary;
        let dev = Device::Cpu;
        let (b, h, kv_h, t, d) = (2, 6, 2, 29, 8);
        let proj = |n: usize, seed: f32| {
            let x: Vec<f32> = (0..b * t * n * d)
                .map(|i| ((i as f32 + seed) * 0.173).sin())
                .collect();
            Var::from_vec(x, (b * t, n * d), &dev).unwrap()
        };
        let (q, k, v) = (proj(h, 0.0), proj(kv_h, 1.0), proj(kv_h, 2.0));
        let mut pad = vec![vec![1u8; t]; b];
        pad[1][..4].fill(0);
        let positions: Vec<u32> = (0..b)
            .flat_map(|r| (0..t as u32).map(move |i| if r == 1 { i.saturating_sub(4) } else { i }))
            .collect();
        let inv_freq: Vec<f32> = (0..d / 2)
            .map(|i| 10000f32.powf(-(2.0 * i as f32) / d as f32))
            .collect();
        let angles = RotaryAngles::new(&positions, b, t, &inv_freq);
        let mask = AttentionMask::causal(b, t, 0, Some(&pad), None);
        let packed = packed_rotary_attention(
            (q.as_tensor(), k.as_tensor(), v.as_tensor()),
            (h, kv_h),
            &angles,
            &mask,
            0.35,
        )
        .unwrap();
        let heads = |x: &Tensor, n: usize| {
            x.reshape((b, t, n, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let qr = apply_rotary(&heads(q.as_tensor(), h), &angles).unwrap();
        let kr = apply_rotary(&heads(k.as_tensor(), kv_h), &angles).unwrap();
        let reference = attention(&qr, &kr, &heads(v.as_tensor(), kv_h), &mask, 0.35)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((b * t, h * d))
            .unwrap();
        let flat = |x: &Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&packed), flat(&reference));
        let w: Vec<f32> = (0..b * t * h * d).map(|i| ((i % 7) as f32) - 3.0).collect();
        let w = Tensor::from_vec(w, (b * t, h * d), &dev).unwrap();
        let (gp, gr) = (
            weighted_sum_grads(packed, &w),
            weighted_sum_grads(reference, &w),
        );
        for x in [&q, &k, &v] {
            assert_eq!(flat(gp.get(x).unwrap()), flat(gr.get(x).unwrap()));
        }
        let err = packed_rotary_attention(
            (q.as_tensor(), k.as_tensor(), v.as_tensor()),
            (h, 4),
            &angles,
            &mask,
            0.35,
        )
        .unwrap_err();
        assert!(err.to_string().contains("packed rotary attention"), "{err}");
    }

    /// Masked entries of the probabilities are exact zeros, so that no product of the
    /// forward or backward pass reads a subnormal number (which slows x86's FMA units by
    /// 2-4x): the gradients of a causal batch whose last position takes no loss.
    #[test]
    fn attention_makes_no_subnormal_numbers() {
        let dev = Device::Cpu;
        let (b, h, t, d) = (2, 2, 40, 8);
        let x = |seed: f32| -> Vec<f32> {
            (0..b * h * t * d)
                .map(|i| ((i as f32 + seed) * 0.37).sin())
                .collect()
        };
        let q = Var::from_vec(x(0.0), (b, h, t, d), &dev).unwrap();
        let k = Var::from_vec(x(1.0), (b, h, t, d), &dev).unwrap();
        let v = Var::from_vec(x(2.0), (b, h, t, d), &dev).unwrap();
        let mask = AttentionMask::causal(b, t, 0, None, None);
        let out = attention(&q, &k, &v, &mask, 0.35).unwrap();
        // The last position takes no loss, as in the causal-LM loss.
        let w: Vec<f32> = (0..b * h * t * d)
            .map(|i| if (i / d) % t == t - 1 { 0.0 } else { 1e-3 })
            .collect();
        let w = Tensor::from_vec(w, (b, h, t, d), &dev).unwrap();
        let grads = (out.clone() * w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let subnormal = |t: &Tensor| {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .filter(|x| x.is_subnormal())
                .count()
        };
        assert_eq!(subnormal(&out), 0);
        for var in [&q, &k, &v] {
            assert_eq!(subnormal(grads.get(var).unwrap()), 0);
        }
    }

    /// The fused op against candle's composition, values and gradients, with a causal mask,
    /// a padded key and a dead row; short and multi-block queries, with and without past keys.
    #[test]
    fn matches_the_composed_attention_and_its_gradients() {
        for (t, past) in [(5, 0), (70, 0), (40, 3), (1, 9)] {
            compare_with_composed(t, past, 3, 3);
        }
        // Grouped-query (two query heads per key/value head) and multi-query attention.
        for (t, past) in [(5, 0), (40, 3), (1, 9)] {
            compare_with_composed(t, past, 4, 2);
            compare_with_composed(t, past, 4, 1);
        }
    }

    fn compare_with_composed(t: usize, past: usize, h: usize, kv_h: usize) {
        let dev = Device::Cpu;
        let (b, d) = (2, 4);
        let total = t + past;
        let gen = |n: usize, s: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + s).sin()).collect()
        };
        let q = Var::from_vec(gen(b * h * t * d, 0.1), (b, h, t, d), &dev).unwrap();
        let k = Var::from_vec(gen(b * kv_h * total * d, 0.7), (b, kv_h, total, d), &dev).unwrap();
        let v = Var::from_vec(gen(b * kv_h * total * d, 1.3), (b, kv_h, total, d), &dev).unwrap();
        // The composition repeats each key/value head for its query heads.
        let repeat = |x: &Tensor| -> Tensor {
            x.unsqueeze(2)
                .unwrap()
                .broadcast_as((b, kv_h, h / kv_h, total, d))
                .unwrap()
                .reshape((b, h, total, d))
                .unwrap()
        };
        let mut bias = vec![0f32; b * t * total];
        let mut row_ok = vec![1f32; b * t];
        for bi in 0..b {
            for qi in 0..t {
                let mut seen = false;
                for kj in 0..total {
                    // Batch 1 masks key 0 (left padding): without past keys its query 0 sees
                    // nothing.
                    if kj > past + qi || (bi == 1 && kj == 0) {
                        bias[(bi * t + qi) * total + kj] = -1e30;
                    } else {
                        seen = true;
                    }
                }
                if !seen {
                    row_ok[bi * t + qi] = 0.0;
                }
            }
        }
        let mask = AttentionMask {
            bias: Arc::new(bias.clone()),
            row_ok: Some(Arc::new(row_ok.clone())),
        };
        let w = Tensor::from_vec(gen(b * h * t * d, 2.1), (b, h, t, d), &dev).unwrap();
        let scale = 0.5;
        let fused = attention(&q, &k, &v, &mask, scale).unwrap();
        let bias_t = Tensor::from_vec(bias, (b, 1, t, total), &dev).unwrap();
        let ok_t = Tensor::from_vec(row_ok, (b, 1, t, 1), &dev).unwrap();
        let (kr, vr) = (repeat(&k), repeat(&v));
        let scores = (q.matmul(&kr.t().unwrap()).unwrap() * scale)
            .unwrap()
            .broadcast_add(&bias_t)
            .unwrap();
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)
            .unwrap()
            .broadcast_mul(&ok_t)
            .unwrap();
        let composed = probs.matmul(&vr).unwrap();
        let a = fused.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let c = composed.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (x, y) in a.iter().zip(&c) {
            assert!((x - y).abs() < 1e-5, "{x} vs {y}");
        }
        let gf = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gc = (composed * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for var in [&q, &k, &v] {
            let x = gf
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let y = gc
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            for (x, y) in x.iter().zip(&y) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
    }
}
