//! The DeepMind Control Suite (dm-control 1.0.50's `suite/*.py`) as Gymnasium-style
//! environments, with ids as Shimmy names them (`dm_control/cheetah-run-v0`).
//!
//! [`DmControl`] is dm-control's `control.Environment` with one task ([`TaskKind`]): `n_sub_steps` physics
//! steps per control step in dm-control's legacy order (`mj_step2`, `mj_step` for the rest, then
//! `mj_step1` so that observations see the new positions), the time limit in control steps
//! (its end is `truncated`: dm-control's discount stays 1), observations flattened in
//! dm-control's key order, rewards from [`tolerance`]. Initial states come from rein's seeded
//! generator (dm-control's numpy `RandomState` cannot be reproduced); replay a dm-control
//! episode by setting its recorded physics state (`qpos`, `qvel`, `act`, `time`,
//! `qacc_warmstart`, and `model` for reacher's target) with `set_state`.

use crate::sim::{norm, sub3, uniform, ModelFiles, Object, Simulation};
use rand::Rng;
use rand_distr::StandardNormal;
use rein_core::env::{invalid_action, snapshot_field};
use rein_core::options::check_keys;
use rein_core::{Dtype, Env, EnvError, EnvRng, EnvSpec, Info, ReinRng, Space, Step, Value};
use serde_json::{json, Map, Value as Json};
use std::f64::consts::PI;

/// The shapes of dm-control's `rewards.tolerance` outside the bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sigmoid {
    /// `exp(-0.5 (x scale)^2)`, `scale = sqrt(-2 ln v)`.
    Gaussian,
    /// `1 - x scale` inside `|x scale| < 1`, `scale = 1 - v`.
    Linear,
    /// `1 - (x scale)^2` inside `|x scale| < 1`, `scale = sqrt(1 - v)`.
    Quadratic,
}

/// dm-control's `rewards.tolerance(x, bounds, margin, sigmoid, value_at_margin)`: 1 inside
/// `bounds`, and outside a sigmoid of the distance to the nearest bound over `margin` that
/// equals `value_at_margin` at distance `margin` (0/1 when `margin` is 0).
pub fn tolerance(
    x: f64,
    bounds: (f64, f64),
    margin: f64,
    sigmoid: Sigmoid,
    value_at_margin: f64,
) -> f64 {
    let (lower, upper) = bounds;
    let in_bounds = lower <= x && x <= upper;
    if margin == 0.0 {
        return if in_bounds { 1.0 } else { 0.0 };
    }
    if in_bounds {
        return 1.0;
    }
    let d = (if x < lower { lower - x } else { x - upper }) / margin;
    match sigmoid {
        Sigmoid::Gaussian => {
            let scale = (-2.0 * value_at_margin.ln()).sqrt();
            let s = d * scale;
            (-0.5 * (s * s)).exp()
        }
        Sigmoid::Linear => {
            let s = d * (1.0 - value_at_margin);
            if s.abs() < 1.0 {
                1.0 - s
            } else {
                0.0
            }
        }
        Sigmoid::Quadratic => {
            let s = d * (1.0 - value_at_margin).sqrt();
            if s.abs() < 1.0 {
                1.0 - s * s
            } else {
                0.0
            }
        }
    }
}

/// `tolerance` with dm-control's defaults (gaussian, value 0.1 at the margin).
fn tol(x: f64, bounds: (f64, f64), margin: f64) -> f64 {
    tolerance(x, bounds, margin, Sigmoid::Gaussian, 0.1)
}

/// `tolerance(control, margin=1, value_at_margin=0, sigmoid='quadratic')` of one control.
fn small_control(u: f64) -> f64 {
    tolerance(u, (0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0)
}

/// One suite task: its domain's model and what `suite/DOMAIN.py` defines for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// `cartpole.balance` (`swing_up=False`) and `cartpole.swingup`.
    Cartpole {
        /// Start hanging down.
        swing_up: bool,
    },
    /// `pendulum.swingup`.
    PendulumSwingup,
    /// `acrobot.swingup`.
    AcrobotSwingup,
    /// `cheetah.run`.
    CheetahRun,
    /// `walker.stand`/`walk`/`run` with their move speed (0, 1, 8).
    Walker {
        /// Target horizontal speed; 0 rewards standing only.
        speed: u32,
    },
    /// `hopper.stand` and `hopper.hop`.
    Hopper {
        /// Reward forward hopping instead of small controls.
        hopping: bool,
    },
    /// `reacher.easy` (target 0.05) and `reacher.hard` (0.015).
    Reacher {
        /// The small target.
        hard: bool,
    },
    /// `finger.spin`.
    FingerSpin,
    /// `ball_in_cup.catch`.
    BallInCupCatch,
    /// `point_mass.easy`.
    PointMassEasy,
}

