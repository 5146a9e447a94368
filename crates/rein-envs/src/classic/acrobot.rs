//! Acrobot-v1 (Sutton 1996; dynamics of Sutton & Barto's book), as Gymnasium's
//! `classic_control.acrobot`.

use crate::util::{discrete_action, f32_box, np_square_pow, state_array, state_json, uniform};
use rein_core::canvas::{rotate, Canvas};
use rein_core::env::snapshot_field;
use rein_core::{Env, EnvError, EnvRng, EnvSpec, Info, Render, Space, Step, Value};
use std::f64::consts::PI;

const DT: f64 = 0.2;
const LINK_LENGTH_1: f64 = 1.0;
const LINK_LENGTH_2: f64 = 1.0;
const LINK_MASS_1: f64 = 1.0;
const LINK_MASS_2: f64 = 1.0;
const LINK_COM_POS_1: f64 = 0.5;
const LINK_COM_POS_2: f64 = 0.5;
const LINK_MOI: f64 = 1.0;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];

/// A two-link pendulum actuated at the second joint: torque -1, 0 or +1; -1 per step until the
/// tip swings above the bar (`-cos(t1) - cos(t1 + t2) > 1`). One RK4 step of dt = 0.2.
pub struct Acrobot {
    state: Option<[f64; 4]>,
    /// Gymnasium keeps the reset state as float32 and computes its observation in float32.
    reset_state_f32: bool,
    rng: EnvRng,
    obs_space: Space,
    act_space: Space,
    spec: Option<EnvSpec>,
}

impl Default for Acrobot {
    fn default() -> Self {
        Self::new()
    }
}

/// `wrap` of Gymnasium's acrobot: shifts `x` by multiples of `M - m` into `[m, M]`, one
/// period at a time as Gymnasium does (so the roundings are its own). A value many periods
/// away (only a state set by hand, e.g. `--state '[1e20, ...]'`) first jumps near the range
/// with one remainder, where the loop would run for ever (1e20 - 2 pi == 1e20, and infinity);
/// a non-finite value becomes NaN.
fn wrap(mut x: f64, m: f64, big_m: f64) -> f64 {
    let diff = big_m - m;
    if !(x > m - 64.0 * diff && x < big_m + 64.0 * diff) {
        x = m + (x - m).rem_euclid(diff);
    }
    while x > big_m {
        x -= diff;
    }
    while x < m {
        x += diff;
    }
    x
}

/// The "book" equations of motion: derivative of `[theta1, theta2, dtheta1, dtheta2, torque]`.
fn dsdt(s: &[f64; 5]) -> [f64; 5] {
    let (m1, m2, l1, lc1, lc2, i1, i2) = (
        LINK_MASS_1,
        LINK_MASS_2,
        LINK_LENGTH_1,
        LINK_COM_POS_1,
        LINK_COM_POS_2,
        LINK_MOI,
        LINK_MOI,
    );
    let g = 9.8;
    let a = s[4];
    let (theta1, theta2, dtheta1, dtheta2) = (s[0], s[1], s[2], s[3]);
    let d1 =
        m1 * (lc1 * lc1) + m2 * ((l1 * l1) + (lc2 * lc2) + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
    let d2 = m2 * ((lc2 * lc2) + l1 * lc2 * theta2.cos()) + i2;
    let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * np_square_pow(dtheta2) * theta2.sin()
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
        + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 =
        (a + d2 / d1 * phi1 - m2 * l1 * lc2 * np_square_pow(dtheta1) * theta2.sin() - phi2)
            / (m2 * (lc2 * lc2) + i2 - np_square_pow(d2) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0]
}

/// One classical Runge-Kutta step: `y + dt/6 (k1 + 2 k2 + 2 k3 + k4)`.
fn rk4(y0: [f64; 5], dt: f64) -> [f64; 5] {
    let dt2 = dt / 2.0;
    let add = |y: &[f64; 5], h: f64, k: &[f64; 5]| -> [f64; 5] {
        let mut o = [0.0; 5];
        for i in 0..5 {
            o[i] = y[i] + h * k[i];
        }
        o
    };
    let k1 = dsdt(&y0);
    let k2 = dsdt(&add(&y0, dt2, &k1));
    let k3 = dsdt(&add(&y0, dt2, &k2));
    let k4 = dsdt(&add(&y0, dt, &k3));
    let mut out = [0.0; 5];
    for i in 0..5 {
        out[i] = y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    }
    out
}

impl Acrobot {
    /// A new environment (call `reset` before `step`).
    pub fn new() -> Self {
        let high = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1 as f32, MAX_VEL_2 as f32];
        let low = high.map(|v| -v);
        Self {
            state: None,
            reset_state_f32: false,
            rng: EnvRng::new(),
            obs_space: f32_box(&low, &high),
            act_space: Space::discrete(3),
            spec: None,
        }
    }

    /// Attaches registration data.
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    fn obs(&self) -> Value {
        let s = self.state.unwrap_or([0.0; 4]);
        if self.reset_state_f32 {
            let f = s.map(|v| v as f32);
            Value::Box(
                [f[0].cos(), f[0].sin(), f[1].cos(), f[1].sin(), f[2], f[3]]
                    .into_iter()
                    .collect(),
            )
        } else {
            Value::Box(
                [s[0].cos(), s[0].sin(), s[1].cos(), s[1].sin(), s[2], s[3]]
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
            )
        }
    }
}

