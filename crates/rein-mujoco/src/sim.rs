//! One MuJoCo simulation: a compiled model and its data, with the few operations the
//! environments need (Gymnasium's `MujocoEnv` and dm-control's `Physics` call the same C
//! functions: `mj_resetData`, `mj_forward`, `mj_step`, `mj_rnePostConstraint`).

use mujoco_rs::mujoco_c::{self, mjtObj};
use mujoco_rs::prelude::{MjData, MjModel};
use mujoco_rs::wrappers::mj_auxiliary::MjVfs;
use rein_core::EnvError;
use std::ffi::CString;

/// A model file and the files it includes, all embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct ModelFiles {
    /// The name MuJoCo is given for the main file (resolves relative includes).
    pub name: &'static str,
    /// The main MJCF text.
    pub xml: &'static str,
    /// Included files by the path the main file names them with (`./common/skybox.xml`).
    pub includes: &'static [(&'static str, &'static str)],
}

/// A MuJoCo model and data owned together (each environment owns one: dm-control's reacher
/// moves its target in the model at every reset).
pub struct Simulation {
    data: MjData<Box<MjModel>>,
    /// `mjData.warning[i].number` when last looked at (see [`Simulation::new_warning`]).
    warnings_seen: [i32; 7],
}

/// MuJoCo's warning kinds (`mjtWarning`), in order.
const WARNINGS: [&str; 7] = [
    "bad inertia (mjWARN_INERTIA)",
    "too many contacts (mjWARN_CONTACTFULL)",
    "too many constraints (mjWARN_CNSTRFULL)",
    "NaN, Inf or huge value in qpos: MuJoCo reset the simulation (mjWARN_BADQPOS)",
    "NaN, Inf or huge value in qvel: MuJoCo reset the simulation (mjWARN_BADQVEL)",
    "NaN, Inf or huge value in qacc: MuJoCo reset the simulation (mjWARN_BADQACC)",
    "NaN, Inf or huge value in ctrl: MuJoCo zeroed the controls (mjWARN_BADCTRL)",
];

/// MuJoCo's bound on state values (`mjMAXVAL`): larger ones make it reset the simulation.
pub const MAX_STATE_VALUE: f64 = 1e10;

/// Routes MuJoCo's messages to the `log` crate (dropped unless the program installs a logger),
/// once, before the first model: MuJoCo's default handler prints warnings to stdout and appends
/// them to MUJOCO_LOG.TXT in the working directory, and library crates never print.
fn quiet_mujoco() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: every MuJoCo call of this crate comes after this `Once` (models are only made by
    // `Simulation`'s constructors), so no other thread uses MuJoCo while the hook is installed.
    ONCE.call_once(|| unsafe { mujoco_rs::logging::install_logging_hook() });
}

/// The kinds of named objects environments look up.
#[derive(Debug, Clone, Copy)]
pub enum Object {
    /// A body (`xpos`, `xipos`, `subtree_com`).
    Body,
    /// A geom.
    Geom,
    /// A site.
    Site,
    /// A joint.
    Joint,
    /// A sensor.
    Sensor,
}

fn model_error(env: &str, what: impl std::fmt::Display) -> EnvError {
    EnvError::InvalidOption {
        env: env.into(),
        message: format!("MuJoCo could not load the model: {what}"),
    }
}

impl Simulation {
    /// Compiles embedded model files (through MuJoCo's virtual file system, so includes resolve
    /// without touching the disk).
    pub fn from_files(env: &str, files: &ModelFiles) -> Result<Self, EnvError> {
        quiet_mujoco();
        let mut vfs = MjVfs::new();
        vfs.add_from_buffer(files.name, files.xml.as_bytes())
            .map_err(|e| model_error(env, e))?;
        for (name, text) in files.includes {
            vfs.add_from_buffer(name.trim_start_matches("./"), text.as_bytes())
                .map_err(|e| model_error(env, e))?;
        }
        let model = MjModel::from_xml_vfs(files.name, &vfs)
            .map_err(|e| model_error(env, format!("{}: {e}", files.name)))?;
        Ok(Self::from_model(model))
    }

    /// Compiles an MJCF file from disk (Gymnasium's `xml_file` option).
    pub fn from_path(env: &str, path: &std::path::Path) -> Result<Self, EnvError> {
        quiet_mujoco();
        if !path.is_file() {
            return Err(model_error(
                env,
                format!("{} does not exist", path.display()),
            ));
        }
        let model = MjModel::from_xml(path)
            .map_err(|e| model_error(env, format!("{}: {e}", path.display())))?;
        Ok(Self::from_model(model))
    }

    fn from_model(model: MjModel) -> Self {
        Self {
            data: MjData::new(Box::new(model)),
            warnings_seen: [0; 7],
        }
    }