/// A registered suite task.
#[derive(Debug, Clone, Copy)]
pub struct TaskSpec {
    /// Gymnasium id, as Shimmy registers it.
    pub id: &'static str,
    /// The task.
    pub kind: TaskKind,
    /// The domain's model file.
    pub file: &'static str,
    /// `_CONTROL_TIMESTEP` (None: one physics step per control step).
    pub control_timestep: Option<f64>,
    /// `_DEFAULT_TIME_LIMIT` in seconds.
    pub time_limit: f64,
    /// Observation keys and sizes, in dm-control's order.
    pub observation_keys: &'static [(&'static str, usize)],
}

macro_rules! task {
    ($id:literal, $kind:expr, $file:literal, $ct:expr, $limit:expr, $keys:expr) => {
        TaskSpec {
            id: $id,
            kind: $kind,
            file: $file,
            control_timestep: $ct,
            time_limit: $limit,
            observation_keys: $keys,
        }
    };
}

/// What a suite task's state holds, for error messages.
const DM_STATE: &str = "qpos, qvel, act, time, qacc_warmstart";

const WALKER_KEYS: &[(&str, usize)] = &[("orientations", 14), ("height", 1), ("velocity", 9)];
const HOPPER_KEYS: &[(&str, usize)] = &[("position", 6), ("velocity", 7), ("touch", 2)];
const REACHER_KEYS: &[(&str, usize)] = &[("position", 2), ("to_target", 2), ("velocity", 2)];

/// The suite tasks rein provides.
pub const DM_IDS: &[TaskSpec] = &[
    task!(
        "dm_control/cartpole-balance-v0",
        TaskKind::Cartpole { swing_up: false },
        "cartpole.xml",
        None,
        10.0,
        &[("position", 3), ("velocity", 2)]
    ),
    task!(
        "dm_control/cartpole-swingup-v0",
        TaskKind::Cartpole { swing_up: true },
        "cartpole.xml",
        None,
        10.0,
        &[("position", 3), ("velocity", 2)]
    ),
    task!(
        "dm_control/pendulum-swingup-v0",
        TaskKind::PendulumSwingup,
        "pendulum.xml",
        None,
        20.0,
        &[("orientation", 2), ("velocity", 1)]
    ),
    task!(
        "dm_control/acrobot-swingup-v0",
        TaskKind::AcrobotSwingup,
        "acrobot.xml",
        None,
        10.0,
        &[("orientations", 4), ("velocity", 2)]
    ),
    task!(
        "dm_control/cheetah-run-v0",
        TaskKind::CheetahRun,
        "cheetah.xml",
        None,
        10.0,
        &[("position", 8), ("velocity", 9)]
    ),
    task!(
        "dm_control/walker-stand-v0",
        TaskKind::Walker { speed: 0 },
        "walker.xml",
        Some(0.025),
        25.0,
        WALKER_KEYS
    ),
    task!(
        "dm_control/walker-walk-v0",
        TaskKind::Walker { speed: 1 },
        "walker.xml",
        Some(0.025),
        25.0,
        WALKER_KEYS
    ),
    task!(
        "dm_control/walker-run-v0",
        TaskKind::Walker { speed: 8 },
        "walker.xml",
        Some(0.025),
        25.0,
        WALKER_KEYS
    ),
    task!(
        "dm_control/hopper-stand-v0",
        TaskKind::Hopper { hopping: false },
        "hopper.xml",
        Some(0.02),
        20.0,
        HOPPER_KEYS
    ),
    task!(
        "dm_control/hopper-hop-v0",
        TaskKind::Hopper { hopping: true },
        "hopper.xml",
        Some(0.02),
        20.0,
        HOPPER_KEYS
    ),
    task!(
        "dm_control/reacher-easy-v0",
        TaskKind::Reacher { hard: false },
        "reacher.xml",
        None,
        20.0,
        REACHER_KEYS
    ),
    task!(
        "dm_control/reacher-hard-v0",
        TaskKind::Reacher { hard: true },
        "reacher.xml",
        None,
        20.0,
        REACHER_KEYS
    ),
    task!(
        "dm_control/finger-spin-v0",
        TaskKind::FingerSpin,
        "finger.xml",
        Some(0.02),
        20.0,
        &[("position", 4), ("velocity", 3), ("touch", 2)]
    ),
    task!(
        "dm_control/ball_in_cup-catch-v0",
        TaskKind::BallInCupCatch,
        "ball_in_cup.xml",
        Some(0.02),
        20.0,
        &[("position", 4), ("velocity", 4)]
    ),
    task!(
        "dm_control/point_mass-easy-v0",
        TaskKind::PointMassEasy,
        "point_mass.xml",
        None,
        20.0,
        &[("position", 2), ("velocity", 2)]
    ),
];

