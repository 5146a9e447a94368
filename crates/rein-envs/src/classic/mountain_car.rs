//! MountainCar-v0 and MountainCarContinuous-v0 (Moore 1990), as Gymnasium's
//! `mountain_car` and `continuous_mountain_car`.

use crate::util::{discrete_action, f32_box, scalar_box_action, state_array, state_json, uniform};
use rein_core::canvas::{rotate, Canvas};
use rein_core::env::snapshot_field;
use rein_core::{Env, EnvError, EnvRng, EnvSpec, Info, Render, Space, Step, Value};

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;

fn obs_space() -> Space {
    f32_box(&[-1.2, -0.07], &[0.6, 0.07])
}

fn render_car(position: f64, goal_position: f64) -> Render {
    let (w, _h) = (600.0, 400.0);
    let world_width = MAX_POSITION - MIN_POSITION;
    let scale = w / world_width;
    let height = |x: f64| (3.0 * x).sin() * 0.45 + 0.55;
    let mut c = Canvas::new(600, 400);
    let pts: Vec<(f64, f64)> = (0..100)
        .map(|i| {
            let x = MIN_POSITION + world_width * i as f64 / 99.0;
            ((x - MIN_POSITION) * scale, height(x) * scale)
        })
        .collect();
    c.polyline(&pts, 2.0, [0, 0, 0]);
    let clearance = 10.0;
    let (carwidth, carheight) = (40.0, 20.0);
    let angle = (3.0 * position).cos();
    let t = (
        (position - MIN_POSITION) * scale,
        height(position) * scale + clearance,
    );
    let (l, r, tp, b) = (-carwidth / 2.0, carwidth / 2.0, carheight, 0.0);
    c.fill_polygon(
        &[(l, b), (l, tp), (r, tp), (r, b)].map(|p| rotate(p, angle, t)),
        [0, 0, 0],
    );
    for wx in [carwidth / 4.0, -carwidth / 4.0] {
        let (cx, cy) = rotate((wx, 0.0), angle, t);
        c.fill_circle(cx, cy, carheight / 2.5, [128, 128, 128]);
    }
    let flagx = (goal_position - MIN_POSITION) * scale;
    let flagy1 = height(goal_position) * scale;
    let flagy2 = flagy1 + 50.0;
    c.line((flagx, flagy1), (flagx, flagy2), 1.0, [0, 0, 0]);
    c.fill_polygon(
        &[
            (flagx, flagy2),
            (flagx, flagy2 - 10.0),
            (flagx + 25.0, flagy2 - 5.0),
        ],
        [204, 204, 0],
    );
    Render::Rgb(c.into_frame())
}

/// The discrete mountain car: accelerate left (0), don't (1) or right (2); -1 per step,
/// terminated at position >= 0.5. Internal state is float64 `(position, velocity)`.
pub struct MountainCar {
    state: Option<[f64; 2]>,
    rng: EnvRng,
    obs_space: Space,
    act_space: Space,
    spec: Option<EnvSpec>,
}

impl Default for MountainCar {
    fn default() -> Self {
        Self::new()
    }
}

impl MountainCar {
    /// A new environment (call `reset` before `step`).
    pub fn new() -> Self {
        Self {
            state: None,
            rng: EnvRng::new(),
            obs_space: obs_space(),
            act_space: Space::discrete(3),
            spec: None,
        }
    }

    /// Attaches registration data.
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    fn obs(s: &[f64; 2]) -> Value {
        Value::Box(s.iter().map(|&v| v as f32).collect())
    }
}

impl Env for MountainCar {
    crate::util::builtin_env_accessors!("MountainCar-v0");

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        let s = [uniform(self.rng.get(), -0.6, -0.4), 0.0];
        self.state = Some(s);
        (Self::obs(&s), Info::new())
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let a = discrete_action(action, &self.act_space)? as i64;
        let [mut position, mut velocity] = self.state.ok_or(EnvError::ResetNeeded)?;
        velocity += (a - 1) as f64 * 0.001 + (3.0 * position).cos() * (-0.0025);
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= 0.5 && velocity >= 0.0;
        let s = [position, velocity];
        self.state = Some(s);
        Ok(Step {
            obs: Self::obs(&s),
            reward: -1.0,
            terminated,
            truncated: false,
            info: Info::new(),
        })
    }

    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        Ok(state_json(&self.state.ok_or(EnvError::ResetNeeded)?))
    }

    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let s = state_array::<2>("MountainCar-v0", state, "[position, velocity]")?;
        self.state = Some(s);
        Ok(Self::obs(&s))
    }

    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(serde_json::json!({"state": self.state, "rng": self.rng}))
    }

    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let name = self.name();
        self.state = snapshot_field(&name, snap, "state")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        Ok(())
    }
    fn render(&self) -> Result<Render, EnvError> {
        let [p, _] = self.state.ok_or(EnvError::ResetNeeded)?;
        Ok(render_car(p, 0.5))
    }
}

