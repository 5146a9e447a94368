//! Element-wise kernels candle lacks in fast form. candle's `gelu` calls libm `tanh` per
//! element on one thread (~20 ns each), which took a quarter of a GPT-2 forward pass here; this
//! one uses the vectorisable rational tanh of `rein_nn::kernels` and splits large tensors over
//! rayon's pool.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rein_nn::kernels::{fast_tanh, with_widest_simd};

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const COEF: f32 = 0.044_715;

/// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + fast_tanh(SQRT_2_OVER_PI * x * (1.0 + COEF * x * x)))
}

/// d gelu / dx.
#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    let t = fast_tanh(SQRT_2_OVER_PI * x * (1.0 + COEF * x * x));
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * COEF * x * x)
}

// Generic over the function (not a `fn` pointer) so that it inlines and the loop vectorises.
fn map_parallel<F: Fn(f32) -> f32 + Sync + Send + Copy>(src: &[f32], f: F) -> Vec<f32> {
    map2_parallel(src, src, move |x, _| f(x))
}

/// `f(a_i, b_i)` for equal-length slices, split over rayon's pool when large.
fn map2_parallel<F: Fn(f32, f32) -> f32 + Sync + Send + Copy>(
    a: &[f32],
    b: &[f32],
    f: F,
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; a.len()];
    // rayon's pool is the one candle already runs its kernels on: no thread start-up per call.
    const CHUNK: usize = 1 << 15;
    // Compiled for the widest vector unit (the same bits on every path: `with_widest_simd`).
    let run = |o: &mut [f32], ia: &[f32], ib: &[f32]| {
        with_widest_simd(
            #[inline(always)]
            || {
                for ((o, &x), &y) in o.iter_mut().zip(ia).zip(ib) {
                    *o = f(x, y);
                }
            },
        )
    };
    if a.len() < 2 * CHUNK {
        run(&mut out, a, b);
    } else {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (ia, ib))| run(o, ia, ib));
    }
    out
}

/// The elements of a contiguous CPU tensor of type `T` (the input of rein's custom ops);
/// `name` (the op) goes into the error for a strided one.
pub(crate) fn contiguous_slice<'a, T: candle_core::WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    name: &str,
) -> Result<&'a [T]> {
    let data = storage.as_slice::<T>()?;
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{name} needs a contiguous input"),
    }
}

/// `sum_i a_i b_i` in eight independent lanes. A single running f32 sum is a chain of
/// dependent additions the compiler may not reorder (float addition is not associative): one
/// addition's latency per element. Eight lanes vectorise, and their pairwise total is also
/// nearer PyTorch's blocked reductions than a sequential sum.
#[inline(always)]
pub(crate) fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `sum_i a_i` in eight independent lanes (see [`lane_dot`]).
#[inline(always)]
pub(crate) fn lane_sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let c = a.chunks_exact(8);
    let tail: f32 = c.remainder().iter().sum();
    for x in c {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

struct GeluTanh;
struct GeluTanhGrad;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh-fast"
    }
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(storage, layout, self.name())?;
        Ok((
            CpuStorage::F32(map_parallel(x, gelu)),
            layout.shape().clone(),
        ))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &GeluTanhGrad,
        )?))
    }
}

/// `dy * gelu'(x)` in one pass (not `gelu'(x)` and then candle's product: two passes and a
/// temporary of the MLP's width).
impl CustomOp2 for GeluTanhGrad {
    fn name(&self) -> &'static str {
        "gelu-tanh-fast-grad"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(s1, l1, self.name())?;
        let g = contiguous_slice::<f32>(s2, l2, self.name())?;
        Ok((CpuStorage::F32(gelu_backward(x, g)?), l1.shape().clone()))
    }
}

/// `dy * gelu'(x)` element by element: the backward pass of [`gelu_tanh`] and of
/// [`linear_gelu`]'s activation.
fn gelu_backward(x: &[f32], dy: &[f32]) -> Result<Vec<f32>> {
    if x.len() != dy.len() {
        candle_core::bail!("gelu grad: x has {} elements and dy {}", x.len(), dy.len());
    }
    Ok(map2_parallel(x, dy, |x, g| g * gelu_grad(x)))
}

/// GPT-2's `gelu_new` on an f32 tensor, differentiable.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluTanh)
}