const COMMON: &[(&str, &str)] = &[
    (
        "./common/skybox.xml",
        include_str!("../assets/dm_control/common/skybox.xml"),
    ),
    (
        "./common/visual.xml",
        include_str!("../assets/dm_control/common/visual.xml"),
    ),
    (
        "./common/materials.xml",
        include_str!("../assets/dm_control/common/materials.xml"),
    ),
];

fn model_files(file: &'static str) -> ModelFiles {
    let xml = match file {
        "cartpole.xml" => include_str!("../assets/dm_control/cartpole.xml"),
        "pendulum.xml" => include_str!("../assets/dm_control/pendulum.xml"),
        "acrobot.xml" => include_str!("../assets/dm_control/acrobot.xml"),
        "cheetah.xml" => include_str!("../assets/dm_control/cheetah.xml"),
        "walker.xml" => include_str!("../assets/dm_control/walker.xml"),
        "hopper.xml" => include_str!("../assets/dm_control/hopper.xml"),
        "reacher.xml" => include_str!("../assets/dm_control/reacher.xml"),
        "finger.xml" => include_str!("../assets/dm_control/finger.xml"),
        "ball_in_cup.xml" => include_str!("../assets/dm_control/ball_in_cup.xml"),
        "point_mass.xml" => include_str!("../assets/dm_control/point_mass.xml"),
        other => unreachable!("no dm-control model {other}"),
    };
    ModelFiles {
        name: file,
        xml,
        includes: COMMON,
    }
}

/// Builds suite task `id`; `None` when `id` is not one of [`DM_IDS`]. Options: none besides
/// `time_limit` (seconds, dm-control's `time_limit` argument).
pub fn make(id: &str, kwargs: &Map<String, Json>) -> Option<Result<DmControl, EnvError>> {
    let spec = DM_IDS.iter().find(|t| t.id == id)?;
    Some((|| {
        check_keys(id, kwargs, &["time_limit"])?;
        let time_limit = rein_core::options::f64_option(id, kwargs, "time_limit", spec.time_limit)?;
        if time_limit.is_nan() || time_limit <= 0.0 {
            return Err(rein_core::options::bad_option(
                id,
                "time_limit",
                "a positive number of seconds",
                &kwargs["time_limit"],
            ));
        }
        DmControl::new(*spec, time_limit)
    })())
}

/// Named objects a task reads, looked up once.
#[derive(Debug, Clone, Default)]
struct Ids {
    bodies: Vec<usize>,
    sites: Vec<usize>,
    geoms: Vec<usize>,
    sensors: Vec<usize>,
    dof: usize,
    qpos_adr: Vec<usize>,
}

/// A suite task as a Gymnasium-style environment (Shimmy's `DmControlCompatibilityV0`).
pub struct DmControl {
    spec_data: TaskSpec,
    sim: Simulation,
    ids: Ids,
    n_sub_steps: usize,
    step_limit: f64,
    step_count: u64,
    rng: EnvRng,
    obs_space: Space,
    act_space: Space,
    spec: Option<EnvSpec>,
    needs_reset: bool,
}

