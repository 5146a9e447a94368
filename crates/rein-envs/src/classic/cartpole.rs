//! CartPole-v1 (Barto, Sutton & Anderson 1983), as `gymnasium.envs.classic_control.cartpole`.

use crate::util::{discrete_action, f32_box, state_array, state_json, uniform};
use rein_core::canvas::{rotate, Canvas};
use rein_core::env::snapshot_field;
use rein_core::{Env, EnvError, EnvRng, EnvSpec, Info, Render, Space, Step, Value};

const GRAVITY: f64 = 9.8;
const MASSCART: f64 = 1.0;
const MASSPOLE: f64 = 0.1;
const LENGTH: f64 = 0.5; // half the pole's length
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const X_THRESHOLD: f64 = 2.4;

/// Pole balancing on a cart: push left (0) or right (1); +1 per step, terminated when the pole
/// leans more than 12 degrees or the cart leaves [-2.4, 2.4]. Euler integration, tau = 0.02.
///
/// Floating-point operations follow Gymnasium's order exactly so that trajectories match it bit
/// for bit (see the fixture tests).
pub struct CartPole {
    state: Option<[f64; 4]>,
    rng: EnvRng,
    steps_beyond_terminated: Option<u64>,
    sutton_barto_reward: bool,
    obs_space: Space,
    act_space: Space,
    spec: Option<EnvSpec>,
}

fn theta_threshold() -> f64 {
    12.0 * 2.0 * std::f64::consts::PI / 360.0
}

impl CartPole {
    /// A CartPole with Gymnasium's default reward (+1 per step); with `sutton_barto_reward`,
    /// 0 per step and -1 on termination.
    pub fn new(sutton_barto_reward: bool) -> Self {
        let x = (X_THRESHOLD * 2.0) as f32;
        let th = (theta_threshold() * 2.0) as f32;
        let high = [x, f32::INFINITY, th, f32::INFINITY];
        let low = high.map(|v| -v);
        Self {
            state: None,
            rng: EnvRng::new(),
            steps_beyond_terminated: None,
            sutton_barto_reward,
            obs_space: f32_box(&low, &high),
            act_space: Space::discrete(2),
            spec: None,
        }
    }

    /// Attaches registration data (used by the registry).
    pub fn with_spec(mut self, spec: EnvSpec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// The internal state `[x, x_dot, theta, theta_dot]`, if reset was called.
    pub fn state(&self) -> Option<[f64; 4]> {
        self.state
    }

    fn obs(s: &[f64; 4]) -> Value {
        Value::Box(s.iter().map(|&v| v as f32).collect())
    }
}

impl Env for CartPole {
    crate::util::builtin_env_accessors!("CartPole-v1");

    fn reset(&mut self, seed: Option<u64>) -> (Value, Info) {
        self.rng.reseed(seed);
        let rng = self.rng.get();
        let s = [(); 4].map(|_| uniform(rng, -0.05, 0.05));
        self.state = Some(s);
        self.steps_beyond_terminated = None;
        (Self::obs(&s), Info::new())
    }