/// A raw output pointer that may cross to rayon's threads (each writes disjoint rows or
/// columns).
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: only used to hand disjoint blocks of one buffer to different threads.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `dst (m x n, row-major) [+]= a (m x k, row-major) * b`, `b` given as (data, column stride,
/// row stride); the rows split into one block per rayon thread, each a one-thread product
/// (the columns instead when there are few rows, as in token-by-token decoding).
///
/// Why not gemm's own `Parallelism::Rayon`: on these 2 cores its split reaches ~102 GFLOP/s
/// where two independent one-thread products (~72 each) do better; the shapes of a transformer
/// (1024+ rows) split evenly by rows.
///
/// # Safety
/// `dst` must be valid for writes of `m * n` floats (and initialised when `read_dst`), not
/// aliasing `a` or `b`; `a.len() >= m * k`; `b` must cover `(k-1) * b_rs + (n-1) * b_cs`.
unsafe fn row_parallel_gemm(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    read_dst: bool,
    a: &[f32],
    (b, b_cs, b_rs): (&[f32], isize, isize),
) {
    use rayon::prelude::*;
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !read_dst {
            std::ptr::write_bytes(dst, 0, m * n);
        }
        return;
    }
    assert!(a.len() >= m * k);
    if m <= crate::kernels::skinny::MAX_ROWS {
        let rhs = if b_cs == 1 && b_rs == n as isize {
            Some(crate::kernels::skinny::Rhs::KByN(&b[..k * n]))
        } else if b_rs == 1 && b_cs == k as isize {
            Some(crate::kernels::skinny::Rhs::NByK(&b[..k * n]))
        } else {
            None
        };
        if let Some(rhs) = rhs {
            // SAFETY: dst is valid for m * n floats and initialised when read_dst (contract);
            // otherwise zeroed here before the slice is made.
            if !read_dst {
                std::ptr::write_bytes(dst, 0, m * n);
            }
            let y = std::slice::from_raw_parts_mut(dst, m * n);
            if crate::kernels::skinny::skinny_gemm((m, n, k), &a[..m * k], rhs, y, read_dst) {
                return;
            }
        }
    }
    let threads = rayon::current_num_threads().max(1);
    let big = m * n * k >= 1 << 18;
    let out = SendPtr(dst);
    // SAFETY (both closures): each block writes its own rows or columns of dst only; bounds
    // as in the function's contract.
    let product = |r0: usize, rows: usize, c0: usize, cols: usize| unsafe {
        gemm::gemm(
            rows,
            cols,
            k,
            out.ptr().add(r0 * n + c0),
            1,
            n as isize,
            read_dst,
            a.as_ptr().add(r0 * k),
            1,
            k as isize,
            b.as_ptr().offset(c0 as isize * b_cs),
            b_cs,
            b_rs,
            if read_dst { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    };
    if big && threads > 1 && m < 32 * threads && n >= 64 * threads {
        // Few rows (token-by-token decoding): split the columns instead, so that each thread
        // keeps all rows and the microkernel's row panel stays full.
        let per = n.div_ceil(threads).next_multiple_of(16);
        (0..n.div_ceil(per))
            .into_par_iter()
            .for_each(|i| product(0, m, i * per, per.min(n - i * per)));
        return;
    }
    let blocks = if big { threads.min(m) } else { 1 };
    let per = m.div_ceil(blocks);
    if blocks == 1 {
        product(0, m, 0, n);
    } else {
        (0..m.div_ceil(per))
            .into_par_iter()
            .for_each(|i| product(i * per, per.min(m - i * per), 0, n));
    }
}

/// `y = x W + b` with `W` stored `[in, out]` (Hugging Face's `Conv1D`), in one pass: the
/// product accumulates onto rows pre-filled with the bias, instead of candle's matmul (which
/// zero-fills its output) followed by a separate broadcast add over the whole output.
struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "rein-linear"
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
        let (x, w, b) = (
            contiguous_slice::<f32>(s1, l1, self.name())?,
            contiguous_slice::<f32>(s2, l2, self.name())?,
            contiguous_slice::<f32>(s3, l3, self.name())?,
        );
        let (rows, inp) = l1.shape().dims2()?;
        let (win, out) = l2.shape().dims2()?;
        if win != inp || b.len() != out {
            candle_core::bail!(
                "linear: x {:?}, W {:?}, b {:?} do not agree",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        let mut y: Vec<f32> = Vec::with_capacity(rows * out);
        for _ in 0..rows {
            y.extend_from_slice(b);
        }
        // SAFETY: y holds rows x out initialised floats (the bias rows); x and w are the
        // contiguous row-major operands checked above.
        unsafe {
            row_parallel_gemm(
                (rows, out, inp),
                y.as_mut_ptr(),
                true,
                x,
                (w, 1, out as isize),
            );
        }
        Ok((CpuStorage::F32(y), Shape::from((rows, out))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        conv1d_backward(x, w, grad)
    }
}

/// `(dx, dW, db)` of `y = x W + b` (`W` `[in, out]`) for the output gradient `grad`.
fn conv1d_backward(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let dx = matmul(grad, &w.t()?)?;
    let dw = matmul(&x.t()?, grad)?;
    Ok((Some(dx), Some(dw), Some(bias_grad(grad)?)))
}

/// A bias's gradient, the column sums of `grad` (`[rows, out]` -> `[out]`), in one vectorised
/// pass over the rows: candle's `sum(0)` reduces element by element (a tenth of a training
/// step), and a product with a row of ones zero-fills and dispatches a matrix product.
fn bias_grad(grad: &Tensor) -> Result<Tensor> {
    let out = grad.dim(1)?;
    let mut db = vec![0f32; out];
    with_f32_slice(&grad.contiguous()?, |g| {
        rein_nn::kernels::add_column_sums(g, &mut db);
        Ok::<_, candle_core::Error>(())
    })?;
    Tensor::from_vec(db, out, grad.device())
}

/// `y = gelu_tanh(x W + b)`, GPT-2's MLP up-projection and its activation as one op (Hugging
/// Face `Conv1D` layout, `W` `[in, out]`). The pre-activation stays inside the op (only when
/// a gradient can flow) instead of being a graph node: candle's backward pass would allocate,
/// zero-fill and add a gradient of the MLP's width for it. Backward:
/// `dz = dy * gelu'(z)`, then `dx = dz W^T`, `dW = x^T dz`, `db = sum_rows(dz)`.
struct LinearGelu {
    preactivation: KeptForBackward<Vec<f32>>,
}

impl CustomOp3 for LinearGelu {
    fn name(&self) -> &'static str {
        "rein-linear-gelu"
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
        let (z, shape) = match Linear.cpu_fwd(s1, l1, s2, l2, s3, l3)? {
            (CpuStorage::F32(z), shape) => (z, shape),
            _ => candle_core::bail!("linear-gelu: the product is not f32"),
        };
        let y = map_parallel(&z, gelu);
        self.preactivation.keep(z);
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // A second backward pass over the same graph: the first consumed the pre-activation.
        let z = match self.preactivation.take() {
            Some(z) => z,
            None => linear(&x.detach(), &w.detach(), &b.detach())?
                .flatten_all()?
                .to_vec1::<f32>()?,
        };
        let dz = with_f32_slice(&grad.contiguous()?, |g| gelu_backward(&z, g))?;
        conv1d_backward(x, w, &Tensor::from_vec(dz, grad.shape(), grad.device())?)
    }
}

/// `gelu_tanh(x W + b)` for `x` `[rows, in]`, `W` `[in, out]`, `b` `[out]` (GPT-2's `c_fc`
/// and `gelu_new` as one op); differentiable in all three.
pub fn linear_gelu(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let op = LinearGelu {
        preactivation: KeptForBackward::new(x.track_op() || w.track_op() || b.track_op()),
    };
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

/// `x W + b` for `x` `[rows, in]`, `W` `[in, out]`, `b` `[out]`; differentiable in all three.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
}

/// `y = x W^T (+ b)` with `W` stored `[out, in]` (PyTorch's `nn.Linear`, the layout of every
/// Llama-family checkpoint): the product reads `W` transposed in place (no copy) and
/// accumulates onto rows pre-filled with the bias.
fn linear_t_forward(
    x: &[f32],
    lx: &Layout,
    w: &[f32],
    lw: &Layout,
    bias: Option<&[f32]>,
) -> Result<(CpuStorage, Shape)> {
    let (rows, inp) = lx.shape().dims2()?;
    let (out, win) = lw.shape().dims2()?;
    if win != inp || bias.is_some_and(|b| b.len() != out) {
        candle_core::bail!(
            "linear: x {:?} and W {:?} (and bias) do not agree",
            lx.shape(),
            lw.shape()
        );
    }
    let n = rows * out;
    let mut y: Vec<f32> = Vec::with_capacity(n);
    if let Some(b) = bias {
        for _ in 0..rows {
            y.extend_from_slice(b);
        }
    }
    // SAFETY: y has capacity rows x out; with a bias it holds that many initialised floats the
    // product adds onto, without one the product writes every element (without reading) before
    // set_len exposes them. x is [rows, in] and W [out, in], both contiguous and checked above
    // (W read transposed: column stride in, row stride 1).
    unsafe {
        row_parallel_gemm(
            (rows, out, inp),
            y.as_mut_ptr(),
            bias.is_some(),
            x,
            (w, inp as isize, 1),
        );
        y.set_len(n);
    }
    Ok((CpuStorage::F32(y), Shape::from((rows, out))))
}

/// `dx = dy W`, `dW = dy^T x` of `y = x W^T`, each only for an operand in the autograd graph
/// (a frozen weight under a LoRA adapter takes none: that product is most of a backward pass).
fn linear_t_backward(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let dx = x.track_op().then(|| matmul(grad, w)).transpose()?;
    let dw = w.track_op().then(|| matmul(&grad.t()?, x)).transpose()?;
    Ok((dx, dw))
}

/// `a b` of two 2-D f32 tensors of any strides (transposed views read in place), the output
/// written once (no zero fill) with its rows split into one single-threaded product per rayon
/// thread. Why not candle's `matmul`: it zero-fills the output first and splits the product with
/// gemm's own parallelism, which on these 2 cores runs below two independent one-thread
/// products (see `row_parallel_gemm`); the backward passes of the linear layers and the LM
/// head are most of a training step.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    use candle_core::Storage;
    use rayon::prelude::*;
    let (m, k) = a.dims2()?;
    let (kb, n) = b.dims2()?;
    if k != kb {
        candle_core::bail!("matmul: {:?} x {:?}", a.shape(), b.shape());
    }
    let (sa, la) = a.storage_and_layout();
    let (sb, lb) = b.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(av)), Storage::Cpu(CpuStorage::F32(bv))) = (&*sa, &*sb)
    else {
        drop((sa, sb));
        return a.matmul(b);
    };
    let (a_rs, a_cs) = (la.stride()[0] as isize, la.stride()[1] as isize);
    let (b_rs, b_cs) = (lb.stride()[0] as isize, lb.stride()[1] as isize);
    let (a0, b0) = (la.start_offset(), lb.start_offset());
    let len = m * n;
    let mut y: Vec<f32> = Vec::with_capacity(len);
    if m == 0 || n == 0 || k == 0 {
        drop((sa, sb));
        return Tensor::zeros((m, n), candle_core::DType::F32, a.device());
    }
    // Bounds of every element the products read (strides are non-negative for these views).
    let a_end = a0 + (m - 1) * a_rs as usize + (k - 1) * a_cs as usize;
    let b_end = b0 + (k - 1) * b_rs as usize + (n - 1) * b_cs as usize;
    if a_end >= av.len() || b_end >= bv.len() {
        candle_core::bail!("matmul: a view reaches beyond its storage");
    }
    let threads = rayon::current_num_threads().max(1);
    let blocks = if m * n * k >= 1 << 18 {
        threads.min(m)
    } else {
        1
    };
    let per = m.div_ceil(blocks);
    let out = SendPtr(y.as_mut_ptr());
    let (ap, bp) = (av.as_ptr() as usize, bv.as_ptr() as usize);
    // SAFETY: each block writes its own rows of y (capacity m x n) and reads a and b within the
    // bounds checked above; every element of y is written before set_len.
    let product = |i: usize| unsafe {
        let r0 = i * per;
        let rows = per.min(m - r0);
        gemm::gemm(
            rows,
            n,
            k,
            out.ptr().add(r0 * n),
            1,
            n as isize,
            false,
            (ap as *const f32).add(a0).offset(r0 as isize * a_rs),
            a_cs,
            a_rs,
            (bp as *const f32).add(b0),
            b_cs,
            b_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    };
    let nblocks = m.div_ceil(per);
    if nblocks == 1 {
        product(0);
    } else {
        (0..nblocks).into_par_iter().for_each(product);
    }
    // SAFETY: all m x n elements were written above.
    unsafe { y.set_len(len) };
    drop((sa, sb));
    Tensor::from_vec(y, (m, n), a.device())
}

struct LinearT;

impl CustomOp2 for LinearT {
    fn name(&self) -> &'static str {
        "rein-linear-t"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(s1, l1, self.name())?;
        let w = contiguous_slice::<f32>(s2, l2, self.name())?;
        linear_t_forward(x, l1, w, l2, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        linear_t_backward(x, w, grad)
    }
}

struct LinearTBias;

impl CustomOp3 for LinearTBias {
    fn name(&self) -> &'static str {
        "rein-linear-t-bias"
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
        let x = contiguous_slice::<f32>(s1, l1, self.name())?;
        let w = contiguous_slice::<f32>(s2, l2, self.name())?;
        let b = contiguous_slice::<f32>(s3, l3, self.name())?;
        linear_t_forward(x, l1, w, l2, Some(b))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = linear_t_backward(x, w, grad)?;
        let db = b.track_op().then(|| bias_grad(grad)).transpose()?;
        Ok((dx, dw, db))
    }
}