    /// The first kind of MuJoCo warning raised since the last call (for the step's `info`):
    /// unstable simulations are reset by MuJoCo itself, as in Gymnasium and dm-control, and
    /// this says so instead of printing.
    pub fn new_warning(&mut self) -> Option<&'static str> {
        let mut first = None;
        for (i, stat) in self.data.ffi().warning.iter().enumerate() {
            if stat.number != self.warnings_seen[i] {
                self.warnings_seen[i] = stat.number;
                first = first.or(Some(WARNINGS[i]));
            }
        }
        first
    }

    /// The compiled model.
    pub fn model(&self) -> &MjModel {
        self.data.model()
    }

    /// The raw `mjModel` (sizes and options).
    pub fn mj_model(&self) -> &mujoco_c::mjModel {
        self.data.model().ffi()
    }

    /// The raw `mjData` (time and scalars).
    pub fn mj_data(&self) -> &mujoco_c::mjData {
        self.data.ffi()
    }

    /// `mjModel.opt.timestep`.
    pub fn timestep(&self) -> f64 {
        self.mj_model().opt.timestep
    }

    /// The id of a named object, or an error naming it.
    pub fn id(&self, env: &str, kind: Object, name: &str) -> Result<usize, EnvError> {
        let obj = match kind {
            Object::Body => mjtObj::mjOBJ_BODY,
            Object::Geom => mjtObj::mjOBJ_GEOM,
            Object::Site => mjtObj::mjOBJ_SITE,
            Object::Joint => mjtObj::mjOBJ_JOINT,
            Object::Sensor => mjtObj::mjOBJ_SENSOR,
        };
        let c = CString::new(name).map_err(|_| model_error(env, "a name with a NUL byte"))?;
        // SAFETY: a valid model pointer and a NUL-terminated name.
        let id = unsafe { mujoco_c::mj_name2id(self.mj_model(), obj as i32, c.as_ptr()) };
        usize::try_from(id)
            .map_err(|_| model_error(env, format!("the model has no {kind:?} named {name:?}")))
    }

    /// `mj_resetData`: the model's initial state (qpos0, zero velocity, time 0, no warm start).
    pub fn reset(&mut self) {
        self.data.reset();
        self.warnings_seen = [0; 7];
    }

    /// `mj_forward`: positions, velocities and accelerations of the current state.
    pub fn forward(&mut self) {
        self.data.forward();
    }

    /// `n` calls of `mj_step` with the current controls.
    pub fn step(&mut self, n: usize) {
        for _ in 0..n {
            self.data.step();
        }
    }

    /// `mj_rnePostConstraint`: `cacc`, `cfrc_int` and `cfrc_ext` of the current state
    /// (MuJoCo computes them only on demand; Gymnasium calls it after every step).
    pub fn rne_post_constraint(&mut self) {
        self.data.rne_post_constraint();
    }

    /// Joint positions.
    pub fn qpos(&self) -> &[f64] {
        self.data.qpos()
    }
    /// Joint positions, writable.
    pub fn qpos_mut(&mut self) -> &mut [f64] {
        self.data.qpos_mut()
    }
    /// Joint velocities.
    pub fn qvel(&self) -> &[f64] {
        self.data.qvel()
    }
    /// Joint velocities, writable.
    pub fn qvel_mut(&mut self) -> &mut [f64] {
        self.data.qvel_mut()
    }
    /// Actuator activations.
    pub fn act(&self) -> &[f64] {
        self.data.act()
    }
    /// Actuator activations, writable.
    pub fn act_mut(&mut self) -> &mut [f64] {
        self.data.act_mut()
    }
    /// The solver's warm start (dm-control restores it for identical first steps).
    pub fn qacc_warmstart(&self) -> &[f64] {
        self.data.qacc_warmstart()
    }
    /// The solver's warm start, writable.
    pub fn qacc_warmstart_mut(&mut self) -> &mut [f64] {
        self.data.qacc_warmstart_mut()
    }
    /// Controls.
    pub fn ctrl(&self) -> &[f64] {
        self.data.ctrl()
    }
    /// Controls, writable.
    pub fn ctrl_mut(&mut self) -> &mut [f64] {
        self.data.ctrl_mut()
    }
    /// Simulation time.
    pub fn time(&self) -> f64 {
        self.data.ffi().time
    }
    /// Sets the simulation time.
    pub fn set_time(&mut self, time: f64) {
        // SAFETY: a plain scalar field of a valid mjData.
        unsafe { self.data.ffi_mut().time = time };
    }
    /// Body frame positions.
    pub fn xpos(&self) -> &[[f64; 3]] {
        self.data.xpos()
    }
    /// Body frame orientations (row-major 3x3).
    pub fn xmat(&self) -> &[[f64; 9]] {
        self.data.xmat()
    }
    /// Body centre-of-mass positions.
    pub fn xipos(&self) -> &[[f64; 3]] {
        self.data.xipos()
    }
    /// Geom positions.
    pub fn geom_xpos(&self) -> &[[f64; 3]] {
        self.data.geom_xpos()
    }
    /// Geom orientations.
    pub fn geom_xmat(&self) -> &[[f64; 9]] {
        self.data.geom_xmat()
    }
    /// Site positions.
    pub fn site_xpos(&self) -> &[[f64; 3]] {
        self.data.site_xpos()
    }
    /// Site orientations.
    pub fn site_xmat(&self) -> &[[f64; 9]] {
        self.data.site_xmat()
    }
    /// Centres of mass of the subtrees.
    pub fn subtree_com(&self) -> &[[f64; 3]] {
        self.data.subtree_com()
    }
    /// Com-based body inertias.
    pub fn cinert(&self) -> &[[f64; 10]] {
        self.data.cinert()
    }
    /// Com-based body velocities.
    pub fn cvel(&self) -> &[[f64; 6]] {
        self.data.cvel()
    }
    /// Com-based external forces (after [`Simulation::rne_post_constraint`]).
    pub fn cfrc_ext(&self) -> &[[f64; 6]] {
        self.data.cfrc_ext()
    }
    /// Actuator forces in joint space.
    pub fn qfrc_actuator(&self) -> &[f64] {
        self.data.qfrc_actuator()
    }
    /// Constraint forces in joint space.
    pub fn qfrc_constraint(&self) -> &[f64] {
        self.data.qfrc_constraint()
    }
    /// Tendon lengths.
    pub fn ten_length(&self) -> &[f64] {
        self.data.ten_length()
    }
    /// Tendon velocities.
    pub fn ten_velocity(&self) -> &[f64] {
        self.data.ten_velocity()
    }
    /// All sensor readings.
    pub fn sensordata(&self) -> &[f64] {
        self.data.sensordata()
    }
    /// The readings of sensor `id` (`sensor_adr`, `sensor_dim`).
    pub fn sensor(&self, id: usize) -> &[f64] {
        let m = self.mj_model();
        // SAFETY: id < nsensor (from `Simulation::id`), arrays of that length.
        let (adr, dim) = unsafe {
            (
                *m.sensor_adr.add(id) as usize,
                *m.sensor_dim.add(id) as usize,
            )
        };
        &self.sensordata()[adr..adr + dim]
    }
    /// Body masses.
    pub fn body_mass(&self) -> &[f64] {
        self.model().body_mass()
    }
    /// `actuator_ctrlrange` (low, high) per actuator.
    pub fn ctrl_range(&self) -> Vec<(f64, f64)> {
        self.model()
            .actuator_ctrlrange()
            .iter()
            .map(|r| (r[0], r[1]))
            .collect()
    }
    /// Whether actuator `i` clamps its control (`actuator_ctrllimited`).
    pub fn ctrl_limited(&self, i: usize) -> bool {
        self.model().actuator_ctrllimited()[i]
    }
    /// Mutable geom positions in the model (dm-control's reacher moves its target there).
    pub fn geom_pos_mut(&mut self, id: usize) -> &mut [f64; 3] {
        let m = self.mj_model();
        assert!(id < m.ngeom as usize, "geom id {id} out of range");
        // SAFETY: geom_pos holds 3 * ngeom numbers; the model is owned by this simulation and
        // no other reference to it is alive while the returned borrow lives.
        unsafe { &mut *(m.geom_pos.add(3 * id) as *mut [f64; 3]) }
    }
    /// Geom positions in the model.
    pub fn geom_pos(&self, id: usize) -> [f64; 3] {
        self.model().geom_pos()[id]
    }
    /// Joint range `(low, high)` of joint `id`.
    pub fn jnt_range(&self, id: usize) -> (f64, f64) {
        let r = self.model().jnt_range()[id];
        (r[0], r[1])
    }
    /// `jnt_qposadr` of joint `id`.
    pub fn jnt_qposadr(&self, id: usize) -> usize {
        self.model().jnt_qposadr()[id] as usize
    }
    /// `jnt_dofadr` of joint `id`.
    pub fn jnt_dofadr(&self, id: usize) -> usize {
        self.model().jnt_dofadr()[id] as usize
    }
}

