//! The processes a run is spread over (data-parallel training under `mpirun`), as the
//! trainers see them: a [`Communicator`] with the collective operations rein needs (sums,
//! gathers to rank 0, broadcasts from rank 0, abort), and the *world*, the communicator of
//! this process.
//!
//! Libraries call [`world`] where ranks meet (gradient averaging, normalisation statistics,
//! episode statistics, checkpoints); without a world installed it is [`SingleProcess`], whose
//! operations do nothing, so every single-process run is bit for bit what it was before MPI
//! existed. The `rein` binary built with the `mpi` feature installs rein-mpi's communicator
//! when it runs under `mpirun` with more than one rank.
//!
//! MPI's world communicator is process-wide by definition, so the world here is one per
//! process too, rather than a value threaded through every trainer's constructor. It is held
//! by the thread that installed it: MPI is initialised with `MPI_THREAD_FUNNELED`, where only
//! that thread may call MPI, and worker threads (vector-env workers) see [`SingleProcess`].

use std::cell::RefCell;
use std::rc::Rc;

/// The collective operations of data-parallel training. Every operation is collective: every
/// rank calls it, in the same order, or the job hangs (MPI's rule).
pub trait Communicator {
    /// This process's rank, `0..size`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Element-wise sum over ranks, in place (`MPI_Allreduce` with `MPI_SUM`).
    fn sum_f64(&self, values: &mut [f64]);
    /// Element-wise sum over ranks, in place.
    fn sum_f32(&self, values: &mut [f32]);
    /// The smallest and the largest of every rank's `value`.
    fn min_max_u64(&self, value: u64) -> (u64, u64);
    /// Every rank's `bytes`, in rank order, on rank 0; an empty list on the others.
    fn gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>>;
    /// Rank 0's `bytes` on every rank (the others' input is replaced).
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>);
    /// Ends every rank of the job with `code` (`MPI_Abort`), after this rank's message was
    /// printed by the caller.
    fn abort(&self, code: i32) -> !;
}

/// The communicator of a process that is the whole run: one rank, every operation the
/// identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f64(&self, _: &mut [f64]) {}
    fn sum_f32(&self, _: &mut [f32]) {}
    fn min_max_u64(&self, value: u64) -> (u64, u64) {
        (value, value)
    }
    fn gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        vec![bytes.to_vec()]
    }
    fn broadcast_bytes(&self, _: &mut Vec<u8>) {}
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

thread_local! {
    static WORLD: RefCell<Option<Rc<dyn Communicator>>> = const { RefCell::new(None) };
}

/// The communicator of this process (of this thread: see the module docs);
/// [`SingleProcess`] unless one was installed with [`install_world`].
pub fn world() -> Rc<dyn Communicator> {
    WORLD.with(|w| w.borrow().clone().unwrap_or_else(|| Rc::new(SingleProcess)))
}

/// Makes `comm` the world of this thread (`None`: back to [`SingleProcess`]). Called once by
/// the binary after `MPI_Init`, and with `None` before `MPI_Finalize`.
pub fn install_world(comm: Option<Rc<dyn Communicator>>) {
    WORLD.with(|w| *w.borrow_mut() = comm);
}

/// True when this run is spread over more than one rank.
pub fn is_distributed() -> bool {
    world().size() > 1
}

/// True on rank 0, the rank that writes the run directory.
pub fn is_root() -> bool {
    world().rank() == 0
}

/// The seed of this rank's environments: rank `r` of `n` with `num_envs` envs each seeds its
/// envs `seed + r * num_envs + i`, so `N` ranks of `num_envs` envs step the same environments
/// as one process with `N * num_envs` (rank 0 unchanged).
pub fn env_seed(seed: u64, num_envs: usize) -> u64 {
    seed.wrapping_add((world().rank() * num_envs) as u64)
}

/// The agent's sampling generator on this rank: `rng` (initialised from `seed`, then used
/// to initialise the networks, which are therefore equal on every rank) on rank 0, a stream of
/// its own on the others, so that ranks sample different actions and minibatches.
pub fn rank_rng(rng: crate::ReinRng, seed: u64) -> crate::ReinRng {
    match world().rank() {
        0 => rng,
        r => crate::rng_from_seed(seed ^ ((r as u64) << 40) ^ 0x5DEE_CE66_D1CE_4E5B),
    }
}

/// Averages `values` over ranks in place (one allreduce); nothing on one rank.
pub fn average_f32(values: &mut [f32]) {
    let w = world();
    if w.size() > 1 {
        w.sum_f32(values);
        let n = w.size() as f32;
        for v in values {
            *v /= n;
        }
    }
}

/// Averages a group of buffers over ranks with one allreduce (flattened into one buffer, as
/// gradient averaging wants: one message per optimiser step); nothing on one rank.
pub fn average_f32_groups(groups: &mut [&mut [f32]]) {
    let w = world();
    if w.size() == 1 {
        return;
    }
    let mut flat: Vec<f32> = Vec::with_capacity(groups.iter().map(|g| g.len()).sum());
    for g in groups.iter() {
        flat.extend_from_slice(g);
    }
    average_f32(&mut flat);
    let mut at = 0;
    for g in groups.iter_mut() {
        let n = g.len();
        g.copy_from_slice(&flat[at..at + n]);
        at += n;
    }
}

