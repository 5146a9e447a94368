//! Gymnasium 1.4's MuJoCo v5 environments (`gymnasium/envs/mujoco/*_v5.py`).
//!
//! [`GymMujoco`] is Gymnasium's `MujocoEnv`: it owns the [`Simulation`], the frame skip, the
//! initial state and the reset generator; a robot (the private `Robot` trait of `robots.rs`) adds what one environment defines (its
//! observation, reward terms, termination and reset noise). Arithmetic follows Gymnasium's
//! numpy types: control costs of the float32 action are float32 (`np.sum(np.square(action))`
//! with numpy's pairwise order, times the weight as float32 under NEP 50), the rest float64.
//!
//! Reset noise is drawn from rein's seeded generator (numpy's cannot be reproduced); replay a
//! Gymnasium episode by setting its state (`set_state` with `{"qpos": [...], "qvel": [...]}`),
//! as the fixture tests do.

use crate::robots::Robot;
use crate::sim::{ModelFiles, Simulation};
use rein_core::env::{invalid_action, snapshot_field};
use rein_core::options::{bad_option, check_keys};
use rein_core::{Env, EnvError, EnvRng, EnvSpec, Info, Space, Step, Value};
use serde_json::{json, Map, Value as Json};

/// What a Gymnasium MuJoCo state holds, for error messages.
const QPOS_QVEL: &str = "{\"qpos\": [...], \"qvel\": [...]}";

/// The options every v5 environment accepts besides its own (`MujocoEnv.__init__`'s).
pub const COMMON_OPTIONS: &[&str] = &["xml_file", "frame_skip"];

/// A Gymnasium MuJoCo environment: `MujocoEnv` plus one robot.
pub struct GymMujoco {
    id: String,
    sim: Simulation,
    robot: Box<dyn Robot>,
    frame_skip: usize,
    init_qpos: Vec<f64>,
    init_qvel: Vec<f64>,
    rng: EnvRng,
    obs_space: Space,
    act_space: Space,
    spec: Option<EnvSpec>,
    action: Vec<f32>,
    reset_done: bool,
}

impl GymMujoco {
    /// Builds environment `id` from its model files and robot, with the options in `kwargs`
    /// (already checked by the robot's constructor, except `xml_file` and `frame_skip`).
    pub(crate) fn new(
        id: &str,
        files: &ModelFiles,
        default_frame_skip: usize,
        kwargs: &Map<String, Json>,
        make_robot: impl FnOnce(&Simulation) -> Result<Box<dyn Robot>, EnvError>,
    ) -> Result<Self, EnvError> {
        let mut sim = match kwargs.get("xml_file") {
            None => Simulation::from_files(id, files)?,
            Some(Json::String(path)) => Simulation::from_path(id, std::path::Path::new(path))?,
            Some(v) => return Err(bad_option(id, "xml_file", "a path to an MJCF file", v)),
        };
        let frame_skip = match kwargs.get("frame_skip") {
            None => default_frame_skip,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => n as usize,
                _ => return Err(bad_option(id, "frame_skip", "a positive integer", v)),
            },
        };
        sim.forward();
        let robot = make_robot(&sim)?;
        let (low, high): (Vec<f64>, Vec<f64>) = sim
            .ctrl_range()
            .iter()
            .map(|&(l, h)| (l as f32 as f64, h as f32 as f64))
            .unzip();
        let nu = low.len();
        let obs_dim = robot.observation_size(&sim);
        Ok(Self {
            id: id.into(),
            init_qpos: sim.qpos().to_vec(),
            init_qvel: sim.qvel().to_vec(),
            sim,
            robot,
            frame_skip,
            rng: EnvRng::new(),
            obs_space: Space::Box {
                shape: vec![obs_dim],
                dtype: rein_core::Dtype::Float64,
                low: vec![f64::NEG_INFINITY; obs_dim],
                high: vec![f64::INFINITY; obs_dim],
            },
            act_space: Space::box_f32(low, high),
            spec: None,
            action: vec![0.0; nu],
            reset_done: false,
        })
    }

    /// Attaches registration data.
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The simulation (read-only), for inspection and rendering.
    pub fn simulation(&self) -> &Simulation {
        &self.sim
    }

    /// `dt`: the model's timestep times the frame skip.
    pub fn dt(&self) -> f64 {
        self.sim.timestep() * self.frame_skip as f64
    }

    /// Gymnasium's `MujocoEnv.set_state`: writes qpos and qvel, keeps everything else, and
    /// calls `mj_forward`.
    fn write_state(&mut self, qpos: &[f64], qvel: &[f64]) {
        self.sim.qpos_mut().copy_from_slice(qpos);
        self.sim.qvel_mut().copy_from_slice(qvel);
        self.sim.forward();
    }

    fn observation(&self) -> Value {
        let mut obs = Vec::with_capacity(self.obs_space.flat_dim());
        self.robot.observation(&self.sim, &mut obs);
        Value::BoxF64(obs)
    }

    fn read_action(&mut self, action: &Value) -> Result<(), EnvError> {
        let ok = match action {
            Value::Box(v) if v.len() == self.action.len() => {
                self.action.copy_from_slice(v);
                true
            }
            Value::BoxF64(v) if v.len() == self.action.len() => {
                for (a, &x) in self.action.iter_mut().zip(v) {
                    *a = x as f32;
                }
                true
            }
            _ => false,
        };
        // Out-of-range actions pass (MuJoCo clamps controls to ctrlrange, as in Gymnasium);
        // NaN and infinity would make MuJoCo reset the simulation with a warning: refused.
        if !ok || self.action.iter().any(|a| !a.is_finite()) {
            return Err(invalid_action(action, &self.act_space));
        }
        Ok(())
    }
}