/// Model parameters the dm-control tasks change at reset (dm-control writes them through
/// `physics.named.model`).
impl Simulation {
    /// `geom_size[id][0]`, writable.
    pub fn set_geom_size0(&mut self, id: usize, value: f64) {
        let m = self.mj_model();
        assert!(id < m.ngeom as usize, "geom id {id} out of range");
        // SAFETY: geom_size holds 3 * ngeom numbers of the model this simulation owns.
        unsafe { *m.geom_size.add(3 * id) = value };
    }
    /// `geom_size[id][0]`.
    pub fn geom_size0(&self, id: usize) -> f64 {
        self.model().geom_size()[id][0]
    }
    /// `site_size[id][0]`.
    pub fn site_size0(&self, id: usize) -> f64 {
        self.model().site_size()[id][0]
    }
    /// `dof_damping[dof]`, writable.
    pub fn set_dof_damping(&mut self, dof: usize, value: f64) {
        let m = self.mj_model();
        assert!(dof < m.nv as usize, "dof {dof} out of range");
        // SAFETY: dof_damping holds nv numbers of the model this simulation owns.
        unsafe { *m.dof_damping.add(dof) = value };
    }
    /// Number of active contacts (`mjData.ncon`).
    pub fn ncon(&self) -> usize {
        self.mj_data().ncon as usize
    }
    /// `mj_step1`: the position and velocity stages (dm-control's legacy stepping ends with it,
    /// so that observations see the new positions).
    pub fn step1(&mut self) {
        self.data.step1();
    }
    /// `mj_step2`: actuation, acceleration and integration after `mj_step1`.
    pub fn step2(&mut self) {
        self.data.step2();
    }
    /// Joint types (`mjtJoint`: 0 free, 1 ball, 2 slide, 3 hinge) and whether each is limited.
    pub fn joints(&self) -> Vec<(i32, bool)> {
        let m = self.model();
        m.jnt_type()
            .iter()
            .zip(m.jnt_limited())
            .map(|(&t, &l)| (t as i32, l))
            .collect()
    }
}