/// The continuous mountain car: force in [-1, 1] (out-of-bound actions are clipped, but the
/// reward's action cost uses the unclipped action, as in Gymnasium); +100 at the goal
/// (position >= 0.45) minus 0.1 a^2 per step.
///
/// Gymnasium stores the state as float32 after every step but leaves the reset state float64,
/// and numpy 2 mixes float32 and Python floats in float32. [`ContinuousState`] keeps track of
/// which representation the state is in so that every operation rounds where Gymnasium's does.
pub struct MountainCarContinuous {
    state: Option<ContinuousState>,
    rng: EnvRng,
    obs_space: Space,
    act_space: Space,
    spec: Option<EnvSpec>,
}

/// The state of [`MountainCarContinuous`] in the precision Gymnasium holds it in.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ContinuousState {
    /// After reset (or `set_state`): float64.
    F64([f64; 2]),
    /// After a step: float32.
    F32([f32; 2]),
}

impl ContinuousState {
    fn values(&self) -> [f64; 2] {
        match *self {
            ContinuousState::F64(s) => s,
            ContinuousState::F32(s) => [s[0] as f64, s[1] as f64],
        }
    }
}

impl Default for MountainCarContinuous {
    fn default() -> Self {
        Self::new()
    }
}

const GOAL_POSITION_CONT: f64 = 0.45;
const POWER: f64 = 0.0015;

impl MountainCarContinuous {
    /// A new environment (call `reset` before `step`).
    pub fn new() -> Self {
        Self {
            state: None,
            rng: EnvRng::new(),
            obs_space: obs_space(),
            act_space: f32_box(&[-1.0], &[1.0]),
            spec: None,
        }
    }

    /// Attaches registration data.
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The internal state with its precision.
    pub fn state(&self) -> Option<ContinuousState> {
        self.state
    }

    fn obs(s: &ContinuousState) -> Value {
        let v = s.values();
        Value::Box(v.iter().map(|&x| x as f32).collect())
    }

    /// One step of the dynamics in float64 (the state right after reset).
    fn step_f64(s: [f64; 2], a: f32) -> ([f64; 2], bool) {
        let [mut position, mut velocity] = s;
        let cos_term = 0.0025 * (3.0 * position).cos();
        if (-1.0..=1.0).contains(&a) {
            // float32 force: the increment is a float32 operation.
            let inc = a * (POWER as f32) - cos_term as f32;
            velocity += inc as f64;
        } else {
            let force = if a < -1.0 { -1.0 } else { 1.0 };
            velocity += force * POWER - cos_term;
        }
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= GOAL_POSITION_CONT && velocity >= 0.0;
        ([position, velocity], terminated)
    }

    /// One step in float32 (every later step): Python floats are rounded to float32 first.
    fn step_f32(s: [f32; 2], a: f32) -> ([f32; 2], bool) {
        let [mut position, mut velocity] = s;
        let cos_term = 0.0025 * ((3.0f32 * position) as f64).cos();
        let inc: f32 = if (-1.0..=1.0).contains(&a) {
            a * (POWER as f32) - cos_term as f32
        } else {
            let force = if a < -1.0 { -1.0 } else { 1.0 };
            (force * POWER - cos_term) as f32
        };
        velocity += inc;
        velocity = velocity.clamp(-(MAX_SPEED as f32), MAX_SPEED as f32);
        position += velocity;
        position = position.clamp(MIN_POSITION as f32, MAX_POSITION as f32);
        if position == MIN_POSITION as f32 && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= GOAL_POSITION_CONT as f32 && velocity >= 0.0;
        ([position, velocity], terminated)
    }
}

impl Env for MountainCarContinuous {
    crate::util::builtin_env_accessors!("MountainCarContinuous-v0");

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        let s = ContinuousState::F64([uniform(self.rng.get(), -0.6, -0.4), 0.0]);
        self.state = Some(s);
        (Self::obs(&s), Info::new())
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let a = scalar_box_action(action, &self.act_space)?;
        if a.is_nan() {
            return Err(rein_core::env::invalid_action(action, &self.act_space));
        }
        let state = self.state.ok_or(EnvError::ResetNeeded)?;
        let (new, terminated) = match state {
            ContinuousState::F64(s) => {
                let (n, t) = Self::step_f64(s, a);
                ([n[0] as f32, n[1] as f32], t)
            }
            ContinuousState::F32(s) => Self::step_f32(s, a),
        };
        let s = ContinuousState::F32(new);
        self.state = Some(s);
        let mut reward = if terminated { 100.0 } else { 0.0 };
        let a64 = a as f64;
        reward -= a64 * a64 * 0.1;
        Ok(Step {
            obs: Self::obs(&s),
            reward,
            terminated,
            truncated: false,
            info: Info::new(),
        })
    }

    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        Ok(state_json(
            &self.state.ok_or(EnvError::ResetNeeded)?.values(),
        ))
    }

    /// Takes `[position, velocity]` as float64 (the precision of a freshly reset state).
    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let s = state_array::<2>("MountainCarContinuous-v0", state, "[position, velocity]")?;
        let s = ContinuousState::F64(s);
        self.state = Some(s);
        Ok(Self::obs(&s))
    }

    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(serde_json::json!({"state": self.state, "rng": self.rng}))
    }

    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let name = self.name();
        self.state = snapshot_field(&name, snap, "state")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        Ok(())
    }
    fn render(&self) -> Result<Render, EnvError> {
        let [p, _] = self.state.ok_or(EnvError::ResetNeeded)?.values();
        Ok(render_car(p, GOAL_POSITION_CONT))
    }
}