impl DmControl {
    fn new(task: TaskSpec, time_limit: f64) -> Result<Self, EnvError> {
        let id = task.id;
        let mut sim = Simulation::from_files(id, &model_files(task.file))?;
        let physics_dt = sim.timestep();
        // `control.compute_n_steps`.
        let n_sub_steps = match task.control_timestep {
            None => 1,
            Some(ct) => (ct / physics_dt).round() as usize,
        };
        let step_limit = time_limit / (physics_dt * n_sub_steps as f64);
        let b = |sim: &Simulation, n: &str| sim.id(id, Object::Body, n);
        let s = |sim: &Simulation, n: &str| sim.id(id, Object::Site, n);
        let g = |sim: &Simulation, n: &str| sim.id(id, Object::Geom, n);
        let sn = |sim: &Simulation, n: &str| sim.id(id, Object::Sensor, n);
        let mut ids = Ids::default();
        match task.kind {
            TaskKind::PendulumSwingup => ids.bodies = vec![b(&sim, "pole")?],
            TaskKind::AcrobotSwingup => {
                ids.bodies = vec![b(&sim, "upper_arm")?, b(&sim, "lower_arm")?];
                ids.sites = vec![s(&sim, "target")?, s(&sim, "tip")?];
            }
            TaskKind::CheetahRun => ids.sensors = vec![sn(&sim, "torso_subtreelinvel")?],
            TaskKind::Walker { .. } => {
                ids.bodies = vec![b(&sim, "torso")?];
                ids.sensors = vec![sn(&sim, "torso_subtreelinvel")?];
            }
            TaskKind::Hopper { .. } => {
                ids.bodies = vec![b(&sim, "torso")?, b(&sim, "foot")?];
                ids.sensors = vec![
                    sn(&sim, "torso_subtreelinvel")?,
                    sn(&sim, "touch_toe")?,
                    sn(&sim, "touch_heel")?,
                ];
            }
            TaskKind::Reacher { .. } => ids.geoms = vec![g(&sim, "target")?, g(&sim, "finger")?],
            TaskKind::FingerSpin => {
                ids.sensors = [
                    "proximal",
                    "distal",
                    "tip",
                    "spinner",
                    "proximal_velocity",
                    "distal_velocity",
                    "hinge_velocity",
                    "touchtop",
                    "touchbottom",
                ]
                .iter()
                .map(|n| sn(&sim, n))
                .collect::<Result<_, _>>()?;
                let hinge = sim.id(id, Object::Joint, "hinge")?;
                ids.dof = sim.jnt_dofadr(hinge);
            }
            TaskKind::BallInCupCatch => {
                ids.bodies = vec![b(&sim, "ball")?];
                ids.sites = vec![s(&sim, "target")?];
                ids.geoms = vec![g(&sim, "ball")?];
                for joint in ["ball_x", "ball_z"] {
                    let j = sim.id(id, Object::Joint, joint)?;
                    ids.qpos_adr.push(sim.jnt_qposadr(j));
                }
            }
            TaskKind::PointMassEasy => ids.geoms = vec![g(&sim, "target")?, g(&sim, "pointmass")?],
            TaskKind::Cartpole { .. } => {}
        }
        let nu = sim.ctrl().len();
        let (low, high): (Vec<f64>, Vec<f64>) = (0..nu)
            .map(|i| {
                if sim.ctrl_limited(i) {
                    sim.ctrl_range()[i]
                } else {
                    (f64::NEG_INFINITY, f64::INFINITY)
                }
            })
            .unzip();
        let obs_dim: usize = task.observation_keys.iter().map(|k| k.1).sum();
        let mut env = Self {
            spec_data: task,
            ids,
            n_sub_steps,
            step_limit,
            step_count: 0,
            rng: EnvRng::new(),
            obs_space: Space::Box {
                shape: vec![obs_dim],
                dtype: Dtype::Float64,
                low: vec![f64::NEG_INFINITY; obs_dim],
                high: vec![f64::INFINITY; obs_dim],
            },
            act_space: Space::Box {
                shape: vec![nu],
                dtype: Dtype::Float64,
                low,
                high,
            },
            spec: None,
            needs_reset: true,
            sim: {
                sim.forward();
                sim
            },
        };
        env.apply_model_constants();
        Ok(env)
    }

    /// Attaches registration data.
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The simulation (read-only).
    pub fn simulation(&self) -> &Simulation {
        &self.sim
    }

    /// The task's registration data.
    pub fn task(&self) -> &TaskSpec {
        &self.spec_data
    }

    /// Model changes every episode makes whatever its draw (reacher's target size, finger's
    /// hinge damping).
    fn apply_model_constants(&mut self) {
        match self.spec_data.kind {
            TaskKind::Reacher { hard } => {
                let size = if hard { 0.015 } else { 0.05 };
                self.sim.set_geom_size0(self.ids.geoms[0], size);
            }
            TaskKind::FingerSpin => self.sim.set_dof_damping(self.ids.dof, 0.03),
            _ => {}
        }
    }

    /// `Physics.after_reset`: `mj_forward` (dm-control disables actuation for it; actuation
    /// is recomputed by the first step's `mj_step2`, so no observation or reward sees it).
    fn after_reset(&mut self) {
        self.sim.forward();
    }

    /// dm-control's `randomizers.randomize_limited_and_rotational_joints` for the hinge and
    /// slide joints these domains have (limited: uniform in range; unlimited hinge: uniform
    /// in [-pi, pi)).
    fn randomize_joints(sim: &mut Simulation, rng: &mut ReinRng) {
        for (j, (kind, limited)) in sim.joints().into_iter().enumerate() {
            let adr = sim.jnt_qposadr(j);
            // mjtJoint: 2 slide, 3 hinge.
            if limited && (kind == 2 || kind == 3) {
                let (lo, hi) = sim.jnt_range(j);
                sim.qpos_mut()[adr] = uniform(rng, lo, hi);
            } else if !limited && kind == 3 {
                sim.qpos_mut()[adr] = uniform(rng, -PI, PI);
            }
        }
    }