/// `x W^T + b` for `x` `[rows, in]`, `W` `[out, in]` (`nn.Linear`'s layout) and an optional
/// `b` `[out]`; differentiable in all of them.
pub fn linear_t(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let x = x.contiguous()?;
    match b {
        Some(b) => x.apply_op3(&w.contiguous()?, &b.contiguous()?, LinearTBias),
        None => x.apply_op2(&w.contiguous()?, LinearT),
    }
}

/// SwiGLU's gate (Shazeer 2020): `y = silu(g) * u = g sigmoid(g) u`, in one pass instead of
/// candle's `silu` and a product (two passes and a temporary of the MLP's width).
/// Backward with `s = sigmoid(g)`: `dg = dy u s (1 + g (1 - s))`, `du = dy g s`.
struct SwiGlu;

/// Rows of work per parallel task of the element-wise kernels.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// `1 / (1 + e^-x)` with the branch-free exponential of the attention kernel on `-|x|`
/// (relative error ~3e-7), so that the loops vectorise: libm's `expf` per element was the cost
/// of this op.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = crate::kernels::attention::fast_exp_nonpos(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        e * s
    }
}

/// Calls `f` with the f32 elements of `t`, borrowed from candle's storage when it is a
/// contiguous CPU f32 tensor (the inputs of a backward pass and the parameters usually are),
/// else a converted copy. Generic over the error type so that candle ops and the optimiser
/// share it.
pub(crate) fn with_f32_slice<R, E: From<candle_core::Error>>(
    t: &Tensor,
    f: impl FnOnce(&[f32]) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    use candle_core::Storage;
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(data)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return f(&data[a..b]);
        }
    }
    let copy = t
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1::<f32>()?;
    f(&copy)
}