impl Simulation {
    /// Body positions and centres of mass as the last step left them. After `mj_step` they
    /// describe the state before its integration, and Gymnasium reads them as the "before"
    /// position of the next step (Ant's `xpos`, Humanoid's mass centre), so an exact restore
    /// writes them back after `mj_forward`.
    pub fn body_kinematics(&self) -> (Vec<f64>, Vec<f64>) {
        (
            self.xpos().iter().flatten().copied().collect(),
            self.xipos().iter().flatten().copied().collect(),
        )
    }

    /// Writes back what [`Simulation::body_kinematics`] returned; `false` when the sizes do
    /// not match the model.
    pub fn set_body_kinematics(&mut self, xpos: &[f64], xipos: &[f64]) -> bool {
        let n = self.xpos().len() * 3;
        if xpos.len() != n || xipos.len() != n {
            return false;
        }
        for (dst, src) in self.data.xpos_mut().iter_mut().zip(xpos.chunks_exact(3)) {
            dst.copy_from_slice(src);
        }
        for (dst, src) in self.data.xipos_mut().iter_mut().zip(xipos.chunks_exact(3)) {
            dst.copy_from_slice(src);
        }
        true
    }
}

/// Field `key` of a `set_state` argument: `n` numbers within [`MAX_STATE_VALUE`], or an error
/// naming the env, the field and what a state holds (`expected`).
pub(crate) fn state_numbers(
    env: &str,
    state: &serde_json::Value,
    key: &str,
    n: usize,
    expected: &str,
) -> Result<Vec<f64>, EnvError> {
    let err = |what: String| EnvError::InvalidState {
        env: env.into(),
        message: format!("state field {key:?}: {what}"),
    };
    let arr = state
        .get(key)
        .ok_or_else(|| err(format!("missing (expected {expected})")))?
        .as_array()
        .ok_or_else(|| err(format!("expected an array of {n} numbers")))?;
    if arr.len() != n {
        return Err(err(format!("expected {n} numbers, got {}", arr.len())));
    }
    arr.iter()
        .map(|v| match v.as_f64() {
            Some(x) if x.abs() <= MAX_STATE_VALUE => Ok(x),
            _ => Err(err(format!(
                "expected numbers within +-{MAX_STATE_VALUE:e} (MuJoCo resets larger states), got {v}"
            ))),
        })
        .collect()
}

/// A uniform draw in `[low, high)` as numpy's `uniform` computes it: `low + (high - low) * u`
/// (Gymnasium's reset noise and dm-control's initial states).
pub(crate) fn uniform(rng: &mut rein_core::ReinRng, low: f64, high: f64) -> f64 {
    use rand::Rng;
    low + (high - low) * rng.random::<f64>()
}

/// The Euclidean norm (`np.linalg.norm` of a vector).
pub(crate) fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// `a - b` of two 3-vectors (body, site or geom positions).
pub(crate) fn sub3(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