    /// `Task.initialize_episode` of each task, on rein's generator.
    fn initialize_episode(&mut self) {
        let rng = self.rng.get();
        let sim = &mut self.sim;
        let normal = |rng: &mut ReinRng| -> f64 { rng.sample(StandardNormal) };
        match self.spec_data.kind {
            TaskKind::Cartpole { swing_up } => {
                let nv = sim.qvel().len();
                if swing_up {
                    sim.qpos_mut()[0] = 0.01 * normal(rng);
                    sim.qpos_mut()[1] = PI + 0.01 * normal(rng);
                    for i in 2..nv {
                        sim.qpos_mut()[i] = 0.1 * normal(rng);
                    }
                } else {
                    sim.qpos_mut()[0] = uniform(rng, -0.1, 0.1);
                    for i in 1..nv {
                        sim.qpos_mut()[i] = uniform(rng, -0.034, 0.034);
                    }
                }
                for i in 0..nv {
                    sim.qvel_mut()[i] = 0.01 * normal(rng);
                }
            }
            TaskKind::PendulumSwingup => sim.qpos_mut()[0] = uniform(rng, -PI, PI),
            TaskKind::AcrobotSwingup => {
                sim.qpos_mut()[0] = uniform(rng, -PI, PI);
                sim.qpos_mut()[1] = uniform(rng, -PI, PI);
            }
            TaskKind::CheetahRun => {
                for (j, (_, limited)) in sim.joints().into_iter().enumerate() {
                    if limited {
                        let (lo, hi) = sim.jnt_range(j);
                        let adr = sim.jnt_qposadr(j);
                        sim.qpos_mut()[adr] = uniform(rng, lo, hi);
                    }
                }
                // `physics.step(nstep=200)` with zero controls, then the clock back to 0.
                Self::legacy_step(sim, 200);
                sim.set_time(0.0);
            }
            TaskKind::Walker { .. } | TaskKind::Hopper { .. } | TaskKind::PointMassEasy => {
                Self::randomize_joints(sim, rng)
            }
            TaskKind::Reacher { .. } => {
                Self::randomize_joints(sim, rng);
                let angle = uniform(rng, 0.0, 2.0 * PI);
                let radius = uniform(rng, 0.05, 0.2);
                let target = self.ids.geoms[0];
                let pos = sim.geom_pos_mut(target);
                pos[0] = radius * angle.sin();
                pos[1] = radius * angle.cos();
            }
            TaskKind::FingerSpin => {
                // `_set_random_joint_angles`: redraw until nothing touches (1000 attempts).
                for _ in 0..1000 {
                    Self::randomize_joints(sim, rng);
                    sim.forward();
                    if sim.ncon() == 0 {
                        break;
                    }
                }
            }
            TaskKind::BallInCupCatch => loop {
                let (x, z) = (self.ids.qpos_adr[0], self.ids.qpos_adr[1]);
                sim.qpos_mut()[x] = uniform(rng, -0.2, 0.2);
                sim.qpos_mut()[z] = uniform(rng, 0.2, 0.5);
                sim.forward();
                if sim.ncon() == 0 {
                    break;
                }
            },
        }
    }

    /// `Physics.step(n)` in dm-control's legacy order: for the Euler and implicit integrators
    /// `mj_step2` (the previous `mj_step1` is current), `mj_step` for the rest; for RK4 `n`
    /// plain steps; then `mj_step1`, so that positions-derived quantities are up to date.
    fn legacy_step(sim: &mut Simulation, n: usize) {
        if sim.mj_model().opt.integrator == mujoco_rs::mujoco_c::mjtIntegrator::mjINT_RK4 as i32 {
            sim.step(n);
        } else {
            sim.step2();
            if n > 1 {
                sim.step(n - 1);
            }
        }
        sim.step1();
    }

    fn observation(&self) -> Value {
        let sim = &self.sim;
        let mut o = Vec::with_capacity(self.obs_space.flat_dim());
        let xmat = sim.xmat();
        let (zz, xz, xx) = (8, 2, 0);
        match self.spec_data.kind {
            TaskKind::Cartpole { .. } => {
                o.push(sim.qpos()[0]);
                for m in &xmat[2..] {
                    o.push(m[zz]);
                    o.push(m[xz]);
                }
                o.extend_from_slice(sim.qvel());
            }
            TaskKind::PendulumSwingup => {
                let m = xmat[self.ids.bodies[0]];
                o.extend([m[zz], m[xz]]);
                o.push(sim.qvel()[0]);
            }
            TaskKind::AcrobotSwingup => {
                let (u, l) = (xmat[self.ids.bodies[0]], xmat[self.ids.bodies[1]]);
                o.extend([u[xz], l[xz], u[zz], l[zz]]);
                o.extend_from_slice(sim.qvel());
            }
            TaskKind::CheetahRun => {
                o.extend_from_slice(&sim.qpos()[1..]);
                o.extend_from_slice(sim.qvel());
            }
            TaskKind::Walker { .. } => {
                for m in &xmat[1..] {
                    o.push(m[xx]);
                    o.push(m[xz]);
                }
                o.push(sim.xpos()[self.ids.bodies[0]][2]);
                o.extend_from_slice(sim.qvel());
            }
            TaskKind::Hopper { .. } => {
                o.extend_from_slice(&sim.qpos()[1..]);
                o.extend_from_slice(sim.qvel());
                o.push(sim.sensor(self.ids.sensors[1])[0].ln_1p());
                o.push(sim.sensor(self.ids.sensors[2])[0].ln_1p());
            }
            TaskKind::Reacher { .. } => {
                o.extend_from_slice(sim.qpos());
                let (t, f) = (
                    sim.geom_xpos()[self.ids.geoms[0]],
                    sim.geom_xpos()[self.ids.geoms[1]],
                );
                o.extend([t[0] - f[0], t[1] - f[1]]);
                o.extend_from_slice(sim.qvel());
            }
            TaskKind::FingerSpin => {
                let s = |i: usize| sim.sensor(self.ids.sensors[i]);
                o.push(s(0)[0]);
                o.push(s(1)[0]);
                let (tip, spinner) = (s(2), s(3));
                o.extend([tip[0] - spinner[0], tip[2] - spinner[2]]);
                o.extend([s(4)[0], s(5)[0], s(6)[0]]);
                o.extend([s(7)[0].ln_1p(), s(8)[0].ln_1p()]);
            }
            TaskKind::BallInCupCatch | TaskKind::PointMassEasy => {
                o.extend_from_slice(sim.qpos());
                o.extend_from_slice(sim.qvel());
            }
        }
        Value::BoxF64(o)
    }