/// The sum over ranks of `values` (a copy); `values` itself on one rank.
pub fn sum_f64(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    let w = world();
    if w.size() > 1 {
        w.sum_f64(&mut out);
    }
    out
}

/// True on every rank when `flag` is true on any (one allreduce; a consistent decision, such
/// as stopping, that must be taken by all ranks at the same update).
pub fn any(flag: bool) -> bool {
    any_each([flag])[0]
}

/// [`any`] of several flags at once, in one allreduce: element `i` is true on every rank when
/// `flags[i]` is true on any.
pub fn any_each<const N: usize>(flags: [bool; N]) -> [bool; N] {
    if world().size() == 1 {
        return flags;
    }
    let counts = sum_f64(&flags.map(|f| f64::from(u8::from(f))));
    std::array::from_fn(|i| counts[i] > 0.0)
}

/// Mean and (population) variance per column of the rows of all ranks, and their number:
/// the batch moments `RunningMeanStd` is updated with, computed over every rank's rows (two
/// allreduces: the sums, then the squared deviations from the global mean). `rows` holds
/// `dim`-wide rows.
pub fn batch_moments<T: Copy + Into<f64>>(rows: &[T], dim: usize) -> (Vec<f64>, Vec<f64>, f64) {
    let mut sums = vec![0.0f64; dim + 1];
    for row in rows.chunks_exact(dim) {
        for (s, &x) in sums.iter_mut().zip(row) {
            *s += x.into();
        }
    }
    sums[dim] = (rows.len() / dim) as f64;
    let sums = sum_f64(&sums);
    let n = sums[dim];
    let mean: Vec<f64> = sums[..dim].iter().map(|s| s / n).collect();
    let mut sq = vec![0.0f64; dim];
    for row in rows.chunks_exact(dim) {
        for ((v, &x), m) in sq.iter_mut().zip(row).zip(&mean) {
            *v += (x.into() - m).powi(2);
        }
    }
    let var = sum_f64(&sq).into_iter().map(|s| s / n).collect();
    (mean, var, n)
}

/// An FNV-1a hash of the bit patterns of `values`: equal weights give equal checksums, so ranks
/// compare one number to know they hold the same parameters.
pub fn checksum_f32<'a>(values: impl IntoIterator<Item = &'a [f32]>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for group in values {
        for v in group {
            for b in v.to_bits().to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    h
}

/// Runs `read` on rank 0 and gives its result to every rank (a checkpoint or config file that
/// only rank 0's filesystem needs to hold); on one rank, just `read()`.
pub fn read_on_root(read: impl FnOnce() -> Result<Vec<u8>, String>) -> Result<Vec<u8>, String> {
    let w = world();
    if w.size() == 1 {
        return read();
    }
    let mut message = if w.rank() == 0 {
        match read() {
            Ok(mut bytes) => {
                bytes.push(1);
                bytes
            }
            Err(e) => {
                let mut bytes = e.into_bytes();
                bytes.push(0);
                bytes
            }
        }
    } else {
        Vec::new()
    };
    w.broadcast_bytes(&mut message);
    match message.pop() {
        Some(1) => Ok(message),
        _ => Err(String::from_utf8_lossy(&message).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_process_operations_are_the_identity() {
        let mut g1 = vec![1.0f32, 2.0];
        let mut g2 = vec![3.0f32];
        average_f32_groups(&mut [&mut g1, &mut g2]);
        assert_eq!((g1, g2), (vec![1.0, 2.0], vec![3.0]));
        assert_eq!(sum_f64(&[1.5, 2.5]), vec![1.5, 2.5]);
        assert!(any(true) && !any(false));
        assert_eq!(any_each([true, false]), [true, false]);
        assert_eq!(env_seed(7, 8), 7);
        assert_eq!(read_on_root(|| Ok(vec![4, 5])), Ok(vec![4, 5]));
        assert_eq!(read_on_root(|| Err("no".into())), Err("no".to_string()));
    }

    #[test]
    fn batch_moments_are_the_population_moments() {
        let rows = [1.0f32, 10.0, 2.0, 20.0, 6.0, 0.0];
        let (mean, var, n) = batch_moments(&rows, 2);
        assert_eq!(n, 3.0);
        assert!((mean[0] - 3.0).abs() < 1e-12 && (mean[1] - 10.0).abs() < 1e-12);
        assert!((var[0] - 14.0 / 3.0).abs() < 1e-12 && (var[1] - 200.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn checksums_tell_weights_apart() {
        let a = [1.0f32, 2.0];
        let b = [1.0f32, 2.000_001];
        assert_eq!(checksum_f32([&a[..]]), checksum_f32([&a[..]]));
        assert_ne!(checksum_f32([&a[..]]), checksum_f32([&b[..]]));
    }
}