/// A buffer an op's forward pass keeps for its backward pass (logits, a pre-activation,
/// attention probabilities), only when a gradient can flow. The backward pass takes it; a
/// second backward pass over the same graph finds it gone and recomputes it.
pub(crate) struct KeptForBackward<T>(Option<std::sync::Mutex<Option<T>>>);

impl<T> KeptForBackward<T> {
    /// Keeps buffers when `wanted` (an input of the op is tracked by autograd).
    pub(crate) fn new(wanted: bool) -> Self {
        Self(wanted.then(|| std::sync::Mutex::new(None)))
    }

    /// Whether the forward pass should keep its buffer.
    pub(crate) fn wanted(&self) -> bool {
        self.0.is_some()
    }

    /// Keeps `value` (dropped when not wanted).
    pub(crate) fn keep(&self, value: T) {
        if let Some(slot) = &self.0 {
            // Nothing panics while the lock is held, so a poisoned lock still holds a valid slot.
            *slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(value);
        }
    }

    /// The kept buffer, if any (taking it).
    pub(crate) fn take(&self) -> Option<T> {
        self.0.as_ref().and_then(|slot| {
            slot.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
        })
    }
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "rein-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        use rayon::prelude::*;
        let g = contiguous_slice::<f32>(s1, l1, self.name())?;
        let u = contiguous_slice::<f32>(s2, l2, self.name())?;
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "swiglu: gate {:?} and up {:?} differ",
                l1.shape(),
                l2.shape()
            );
        }
        let mut y = vec![0f32; g.len()];
        y.par_chunks_mut(ELEMENTWISE_CHUNK)
            .zip(
                g.par_chunks(ELEMENTWISE_CHUNK)
                    .zip(u.par_chunks(ELEMENTWISE_CHUNK)),
            )
            .for_each(|(yc, (gc, uc))| {
                with_widest_simd(
                    #[inline(always)]
                    || {
                        for ((o, &gv), &uv) in yc.iter_mut().zip(gc).zip(uc) {
                            *o = gv * sigmoid(gv) * uv;
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        use rayon::prelude::*;
        let n = g.elem_count();
        let mut dg = vec![0f32; n];
        let mut du = vec![0f32; n];
        with_f32_slice(g, |gv| {
            with_f32_slice(u, |uv| {
                with_f32_slice(grad, |dy| {
                    if gv.len() != n || uv.len() != n || dy.len() != n {
                        candle_core::bail!("swiglu backward: sizes do not agree");
                    }
                    dg.par_chunks_mut(ELEMENTWISE_CHUNK)
                        .zip(du.par_chunks_mut(ELEMENTWISE_CHUNK))
                        .enumerate()
                        .for_each(|(c, (dgc, duc))| {
                            with_widest_simd(
                                #[inline(always)]
                                || {
                                    let o = c * ELEMENTWISE_CHUNK;
                                    let (gc, uc, yc) = (
                                        &gv[o..o + dgc.len()],
                                        &uv[o..o + dgc.len()],
                                        &dy[o..o + dgc.len()],
                                    );
                                    for j in 0..dgc.len() {
                                        let (x, up, d) = (gc[j], uc[j], yc[j]);
                                        let s = sigmoid(x);
                                        dgc[j] = d * up * s * (1.0 + x * (1.0 - s));
                                        duc[j] = d * x * s;
                                    }
                                },
                            )
                        });
                    Ok(())
                })
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dg, g.shape(), g.device())?),
            Some(Tensor::from_vec(du, u.shape(), u.device())?),
        ))
    }
}

/// `silu(gate) * up` (same shapes); differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

/// `y = x E^T` for the tied LM head (`E` the `[vocab, d]` token embedding) without zero-filling
/// the `[rows, vocab]` output first, as candle's matmul does: the largest tensor of a forward
/// pass is written once.
struct TiedHead;

impl CustomOp2 for TiedHead {
    fn name(&self) -> &'static str {
        "rein-tied-head"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, e) = (
            contiguous_slice::<f32>(s1, l1, self.name())?,
            contiguous_slice::<f32>(s2, l2, self.name())?,
        );
        let (rows, d) = l1.shape().dims2()?;
        let (vocab, ed) = l2.shape().dims2()?;
        if ed != d {
            candle_core::bail!(
                "lm head: x {:?} and E {:?} do not agree",
                l1.shape(),
                l2.shape()
            );
        }
        let y = tied_head_product(x, e, (rows, vocab, d));
        Ok((CpuStorage::F32(y), Shape::from((rows, vocab))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        e: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // A frozen embedding (under a LoRA adapter) takes no gradient: the `[vocab, d]` product
        // is the largest of the backward pass.
        let dx = x.track_op().then(|| matmul(grad, e)).transpose()?;
        let de = e.track_op().then(|| matmul(&grad.t()?, x)).transpose()?;
        Ok((dx, de))
    }
}

/// `x E^T` (`x` `[rows, d]`, `E` `[vocab, d]`, both row-major and checked by the caller) into
/// a fresh `[rows, vocab]` buffer, written once (no zero fill).
pub(crate) fn tied_head_product(
    x: &[f32],
    e: &[f32],
    (rows, vocab, d): (usize, usize, usize),
) -> Vec<f32> {
    let n = rows * vocab;
    let mut y: Vec<f32> = Vec::with_capacity(n);
    // SAFETY: y has capacity rows x vocab; the product with read_dst = false writes every
    // element (without reading) before set_len exposes them; x is [rows, d] and e [vocab, d],
    // e read transposed (column stride d, row stride 1).
    unsafe {
        row_parallel_gemm(
            (rows, vocab, d),
            y.as_mut_ptr(),
            false,
            x,
            (e, d as isize, 1),
        );
        y.set_len(n);
    }
    y
}

/// `x E^T` for `x` `[rows, d]` and `E` `[vocab, d]`; differentiable in both.
pub fn tied_head(x: &Tensor, e: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&e.contiguous()?, TiedHead)
}

/// Layer normalisation over the last dimension (Ba et al. 2016, eq. 4), forward and backward
/// in one pass each over the rows on rayon's threads. candle's fused `layer_norm` has no
/// backward pass, and the differentiable composition of means, differences and divisions made
/// a dozen passes over the activations.
///
/// Backward with `xh = (x - mean) * rstd`, `g = dy * w`:
/// `dx = rstd * (g - mean(g) - xh * mean(g * xh))`, `dw = sum_rows(dy * xh)`, `db = sum_rows(dy)`.
struct LayerNormOp {
    eps: f32,
}

/// `(mean, 1 / sqrt(var + eps))` of a row (population variance, as PyTorch).
/// `scratch` (the row's length) receives `x - mean`.
#[inline(always)]
fn row_stats(x: &[f32], eps: f32, scratch: &mut [f32]) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = lane_sum(x) / n;
    for (c, &v) in scratch.iter_mut().zip(x) {
        *c = v - mean;
    }
    let var = lane_dot(scratch, scratch) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "rein-layer-norm"
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
        use rayon::prelude::*;
        let (x, w, b) = (
            contiguous_slice::<f32>(s1, l1, self.name())?,
            contiguous_slice::<f32>(s2, l2, self.name())?,
            contiguous_slice::<f32>(s3, l3, self.name())?,
        );
        let d = w.len();
        if d == 0 || b.len() != d || x.len() % d != 0 {
            candle_core::bail!(
                "layer norm: x {:?} and weight {:?} do not agree",
                l1.shape(),
                l2.shape()
            );
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * 16)
            .zip(x.par_chunks(d * 16))
            .for_each(|(yc, xc)| {
                with_widest_simd(
                    #[inline(always)]
                    || {
                        for (yr, xr) in yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)) {
                            // y holds x - mean first, then the normalised row.
                            let (_, rstd) = row_stats(xr, self.eps, yr);
                            for ((o, &wv), &bv) in yr.iter_mut().zip(w).zip(b) {
                                *o = *o * rstd * wv + bv;
                            }
                        }
                    },
                )
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        use rayon::prelude::*;
        let wv = w.to_vec1::<f32>()?;
        let d = wv.len();
        let grad = grad.contiguous()?;
        let (dx, partial) = with_f32_slice(x, |xv| {
            with_f32_slice(&grad, |gv| {
                let mut dx = vec![0f32; xv.len()];
                let rows_per = 16;
                let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
                    .par_chunks_mut(d * rows_per)
                    .zip(xv.par_chunks(d * rows_per))
                    .zip(gv.par_chunks(d * rows_per))
                    .map(|((dxc, xc), gc)| {
                        with_widest_simd(
                            #[inline(always)]
                            || {
                                let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
                                let (mut xh, mut gw) = (vec![0f32; d], vec![0f32; d]);
                                for ((dxr, xr), gr) in dxc
                                    .chunks_exact_mut(d)
                                    .zip(xc.chunks_exact(d))
                                    .zip(gc.chunks_exact(d))
                                {
                                    let (_, rstd) = row_stats(xr, self.eps, &mut xh);
                                    for j in 0..d {
                                        xh[j] *= rstd;
                                        gw[j] = gr[j] * wv[j];
                                        dw[j] += gr[j] * xh[j];
                                        db[j] += gr[j];
                                    }
                                    let mg = lane_sum(&gw) / d as f32;
                                    let mgx = lane_dot(&gw, &xh) / d as f32;
                                    for j in 0..d {
                                        dxr[j] = rstd * (gw[j] - mg - xh[j] * mgx);
                                    }
                                }
                                (dw, db)
                            },
                        )
                    })
                    .collect();
                Ok::<_, candle_core::Error>((dx, partial))
            })
        })?;
        let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
        for (pw, pb) in partial {
            for j in 0..d {
                dw[j] += pw[j];
                db[j] += pb[j];
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, d, dev)?),
            Some(Tensor::from_vec(db, d, dev)?),
        ))
    }
}