    fn reward(&self) -> f64 {
        let sim = &self.sim;
        let xmat = sim.xmat();
        match self.spec_data.kind {
            TaskKind::Cartpole { .. } => {
                let poles = &xmat[2..];
                let upright =
                    poles.iter().map(|m| (m[8] + 1.0) / 2.0).sum::<f64>() / poles.len() as f64;
                let centered = (1.0 + tol(sim.qpos()[0], (0.0, 0.0), 2.0)) / 2.0;
                let small_control = (4.0 + small_control(sim.ctrl()[0])) / 5.0;
                let small_velocity = sim.qvel()[1..]
                    .iter()
                    .map(|&v| tol(v, (0.0, 0.0), 5.0))
                    .fold(f64::INFINITY, f64::min);
                let small_velocity = (1.0 + small_velocity) / 2.0;
                upright * small_control * small_velocity * centered
            }
            TaskKind::PendulumSwingup => {
                let cos_bound = (8.0 * (PI / 180.0)).cos();
                tol(xmat[self.ids.bodies[0]][8], (cos_bound, 1.0), 0.0)
            }
            TaskKind::AcrobotSwingup => {
                let (target, tip) = (self.ids.sites[0], self.ids.sites[1]);
                let v = sub3(sim.site_xpos()[target], sim.site_xpos()[tip]);
                let radius = sim.site_size0(target);
                tol(norm(&v), (0.0, radius), 1.0)
            }
            TaskKind::CheetahRun => {
                let speed = sim.sensor(self.ids.sensors[0])[0];
                tolerance(speed, (10.0, f64::INFINITY), 10.0, Sigmoid::Linear, 0.0)
            }
            TaskKind::Walker { speed } => {
                let torso = self.ids.bodies[0];
                let standing = tol(sim.xpos()[torso][2], (1.2, f64::INFINITY), 1.2 / 2.0);
                let upright = (1.0 + xmat[torso][8]) / 2.0;
                let stand_reward = (3.0 * standing + upright) / 4.0;
                if speed == 0 {
                    stand_reward
                } else {
                    let v = sim.sensor(self.ids.sensors[0])[0];
                    let s = speed as f64;
                    let move_reward =
                        tolerance(v, (s, f64::INFINITY), s / 2.0, Sigmoid::Linear, 0.5);
                    stand_reward * (5.0 * move_reward + 1.0) / 6.0
                }
            }
            TaskKind::Hopper { hopping } => {
                let (torso, foot) = (self.ids.bodies[0], self.ids.bodies[1]);
                let height = sim.xipos()[torso][2] - sim.xipos()[foot][2];
                let standing = tol(height, (0.6, 2.0), 0.0);
                if hopping {
                    let v = sim.sensor(self.ids.sensors[0])[0];
                    standing * tolerance(v, (2.0, f64::INFINITY), 1.0, Sigmoid::Linear, 0.5)
                } else {
                    let ctrl = sim.ctrl();
                    let sc =
                        ctrl.iter().map(|&u| small_control(u)).sum::<f64>() / ctrl.len() as f64;
                    standing * ((sc + 4.0) / 5.0)
                }
            }
            TaskKind::Reacher { .. } => {
                let (t, f) = (self.ids.geoms[0], self.ids.geoms[1]);
                let (a, b) = (sim.geom_xpos()[t], sim.geom_xpos()[f]);
                let radii = sim.geom_size0(t) + sim.geom_size0(f);
                tol(norm(&[a[0] - b[0], a[1] - b[1]]), (0.0, radii), 0.0)
            }
            TaskKind::FingerSpin => {
                if sim.sensor(self.ids.sensors[6])[0] <= -15.0 {
                    1.0
                } else {
                    0.0
                }
            }
            TaskKind::BallInCupCatch => {
                let target = sim.site_xpos()[self.ids.sites[0]];
                let ball = sim.xpos()[self.ids.bodies[0]];
                let size = sim.model().site_size()[self.ids.sites[0]];
                let ball_size = sim.geom_size0(self.ids.geoms[0]);
                let inside = (target[0] - ball[0]).abs() < size[0] - ball_size
                    && (target[2] - ball[2]).abs() < size[2] - ball_size;
                if inside {
                    1.0
                } else {
                    0.0
                }
            }
            TaskKind::PointMassEasy => {
                let (t, p) = (self.ids.geoms[0], self.ids.geoms[1]);
                let size = sim.geom_size0(t);
                let near = tol(
                    norm(&sub3(sim.geom_xpos()[t], sim.geom_xpos()[p])),
                    (0.0, size),
                    size,
                );
                let ctrl = sim.ctrl();
                let control =
                    ctrl.iter().map(|&u| small_control(u)).sum::<f64>() / ctrl.len() as f64;
                near * ((control + 4.0) / 5.0)
            }
        }
    }