/// `ctrl_cost_weight * np.sum(np.square(action))` for a float32 action, as numpy computes it
/// (float32 throughout: the Python float weight is cast to float32 under NEP 50).
pub(crate) fn control_cost_f32(weight: f64, action: &[f32]) -> f32 {
    weight as f32 * rein_core::numpy::sum_of_squares_f32(action)
}

/// Performs `frame_skip` steps with `action` as the control (`MujocoEnv.do_simulation`).
pub(crate) fn do_simulation(sim: &mut Simulation, action: &[f32], frame_skip: usize, rne: bool) {
    for (c, &a) in sim.ctrl_mut().iter_mut().zip(action) {
        *c = a as f64;
    }
    sim.step(frame_skip);
    if rne {
        sim.rne_post_constraint();
    }
}

impl Env for GymMujoco {
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
        self.id.clone()
    }

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        self.sim.reset();
        let (mut qpos, mut qvel) = (self.init_qpos.clone(), self.init_qvel.clone());
        self.robot.reset_noise(self.rng.get(), &mut qpos, &mut qvel);
        self.write_state(&qpos, &qvel);
        self.reset_done = true;
        let mut info = Info::new();
        self.robot.reset_info(&self.sim, &self.init_qpos, &mut info);
        (self.observation(), info)
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        if !self.reset_done {
            return Err(EnvError::ResetNeeded);
        }
        self.read_action(action)?;
        let dt = self.dt();
        let mut info = Info::new();
        let (reward, terminated) = self.robot.step(
            &mut self.sim,
            &self.action,
            self.frame_skip,
            dt,
            &self.init_qpos,
            &mut info,
        );
        if let Some(w) = self.sim.new_warning() {
            info.insert("warning".into(), Json::String(w.into()));
        }
        Ok(Step {
            obs: self.observation(),
            reward,
            terminated,
            truncated: false,
            info,
        })
    }

    fn render(&self) -> Result<rein_core::Render, EnvError> {
        Err(crate::render_unsupported(&self.name()))
    }

    fn get_state(&self) -> Result<Json, EnvError> {
        Ok(json!({"qpos": self.sim.qpos(), "qvel": self.sim.qvel()}))
    }

    fn set_state(&mut self, state: &Json) -> Result<Value, EnvError> {
        let qpos =
            crate::sim::state_numbers(&self.id, state, "qpos", self.init_qpos.len(), QPOS_QVEL)?;
        let qvel =
            crate::sim::state_numbers(&self.id, state, "qvel", self.init_qvel.len(), QPOS_QVEL)?;
        if let Some(obj) = state.as_object() {
            for k in obj.keys() {
                if k != "qpos" && k != "qvel" {
                    return Err(EnvError::InvalidState {
                        env: self.id.clone(),
                        message: format!("unknown state field {k:?} (expected qpos and qvel)"),
                    });
                }
            }
        }
        self.write_state(&qpos, &qvel);
        self.sim.new_warning();
        self.reset_done = true;
        Ok(self.observation())
    }

    fn snapshot(&self) -> Result<Json, EnvError> {
        let s = &self.sim;
        let (xpos, xipos) = s.body_kinematics();
        Ok(json!({
            "qpos": s.qpos(), "qvel": s.qvel(), "act": s.act(), "ctrl": s.ctrl(),
            "qacc_warmstart": s.qacc_warmstart(), "time": s.time(),
            "xpos": xpos, "xipos": xipos,
            "reset_done": self.reset_done, "rng": self.rng,
        }))
    }

    fn restore(&mut self, snap: &Json) -> Result<(), EnvError> {
        let name = self.id.clone();
        let qpos: Vec<f64> = snapshot_field(&name, snap, "qpos")?;
        let qvel: Vec<f64> = snapshot_field(&name, snap, "qvel")?;
        let act: Vec<f64> = snapshot_field(&name, snap, "act")?;
        let ctrl: Vec<f64> = snapshot_field(&name, snap, "ctrl")?;
        let warm: Vec<f64> = snapshot_field(&name, snap, "qacc_warmstart")?;
        let sizes = [
            (qpos.len(), self.sim.qpos().len()),
            (qvel.len(), self.sim.qvel().len()),
            (act.len(), self.sim.act().len()),
            (ctrl.len(), self.sim.ctrl().len()),
            (warm.len(), self.sim.qacc_warmstart().len()),
        ];
        if sizes.iter().any(|(a, b)| a != b) {
            return Err(EnvError::InvalidState {
                env: name,
                message: "snapshot arrays do not match the model's sizes".into(),
            });
        }
        self.sim.reset();
        self.sim.qpos_mut().copy_from_slice(&qpos);
        self.sim.qvel_mut().copy_from_slice(&qvel);
        self.sim.act_mut().copy_from_slice(&act);
        self.sim.ctrl_mut().copy_from_slice(&ctrl);
        self.sim.qacc_warmstart_mut().copy_from_slice(&warm);
        self.sim.set_time(snapshot_field(&name, snap, "time")?);
        self.sim.forward();
        if self.robot.uses_contact_forces() {
            self.sim.rne_post_constraint();
        }
        let xpos: Vec<f64> = snapshot_field(&name, snap, "xpos")?;
        let xipos: Vec<f64> = snapshot_field(&name, snap, "xipos")?;
        if !self.sim.set_body_kinematics(&xpos, &xipos) {
            return Err(EnvError::InvalidState {
                env: name,
                message: "snapshot body positions do not match the model's sizes".into(),
            });
        }
        self.reset_done = snapshot_field(&name, snap, "reset_done")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        Ok(())
    }
}

/// Checks `kwargs` against a robot's own options plus [`COMMON_OPTIONS`].
pub(crate) fn check_options(
    id: &str,
    kwargs: &Map<String, Json>,
    own: &[&str],
) -> Result<(), EnvError> {
    let all: Vec<&str> = own.iter().chain(COMMON_OPTIONS).copied().collect();
    check_keys(id, kwargs, &all)
}
