//! rein's [`Communicator`] over MPI: Open MPI through the `mpi` crate (rsmpi), so that a run
//! started with `mpirun -np N rein ...` trains data-parallel over `N` processes on one machine
//! or many (a hostfile), as OpenAI Baselines' MPI PPO and Horovod did.
//!
//! The binary calls [`start`] first thing; it initialises MPI (`MPI_THREAD_FUNNELED`: only
//! the main thread calls MPI) and, with more than one rank, installs the world communicator
//! as [`rein_core::collective::world`]. With one rank (no `mpirun`, or `-np 1`) nothing is
//! installed and every command runs exactly as a build without MPI.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Destination, Root, Source};
use rein_core::collective::{install_world, Communicator};
use std::rc::Rc;

/// The world communicator of an MPI job.
pub struct MpiWorld {
    comm: SimpleCommunicator,
}

impl Communicator for MpiWorld {
    fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    fn size(&self) -> usize {
        self.comm.size() as usize
    }

    fn sum_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        self.comm
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn sum_f32(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.comm
            .all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn min_max_u64(&self, value: u64) -> (u64, u64) {
        // One allreduce: the minimum is the complement of the maximum of the complements.
        let send = [value, !value];
        let mut max = [0u64; 2];
        self.comm
            .all_reduce_into(&send[..], &mut max[..], SystemOperation::max());
        (!max[1], max[0])
    }

    fn gather_bytes(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
        // Point-to-point to rank 0, in rank order: the messages differ in length (a rank's
        // environment states, its replay buffer) and are sent only at checkpoints.
        if self.rank() == 0 {
            let mut all = vec![bytes.to_vec()];
            for r in 1..self.comm.size() {
                let (message, _) = self.comm.process_at_rank(r).receive_vec::<u8>();
                all.push(message);
            }
            all
        } else {
            self.comm.process_at_rank(0).send(bytes);
            Vec::new()
        }
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let root = self.comm.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
    }

    fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}

/// MPI for the life of the binary: dropping it uninstalls the world and finalises MPI.
/// Rank and size are the world's (`rein_core::collective::world`).
pub struct MpiSession {
    universe: Option<Universe>,
}

impl Drop for MpiSession {
    fn drop(&mut self) {
        install_world(None);
        drop(self.universe.take());
    }
}

/// MPI could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

/// Environment variables that MPI launchers set in the processes they start: Open MPI's
/// `mpirun`, MPICH/Hydra and Intel MPI (`PMI_*`), PMIx launchers such as Slurm's `srun`.
const LAUNCHER_VARIABLES: &[&str] = &["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

/// True when this process was started by an MPI launcher.
pub fn launched_by_mpirun() -> bool {
    LAUNCHER_VARIABLES
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Initialises MPI when the process was started by an MPI launcher and, with more than one
/// rank, installs its world communicator for this (the main) thread. Outside `mpirun` it does
/// nothing (`None`): MPI is not initialised, so the binary behaves as one built without the
/// feature (no MPI session files, no start-up cost).
pub fn start() -> Result<Option<MpiSession>, StartError> {
    if !launched_by_mpirun() {
        return Ok(None);
    }
    start_mpi().map(Some)
}

/// Initialises MPI (see [`start`]).
fn start_mpi() -> Result<MpiSession, StartError> {
    let (universe, _) =
        mpi::initialize_with_threading(mpi::Threading::Funneled).ok_or_else(|| {
            StartError("MPI could not be initialised (was it initialised already?)".into())
        })?;
    let comm = universe.world();
    if comm.size() > 1 {
        install_world(Some(Rc::new(MpiWorld { comm })));
    }
    Ok(MpiSession {
        universe: Some(universe),
    })
}