    fn read_action(&mut self, action: &Value) -> Result<(), EnvError> {
        let nu = self.sim.ctrl().len();
        let ok = match action {
            Value::BoxF64(v) if v.len() == nu && v.iter().all(|x| x.is_finite()) => {
                self.sim.ctrl_mut().copy_from_slice(v);
                true
            }
            Value::Box(v) if v.len() == nu && v.iter().all(|x| x.is_finite()) => {
                for (c, &x) in self.sim.ctrl_mut().iter_mut().zip(v.iter()) {
                    *c = x as f64;
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(invalid_action(action, &self.act_space))
        }
    }

    fn reacher_target(&self) -> [f64; 2] {
        let p = self.sim.geom_pos(self.ids.geoms[0]);
        [p[0], p[1]]
    }
}

impl Env for DmControl {
    fn observation_space(&self) -> &Space {
        &self.obs_space
    }
    fn action_space(&self) -> &Space {
        &self.act_space
    }
    fn spec(&self) -> Option<&EnvSpec> {
        self.spec.as_ref()
    }
    fn name(&self) -> String {
        self.spec_data.id.into()
    }

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        self.step_count = 0;
        self.sim.reset();
        self.apply_model_constants();
        self.after_reset();
        self.initialize_episode();
        self.after_reset();
        self.needs_reset = false;
        (self.observation(), Info::new())
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        if self.needs_reset {
            return Err(EnvError::ResetNeeded);
        }
        self.read_action(action)?;
        Self::legacy_step(&mut self.sim, self.n_sub_steps);
        let reward = self.reward();
        self.step_count += 1;
        let truncated = self.step_count as f64 >= self.step_limit;
        if truncated {
            self.needs_reset = true;
        }
        let mut info = Info::new();
        if let Some(w) = self.sim.new_warning() {
            info.insert("warning".into(), Json::String(w.into()));
        }
        Ok(Step {
            obs: self.observation(),
            reward,
            terminated: false,
            truncated,
            info,
        })
    }

    fn render(&self) -> Result<rein_core::Render, EnvError> {
        Err(crate::render_unsupported(&self.name()))
    }

    fn get_state(&self) -> Result<Json, EnvError> {
        let s = &self.sim;
        let mut state = json!({
            "qpos": s.qpos(), "qvel": s.qvel(), "act": s.act(), "time": s.time(),
            "qacc_warmstart": s.qacc_warmstart(),
        });
        if matches!(self.spec_data.kind, TaskKind::Reacher { .. }) {
            state["model"] = json!({"geom_pos.target.xy": self.reacher_target()});
        }
        Ok(state)
    }

    fn set_state(&mut self, state: &Json) -> Result<Value, EnvError> {
        let id = self.spec_data.id;
        let obj = state.as_object().ok_or_else(|| EnvError::InvalidState {
            env: id.into(),
            message: format!(
                "expected an object with qpos, qvel, act, time, qacc_warmstart, got {state}"
            ),
        })?;
        let known = ["qpos", "qvel", "act", "time", "qacc_warmstart", "model"];
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(EnvError::InvalidState {
                env: id.into(),
                message: format!("unknown state field {k:?} (expected {})", known.join(", ")),
            });
        }
        let qpos = crate::sim::state_numbers(
            self.spec_data.id,
            state,
            "qpos",
            self.sim.qpos().len(),
            DM_STATE,
        )?;
        let qvel = crate::sim::state_numbers(
            self.spec_data.id,
            state,
            "qvel",
            self.sim.qvel().len(),
            DM_STATE,
        )?;
        let act = match state.get("act") {
            None => vec![0.0; self.sim.act().len()],
            Some(_) => crate::sim::state_numbers(
                self.spec_data.id,
                state,
                "act",
                self.sim.act().len(),
                DM_STATE,
            )?,
        };
        let warm = match state.get("qacc_warmstart") {
            None => vec![0.0; self.sim.qvel().len()],
            Some(_) => crate::sim::state_numbers(
                self.spec_data.id,
                state,
                "qacc_warmstart",
                self.sim.qvel().len(),
                DM_STATE,
            )?,
        };
        let time = match state.get("time") {
            None => 0.0,
            Some(t) => {
                t.as_f64()
                    .filter(|t| t.is_finite())
                    .ok_or_else(|| EnvError::InvalidState {
                        env: id.into(),
                        message: format!("state field \"time\": expected a number, got {t}"),
                    })?
            }
        };
        let target = match (state.get("model"), self.spec_data.kind) {
            (None, _) => None,
            (Some(m), TaskKind::Reacher { .. }) => Some(
                m.get("geom_pos.target.xy")
                    .map(|v| {
                        crate::sim::state_numbers(
                            self.spec_data.id,
                            &json!({"xy": v}),
                            "xy",
                            2,
                            DM_STATE,
                        )
                    })
                    .transpose()?
                    .ok_or_else(|| EnvError::InvalidState {
                        env: id.into(),
                        message: "state field \"model\": expected {\"geom_pos.target.xy\": [x, y]}"
                            .into(),
                    })?,
            ),
            (Some(_), _) => {
                return Err(EnvError::InvalidState {
                    env: id.into(),
                    message: "state field \"model\": this task changes no model parameter".into(),
                })
            }
        };
        // As dm-control's `physics.reset_context()`: reset, write the state, `after_reset`.
        self.sim.reset();
        self.apply_model_constants();
        if let Some(xy) = target {
            let g = self.ids.geoms[0];
            let pos = self.sim.geom_pos_mut(g);
            pos[0] = xy[0];
            pos[1] = xy[1];
        }
        self.sim.qpos_mut().copy_from_slice(&qpos);
        self.sim.qvel_mut().copy_from_slice(&qvel);
        self.sim.act_mut().copy_from_slice(&act);
        self.sim.qacc_warmstart_mut().copy_from_slice(&warm);
        self.sim.set_time(time);
        self.after_reset();
        self.sim.new_warning();
        self.step_count = 0;
        self.needs_reset = false;
        Ok(self.observation())
    }