impl Env for Acrobot {
    crate::util::builtin_env_accessors!("Acrobot-v1");

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        let rng = self.rng.get();
        let s = [(); 4].map(|_| uniform(rng, -0.1, 0.1) as f32 as f64);
        self.state = Some(s);
        self.reset_state_f32 = true;
        (self.obs(), Info::new())
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let a = discrete_action(action, &self.act_space)?;
        let s = self.state.ok_or(EnvError::ResetNeeded)?;
        let torque = AVAIL_TORQUE[a];
        let ns = rk4([s[0], s[1], s[2], s[3], torque], DT);
        let ns = [
            wrap(ns[0], -PI, PI),
            wrap(ns[1], -PI, PI),
            ns[2].clamp(-MAX_VEL_1, MAX_VEL_1),
            ns[3].clamp(-MAX_VEL_2, MAX_VEL_2),
        ];
        self.state = Some(ns);
        self.reset_state_f32 = false;
        let terminated = -ns[0].cos() - (ns[1] + ns[0]).cos() > 1.0;
        Ok(Step {
            obs: self.obs(),
            reward: if terminated { 0.0 } else { -1.0 },
            terminated,
            truncated: false,
            info: Info::new(),
        })
    }

    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        Ok(state_json(&self.state.ok_or(EnvError::ResetNeeded)?))
    }

    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let s = state_array::<4>("Acrobot-v1", state, "[theta1, theta2, dtheta1, dtheta2]")?;
        self.state = Some(s);
        self.reset_state_f32 = false;
        Ok(self.obs())
    }

    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(
            serde_json::json!({"state": self.state, "reset_state_f32": self.reset_state_f32, "rng": self.rng}),
        )
    }

    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let name = self.name();
        self.state = snapshot_field(&name, snap, "state")?;
        self.reset_state_f32 = snapshot_field(&name, snap, "reset_state_f32")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        Ok(())
    }
    fn render(&self) -> Result<Render, EnvError> {
        let s = self.state.ok_or(EnvError::ResetNeeded)?;
        let dim = 500.0;
        let bound = LINK_LENGTH_1 + LINK_LENGTH_2 + 0.2;
        let scale = dim / (bound * 2.0);
        let offset = dim / 2.0;
        let mut c = Canvas::new(500, 500);
        // Positions in the drawing frame (x right, y up), pivot at the centre.
        let p1 = (
            LINK_LENGTH_1 * s[0].sin() * scale,
            -LINK_LENGTH_1 * s[0].cos() * scale,
        );
        let p2 = (
            p1.0 + LINK_LENGTH_2 * (s[0] + s[1]).sin() * scale,
            p1.1 - LINK_LENGTH_2 * (s[0] + s[1]).cos() * scale,
        );
        c.line(
            (offset - 2.2 * scale, offset + scale),
            (offset + 2.2 * scale, offset + scale),
            1.0,
            [0, 0, 0],
        );
        for (start, th) in [((0.0, 0.0), s[0]), (p1, s[0] + s[1])] {
            let llen = scale;
            let (l, r, t, b) = (0.0, llen, 0.1 * scale, -0.1 * scale);
            let origin = (start.0 + offset, start.1 + offset);
            let rect = [(l, b), (l, t), (r, t), (r, b)].map(|p| rotate(p, th - PI / 2.0, origin));
            c.fill_polygon(&rect, [0, 204, 204]);
            c.fill_circle(origin.0, origin.1, 0.1 * scale, [204, 204, 0]);
        }
        let _ = p2;
        Ok(Render::Rgb(c.into_frame()))
    }
}
