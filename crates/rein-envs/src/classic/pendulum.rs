//! Pendulum-v1: swing a frictionless pendulum up and keep it upright, as Gymnasium's
//! `classic_control.pendulum`.

use crate::util::{
    f32_box, np_square_pow, np_square_powf, scalar_box_action, state_array, state_json, uniform,
};
use rein_core::canvas::{rotate, Canvas};
use rein_core::env::snapshot_field;
use rein_core::{Env, EnvError, EnvRng, EnvSpec, Info, Render, Space, Step, Value};
use std::f64::consts::PI;

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f32 = 2.0;
const DT: f64 = 0.05;

/// Gymnasium's `angle_normalize`: `((x + pi) % (2 pi)) - pi` with Python's floor modulo.
pub fn angle_normalize(x: f64) -> f64 {
    py_mod(x + PI, 2.0 * PI) - PI
}

/// Python/numpy floating-point modulo: the result has the sign of the divisor.
pub(crate) fn py_mod(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m != 0.0 && ((m < 0.0) != (b < 0.0)) {
        m + b
    } else if m == 0.0 {
        0.0f64.copysign(b)
    } else {
        m
    }
}

/// The pendulum: torque in [-2, 2] (clipped), reward `-(theta^2 + 0.1 theta_dot^2 +
/// 0.001 u^2)`, never terminates (the 200-step time limit truncates).
pub struct Pendulum {
    state: Option<[f64; 2]>,
    last_u: Option<f32>,
    g: f64,
    rng: EnvRng,
    obs_space: Space,
    act_space: Space,
    spec: Option<EnvSpec>,
}

impl Pendulum {
    /// A pendulum with gravity `g` (Gymnasium's default is 10.0).
    pub fn new(g: f64) -> Self {
        Self {
            state: None,
            last_u: None,
            g,
            rng: EnvRng::new(),
            obs_space: f32_box(&[-1.0, -1.0, -8.0], &[1.0, 1.0, 8.0]),
            act_space: f32_box(&[-MAX_TORQUE], &[MAX_TORQUE]),
            spec: None,
        }
    }

    /// Attaches registration data.
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The torque applied by the last step, after clipping (`env.unwrapped.last_u`).
    pub fn last_u(&self) -> Option<f32> {
        self.last_u
    }

    fn obs(s: &[f64; 2]) -> Value {
        Value::Box(
            [s[0].cos() as f32, s[0].sin() as f32, s[1] as f32]
                .into_iter()
                .collect(),
        )
    }
}

impl Env for Pendulum {
    crate::util::builtin_env_accessors!("Pendulum-v1");

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        let rng = self.rng.get();
        let s = [uniform(rng, -PI, PI), uniform(rng, -1.0, 1.0)];
        self.state = Some(s);
        self.last_u = None;
        (Self::obs(&s), Info::new())
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let a = scalar_box_action(action, &self.act_space)?;
        if a.is_nan() {
            return Err(rein_core::env::invalid_action(action, &self.act_space));
        }
        let [th, thdot] = self.state.ok_or(EnvError::ResetNeeded)?;
        let (g, m, l) = (self.g, 1.0f64, 1.0f64);
        let u: f32 = a.clamp(-MAX_TORQUE, MAX_TORQUE);
        self.last_u = Some(u);
        // numpy 2 promotion: `0.001 * u**2` and `3.0 * u` are float32 operations.
        // `x ** 2` on numpy scalars is libm's pow, which can differ from x * x in the last bit.
        let costs = np_square_pow(angle_normalize(th))
            + 0.1 * np_square_pow(thdot)
            + (0.001f32 * np_square_powf(u)) as f64;
        let torque_coef = (3.0 / (m * (l * l))) as f32;
        let newthdot = thdot + (3.0 * g / (2.0 * l) * th.sin() + (torque_coef * u) as f64) * DT;
        let newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED);
        let newth = th + newthdot * DT;
        let s = [newth, newthdot];
        self.state = Some(s);
        Ok(Step {
            obs: Self::obs(&s),
            reward: -costs,
            terminated: false,
            truncated: false,
            info: Info::new(),
        })
    }

    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        Ok(state_json(&self.state.ok_or(EnvError::ResetNeeded)?))
    }

    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let s = state_array::<2>("Pendulum-v1", state, "[theta, theta_dot]")?;
        self.state = Some(s);
        self.last_u = None;
        Ok(Self::obs(&s))
    }

    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(serde_json::json!({"state": self.state, "last_u": self.last_u, "rng": self.rng}))
    }

    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let name = self.name();
        self.state = snapshot_field(&name, snap, "state")?;
        self.last_u = snapshot_field(&name, snap, "last_u")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        Ok(())
    }
    fn render(&self) -> Result<Render, EnvError> {
        let [th, _] = self.state.ok_or(EnvError::ResetNeeded)?;
        let dim = 500.0;
        let bound = 2.2;
        let scale = dim / (bound * 2.0);
        let offset = dim / 2.0;
        let mut c = Canvas::new(500, 500);
        let rod_length = 1.0 * scale;
        let rod_width = 0.2 * scale;
        let (l, r, t, b) = (0.0, rod_length, rod_width / 2.0, -rod_width / 2.0);
        let rod =
            [(l, b), (l, t), (r, t), (r, b)].map(|p| rotate(p, th + PI / 2.0, (offset, offset)));
        c.fill_polygon(&rod, [204, 77, 77]);
        c.fill_circle(offset, offset, rod_width / 2.0, [204, 77, 77]);
        let end = rotate((rod_length, 0.0), th + PI / 2.0, (offset, offset));
        c.fill_circle(end.0, end.1, rod_width / 2.0, [204, 77, 77]);
        c.fill_circle(offset, offset, 0.05 * scale, [0, 0, 0]);
        Ok(Render::Rgb(c.into_frame()))
    }
}