    fn snapshot(&self) -> Result<Json, EnvError> {
        let mut snap = self.get_state()?;
        snap["ctrl"] = json!(self.sim.ctrl());
        snap["step_count"] = json!(self.step_count);
        snap["needs_reset"] = json!(self.needs_reset);
        snap["rng"] = serde_json::to_value(&self.rng).map_err(|e| EnvError::InvalidState {
            env: self.spec_data.id.into(),
            message: e.to_string(),
        })?;
        Ok(snap)
    }

    fn restore(&mut self, snap: &Json) -> Result<(), EnvError> {
        let name = self.name();
        let ctrl: Vec<f64> = snapshot_field(&name, snap, "ctrl")?;
        if ctrl.len() != self.sim.ctrl().len() {
            return Err(EnvError::InvalidState {
                env: name,
                message: "snapshot ctrl does not match the model".into(),
            });
        }
        let mut state = snap.clone();
        if let Some(o) = state.as_object_mut() {
            for k in ["ctrl", "step_count", "needs_reset", "rng"] {
                o.remove(k);
            }
        }
        self.set_state(&state)?;
        self.sim.ctrl_mut().copy_from_slice(&ctrl);
        self.step_count = snapshot_field(&name, snap, "step_count")?;
        self.needs_reset = snapshot_field(&name, snap, "needs_reset")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_is_one_inside_and_value_at_margin_at_the_margin() {
        for sigmoid in [Sigmoid::Gaussian, Sigmoid::Linear, Sigmoid::Quadratic] {
            let v = if sigmoid == Sigmoid::Gaussian {
                0.1
            } else {
                0.5
            };
            assert_eq!(tolerance(0.3, (0.0, 1.0), 2.0, sigmoid, v), 1.0);
            let at = tolerance(3.0, (0.0, 1.0), 2.0, sigmoid, v);
            assert!((at - v).abs() < 1e-12, "{sigmoid:?}: {at}");
            let below = tolerance(-2.0, (0.0, 1.0), 2.0, sigmoid, v);
            assert!((below - v).abs() < 1e-12, "{sigmoid:?}: {below}");
        }
        // margin 0: an indicator of the bounds.
        assert_eq!(tolerance(1.5, (0.0, 1.0), 0.0, Sigmoid::Gaussian, 0.1), 0.0);
        // Linear and quadratic reach 0 past the margin scaled by their value there.
        assert_eq!(tolerance(5.0, (0.0, 0.0), 1.0, Sigmoid::Linear, 0.0), 0.0);
        assert_eq!(
            tolerance(0.5, (0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0),
            0.75
        );
    }
}