/// Layer norm of `x` over its last dimension with `weight` and `bias` (`[d]`); differentiable.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps: eps as f32 },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_gelu_matches_the_formula_and_its_gradient() {
        let xs: Vec<f32> = (-400..400).map(|i| i as f32 * 0.025).collect();
        for &x in &xs {
            let exact = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF * x * x)).tanh());
            assert!((gelu(x) - exact).abs() < 1e-6, "x = {x}");
            let h = 1e-3f64;
            let f =
                |x: f64| 0.5 * x * (1.0 + (0.797_884_560_8 * x * (1.0 + 0.044_715 * x * x)).tanh());
            let num = (f(f64::from(x) + h) - f(f64::from(x) - h)) / (2.0 * h);
            assert!((f64::from(gelu_grad(x)) - num).abs() < 1e-4, "x = {x}");
        }
        let t = Tensor::from_vec(xs.clone(), xs.len(), &candle_core::Device::Cpu).unwrap();
        let candle = t.gelu().unwrap().to_vec1::<f32>().unwrap();
        let ours = gelu_tanh(&t).unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in candle.iter().zip(&ours) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    /// The fused up-projection + GELU against `linear` then `gelu_tanh`: values and the three
    /// gradients equal to the bit (the same kernels in the same order), and a second backward
    /// pass over the same graph (the pre-activation recomputed) gives the same gradients.
    #[test]
    fn linear_gelu_matches_linear_then_gelu() {
        use candle_core::{Device, Var};
        let dev = Device::Cpu;
        let gen = |n: usize, s: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + s).sin()).collect()
        };
        let (rows, inp, out) = (70, 33, 45);
        let x = Var::from_vec(gen(rows * inp, 0.1), (rows, inp), &dev).unwrap();
        let w = Var::from_vec(gen(inp * out, 0.7), (inp, out), &dev).unwrap();
        let b = Var::from_vec(gen(out, 1.3), out, &dev).unwrap();
        let probe = Tensor::from_vec(gen(rows * out, 1.9), (rows, out), &dev).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let fused = linear_gelu(&x, &w, &b).unwrap();
        let composed = gelu_tanh(&linear(&x, &w, &b).unwrap()).unwrap();
        assert_eq!(flat(&fused), flat(&composed));
        let loss_f = (fused * &probe).unwrap().sum_all().unwrap();
        let gf = loss_f.backward().unwrap();
        let gc = (composed * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let again = loss_f.backward().unwrap();
        for v in [&x, &w, &b] {
            let want = flat(gc.get(v).unwrap());
            assert_eq!(flat(gf.get(v).unwrap()), want);
            assert_eq!(flat(again.get(v).unwrap()), want);
        }
    }

    /// SwiGLU and the strided product against candle's compositions (values and gradients).
    #[test]
    fn swiglu_and_matmul_match_candle() {
        use candle_core::{Device, Var};
        let dev = Device::Cpu;
        let gen = |n: usize, s: f32| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + s).sin() * 3.0).collect()
        };
        let g = Var::from_vec(gen(40_000, 0.1), (200, 200), &dev).unwrap();
        let u = Var::from_vec(gen(40_000, 0.7), (200, 200), &dev).unwrap();
        let probe = Tensor::from_vec(gen(40_000, 1.9), (200, 200), &dev).unwrap();
        let fused = swiglu(&g, &u).unwrap();
        let composed = (g.silu().unwrap() * u.as_tensor()).unwrap();
        let close = |a: &Tensor, b: &Tensor, tol: f32| {
            let (a, b) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
            }
        };
        close(&fused, &composed, 1e-6);
        let gf = (fused * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gc = (composed * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&g, &u] {
            close(gf.get(v).unwrap(), gc.get(v).unwrap(), 1e-5);
        }
        let a = Tensor::from_vec(gen(300 * 70, 0.3), (300, 70), &dev).unwrap();
        let b = Tensor::from_vec(gen(70 * 90, 0.5), (90, 70), &dev).unwrap();
        close(
            &matmul(&a, &b.t().unwrap()).unwrap(),
            &a.matmul(&b.t().unwrap()).unwrap(),
            1e-5,
        );
        close(
            &matmul(&a.t().unwrap(), &a).unwrap(),
            &a.t().unwrap().matmul(&a).unwrap(),
            1e-5,
        );
    }
}