    fn step(&mut self, action: &Value) -> Result<Step, EnvError> {
        let a = discrete_action(action, &self.act_space)?;
        let [x, x_dot, theta, theta_dot] = self.state.ok_or(EnvError::ResetNeeded)?;
        let total_mass = MASSPOLE + MASSCART;
        let polemass_length = MASSPOLE * LENGTH;
        let force = if a == 1 { FORCE_MAG } else { -FORCE_MAG };
        let costheta = theta.cos();
        let sintheta = theta.sin();
        // Barto et al. (1983), eqs. for the cart-pole with frictionless joints.
        let temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass;
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / total_mass));
        let xacc = temp - polemass_length * thetaacc * costheta / total_mass;
        let x = x + TAU * x_dot;
        let x_dot = x_dot + TAU * xacc;
        let theta = theta + TAU * theta_dot;
        let theta_dot = theta_dot + TAU * thetaacc;
        let s = [x, x_dot, theta, theta_dot];
        self.state = Some(s);
        let thr = theta_threshold();
        // Written as Gymnasium does: a NaN state does not terminate.
        #[allow(clippy::manual_range_contains)]
        let terminated = x < -X_THRESHOLD || x > X_THRESHOLD || theta < -thr || theta > thr;
        let reward = if !terminated {
            if self.sutton_barto_reward {
                0.0
            } else {
                1.0
            }
        } else if self.steps_beyond_terminated.is_none() {
            self.steps_beyond_terminated = Some(0);
            if self.sutton_barto_reward {
                -1.0
            } else {
                1.0
            }
        } else {
            // Stepping past termination: Gymnasium warns and gives 0 (-1 with Sutton-Barto).
            *self.steps_beyond_terminated.as_mut().unwrap_or(&mut 0) += 1;
            if self.sutton_barto_reward {
                -1.0
            } else {
                0.0
            }
        };
        Ok(Step {
            obs: Self::obs(&s),
            reward,
            terminated,
            truncated: false,
            info: Info::new(),
        })
    }

    fn get_state(&self) -> Result<serde_json::Value, EnvError> {
        let s = self.state.ok_or(EnvError::ResetNeeded)?;
        Ok(state_json(&s))
    }

    fn set_state(&mut self, state: &serde_json::Value) -> Result<Value, EnvError> {
        let s = state_array::<4>("CartPole-v1", state, "[x, x_dot, theta, theta_dot]")?;
        self.state = Some(s);
        self.steps_beyond_terminated = None;
        Ok(Self::obs(&s))
    }

    fn snapshot(&self) -> Result<serde_json::Value, EnvError> {
        Ok(
            serde_json::json!({"state": self.state, "rng": self.rng, "steps_beyond_terminated": self.steps_beyond_terminated}),
        )
    }

    fn restore(&mut self, snap: &serde_json::Value) -> Result<(), EnvError> {
        let name = self.name();
        self.state = snapshot_field(&name, snap, "state")?;
        self.rng = snapshot_field(&name, snap, "rng")?;
        self.steps_beyond_terminated = snapshot_field(&name, snap, "steps_beyond_terminated")?;
        Ok(())
    }
    fn render(&self) -> Result<Render, EnvError> {
        let [x, _, theta, _] = self.state.ok_or(EnvError::ResetNeeded)?;
        let (w, h) = (600.0, 400.0);
        let scale = w / (X_THRESHOLD * 2.0);
        let polewidth = 10.0;
        let polelen = scale * (2.0 * LENGTH);
        let (cartwidth, cartheight) = (50.0, 30.0);
        let mut c = Canvas::new(600, 400);
        let cartx = x * scale + w / 2.0;
        let carty = 100.0;
        let (l, r, t, b) = (
            -cartwidth / 2.0,
            cartwidth / 2.0,
            cartheight / 2.0,
            -cartheight / 2.0,
        );
        let axleoffset = cartheight / 4.0;
        c.fill_polygon(
            &[(l, b), (l, t), (r, t), (r, b)].map(|(px, py)| (px + cartx, py + carty)),
            [0, 0, 0],
        );
        let (l, r, t, b) = (
            -polewidth / 2.0,
            polewidth / 2.0,
            polelen - polewidth / 2.0,
            -polewidth / 2.0,
        );
        let pole = [(l, b), (l, t), (r, t), (r, b)]
            .map(|p| rotate(p, -theta, (cartx, carty + axleoffset)));
        c.fill_polygon(&pole, [202, 152, 101]);
        c.fill_circle(cartx, carty + axleoffset, polewidth / 2.0, [129, 132, 203]);
        c.line((0.0, carty), (w, carty), 1.0, [0, 0, 0]);
        let _ = h;
        Ok(Render::Rgb(c.into_frame()))
    }
}
