//! The eleven Gymnasium v5 robots: each struct holds its v5 options and implements what its
//! `*_v5.py` file defines (observation, reward terms, termination, reset noise, `info`).
//! Defaults are Gymnasium 1.4's; the option names are its keyword arguments.

use crate::gym::{check_options, control_cost_f32, do_simulation, GymMujoco};
use crate::sim::{norm, sub3, uniform, ModelFiles, Object, Simulation};
use rand::Rng;
use rand_distr::StandardNormal;
use rein_core::numpy::square_pow;
use rein_core::options::{bad_option, bool_option, f64_option, range_option};
use rein_core::{EnvError, Info, ReinRng};
use serde_json::{Map, Value as Json};

/// What one Gymnasium MuJoCo environment adds to `MujocoEnv`.
pub(crate) trait Robot: Send {
    /// Length of the observation vector.
    fn observation_size(&self, sim: &Simulation) -> usize {
        let mut v = Vec::new();
        self.observation(sim, &mut v);
        v.len()
    }
    /// `_get_obs`, appended to `out`.
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>);
    /// `reset_model`'s noise: changes the initial `qpos`/`qvel` in place.
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]);
    /// `_get_reset_info`.
    fn reset_info(&self, _sim: &Simulation, _init_qpos: &[f64], _info: &mut Info) {}
    /// `step` after the action was read: simulates, fills `info` and returns the reward and
    /// whether the episode terminated.
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        dt: f64,
        init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool);
    /// Whether `cfrc_ext` is read (then `mj_rnePostConstraint` runs after each step).
    fn uses_contact_forces(&self) -> bool {
        false
    }
}

fn add_uniform(rng: &mut ReinRng, x: &mut [f64], scale: f64) {
    for v in x {
        *v += uniform(rng, -scale, scale);
    }
}

fn add_normal(rng: &mut ReinRng, x: &mut [f64], scale: f64) {
    for v in x {
        let z: f64 = rng.sample(StandardNormal);
        *v += scale * z;
    }
}

fn put(info: &mut Info, key: &str, value: f64) {
    info.insert(key.into(), rein_core::space::f64_to_json(value));
}

fn put_array(info: &mut Info, key: &str, values: &[f64]) {
    info.insert(
        key.into(),
        Json::Array(
            values
                .iter()
                .map(|&v| rein_core::space::f64_to_json(v))
                .collect(),
        ),
    );
}

fn clip(x: f64, low: f64, high: f64) -> f64 {
    x.max(low).min(high)
}

macro_rules! asset {
    ($file:literal) => {
        ModelFiles {
            name: $file,
            xml: include_str!(concat!("../assets/gymnasium/", $file)),
            includes: &[],
        }
    };
}

/// The Gymnasium v5 ids with their registration data: (id, max_episode_steps,
/// reward_threshold).
pub const GYM_IDS: &[(&str, u64, Option<f64>)] = &[
    ("InvertedPendulum-v5", 1000, Some(950.0)),
    ("InvertedDoublePendulum-v5", 1000, Some(9100.0)),
    ("Reacher-v5", 50, Some(-3.75)),
    ("Pusher-v5", 100, Some(0.0)),
    ("Swimmer-v5", 1000, Some(360.0)),
    ("HalfCheetah-v5", 1000, Some(4800.0)),
    ("Hopper-v5", 1000, Some(3800.0)),
    ("Walker2d-v5", 1000, None),
    ("Ant-v5", 1000, Some(6000.0)),
    ("Humanoid-v5", 1000, None),
    ("HumanoidStandup-v5", 1000, None),
];

/// Builds Gymnasium v5 environment `id` with options `kw` (no time limit: the registry adds
/// it). `None` when `id` is not one of [`GYM_IDS`].
pub fn make(id: &str, kw: &Map<String, Json>) -> Option<Result<GymMujoco, EnvError>> {
    let f = |name: &str, default: f64| f64_option(id, kw, name, default);
    let b = |name: &str, default: bool| bool_option(id, kw, name, default);
    let r = |name: &str, default: (f64, f64)| range_option(id, kw, name, default);
    let built = match id {
        "InvertedPendulum-v5" => (|| {
            check_options(id, kw, &["reset_noise_scale"])?;
            let noise = f("reset_noise_scale", 0.01)?;
            GymMujoco::new(id, &asset!("inverted_pendulum.xml"), 2, kw, |_| {
                Ok(Box::new(InvertedPendulum { noise }))
            })
        })(),
        "InvertedDoublePendulum-v5" => (|| {
            check_options(id, kw, &["healthy_reward", "reset_noise_scale"])?;
            let robot = InvertedDoublePendulum {
                healthy_reward: f("healthy_reward", 10.0)?,
                noise: f("reset_noise_scale", 0.1)?,
            };
            GymMujoco::new(id, &asset!("inverted_double_pendulum.xml"), 5, kw, |_| {
                Ok(Box::new(robot))
            })
        })(),
        "Reacher-v5" => (|| {
            check_options(id, kw, &["reward_dist_weight", "reward_control_weight"])?;
            let (dist_w, ctrl_w) = (
                f("reward_dist_weight", 1.0)?,
                f("reward_control_weight", 1.0)?,
            );
            GymMujoco::new(id, &asset!("reacher.xml"), 2, kw, |sim| {
                Ok(Box::new(Reacher {
                    dist_w,
                    ctrl_w,
                    fingertip: sim.id(id, Object::Body, "fingertip")?,
                    target: sim.id(id, Object::Body, "target")?,
                }))
            })
        })(),
        "Pusher-v5" => (|| {
            check_options(
                id,
                kw,
                &[
                    "reward_near_weight",
                    "reward_dist_weight",
                    "reward_control_weight",
                ],
            )?;
            let weights = (
                f("reward_near_weight", 0.5)?,
                f("reward_dist_weight", 1.0)?,
                f("reward_control_weight", 0.1)?,
            );
            GymMujoco::new(id, &asset!("pusher_v5.xml"), 5, kw, |sim| {
                Ok(Box::new(Pusher {
                    near_w: weights.0,
                    dist_w: weights.1,
                    ctrl_w: weights.2,
                    tips_arm: sim.id(id, Object::Body, "tips_arm")?,
                    object: sim.id(id, Object::Body, "object")?,
                    goal: sim.id(id, Object::Body, "goal")?,
                }))
            })
        })(),
        "Swimmer-v5" | "HalfCheetah-v5" => (|| {
            let own = [
                "forward_reward_weight",
                "ctrl_cost_weight",
                "reset_noise_scale",
                "exclude_current_positions_from_observation",
            ];
            check_options(id, kw, &own)?;
            let swimmer = id == "Swimmer-v5";
            let robot = Runner {
                swimmer,
                forward_w: f("forward_reward_weight", 1.0)?,
                ctrl_w: f("ctrl_cost_weight", if swimmer { 1e-4 } else { 0.1 })?,
                noise: f("reset_noise_scale", 0.1)?,
                exclude: b("exclude_current_positions_from_observation", true)?,
            };
            let (files, skip) = if swimmer {
                (asset!("swimmer.xml"), 4)
            } else {
                (asset!("half_cheetah.xml"), 5)
            };
            GymMujoco::new(id, &files, skip, kw, |_| Ok(Box::new(robot)))
        })(),
        "Hopper-v5" | "Walker2d-v5" => (|| {
            let hopper = id == "Hopper-v5";
            let mut own = vec![
                "forward_reward_weight",
                "ctrl_cost_weight",
                "healthy_reward",
                "terminate_when_unhealthy",
                "healthy_z_range",
                "healthy_angle_range",
                "reset_noise_scale",
                "exclude_current_positions_from_observation",
            ];
            if hopper {
                own.push("healthy_state_range");
            }
            check_options(id, kw, &own)?;
            let robot = Walker {
                forward_w: f("forward_reward_weight", 1.0)?,
                ctrl_w: f("ctrl_cost_weight", 1e-3)?,
                healthy_reward: f("healthy_reward", 1.0)?,
                terminate: b("terminate_when_unhealthy", true)?,
                state_range: if hopper {
                    Some(r("healthy_state_range", (-100.0, 100.0))?)
                } else {
                    None
                },
                z_range: r(
                    "healthy_z_range",
                    if hopper {
                        (0.7, f64::INFINITY)
                    } else {
                        (0.8, 2.0)
                    },
                )?,
                angle_range: r(
                    "healthy_angle_range",
                    if hopper { (-0.2, 0.2) } else { (-1.0, 1.0) },
                )?,
                noise: f("reset_noise_scale", 5e-3)?,
                exclude: b("exclude_current_positions_from_observation", true)?,
            };
            let files = if hopper {
                asset!("hopper.xml")
            } else {
                asset!("walker2d_v5.xml")
            };
            GymMujoco::new(id, &files, 4, kw, |_| Ok(Box::new(robot)))
        })(),
        "Ant-v5" => (|| {
            check_options(
                id,
                kw,
                &[
                    "forward_reward_weight",
                    "ctrl_cost_weight",
                    "contact_cost_weight",
                    "healthy_reward",
                    "main_body",
                    "terminate_when_unhealthy",
                    "healthy_z_range",
                    "contact_force_range",
                    "reset_noise_scale",
                    "exclude_current_positions_from_observation",
                    "include_cfrc_ext_in_observation",
                ],
            )?;
            let mut robot = Ant {
                forward_w: f("forward_reward_weight", 1.0)?,
                ctrl_w: f("ctrl_cost_weight", 0.5)?,
                contact_w: f("contact_cost_weight", 5e-4)?,
                healthy_reward: f("healthy_reward", 1.0)?,
                main_body: 1,
                terminate: b("terminate_when_unhealthy", true)?,
                z_range: r("healthy_z_range", (0.2, 1.0))?,
                force_range: r("contact_force_range", (-1.0, 1.0))?,
                noise: f("reset_noise_scale", 0.1)?,
                exclude: b("exclude_current_positions_from_observation", true)?,
                include_cfrc_ext: b("include_cfrc_ext_in_observation", true)?,
            };
            let main_body = kw.get("main_body").cloned();
            GymMujoco::new(id, &asset!("ant.xml"), 5, kw, |sim| {
                let nbody = sim.xpos().len();
                robot.main_body = match &main_body {
                    None => 1,
                    Some(Json::String(name)) => sim.id(id, Object::Body, name)?,
                    Some(v) => match v.as_u64() {
                        Some(i) if (i as usize) < nbody => i as usize,
                        _ => {
                            return Err(bad_option(
                                id,
                                "main_body",
                                &format!("a body name or an id below {nbody}"),
                                v,
                            ))
                        }
                    },
                };
                Ok(Box::new(robot))
            })
        })(),
        "Humanoid-v5" | "HumanoidStandup-v5" => (|| {
            let standup = id == "HumanoidStandup-v5";
            let obs_opts = [
                "reset_noise_scale",
                "exclude_current_positions_from_observation",
                "include_cinert_in_observation",
                "include_cvel_in_observation",
                "include_qfrc_actuator_in_observation",
                "include_cfrc_ext_in_observation",
            ];
            let own: Vec<&str> = if standup {
                [
                    "uph_cost_weight",
                    "ctrl_cost_weight",
                    "impact_cost_weight",
                    "impact_cost_range",
                ]
                .into_iter()
                .chain(obs_opts)
                .collect()
            } else {
                [
                    "forward_reward_weight",
                    "ctrl_cost_weight",
                    "contact_cost_weight",
                    "contact_cost_range",
                    "healthy_reward",
                    "terminate_when_unhealthy",
                    "healthy_z_range",
                ]
                .into_iter()
                .chain(obs_opts)
                .collect()
            };
            check_options(id, kw, &own)?;
            let obs = HumanoidObservation {
                exclude: b("exclude_current_positions_from_observation", true)?,
                cinert: b("include_cinert_in_observation", true)?,
                cvel: b("include_cvel_in_observation", true)?,
                qfrc_actuator: b("include_qfrc_actuator_in_observation", true)?,
                cfrc_ext: b("include_cfrc_ext_in_observation", true)?,
            };
            let noise = f("reset_noise_scale", 1e-2)?;
            if standup {
                let robot = HumanoidStandup {
                    obs,
                    noise,
                    ctrl_w: f("ctrl_cost_weight", 0.1)?,
                    impact_w: f("impact_cost_weight", 5e-7)?,
                    impact_range: r("impact_cost_range", (f64::NEG_INFINITY, 10.0))?,
                };
                // uph_cost_weight is accepted and, as in Gymnasium 1.4, not used by the reward.
                f("uph_cost_weight", 1.0)?;
                GymMujoco::new(id, &asset!("humanoidstandup.xml"), 5, kw, |_| {
                    Ok(Box::new(robot))
                })
            } else {
                let robot = Humanoid {
                    obs,
                    noise,
                    forward_w: f("forward_reward_weight", 1.25)?,
                    ctrl_w: f("ctrl_cost_weight", 0.1)?,
                    contact_w: f("contact_cost_weight", 5e-7)?,
                    contact_range: r("contact_cost_range", (f64::NEG_INFINITY, 10.0))?,
                    healthy_reward: f("healthy_reward", 5.0)?,
                    terminate: b("terminate_when_unhealthy", true)?,
                    z_range: r("healthy_z_range", (1.0, 2.0))?,
                };
                GymMujoco::new(id, &asset!("humanoid.xml"), 5, kw, |_| Ok(Box::new(robot)))
            }
        })(),
        _ => return None,
    };
    Some(built)
}

/// InvertedPendulum-v5: reward 1 while the pole stays within 0.2 rad.
struct InvertedPendulum {
    noise: f64,
}

impl Robot for InvertedPendulum {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        out.extend_from_slice(sim.qpos());
        out.extend_from_slice(sim.qvel());
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, self.noise);
        add_uniform(rng, qvel, self.noise);
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        _dt: f64,
        _init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        do_simulation(sim, action, frame_skip, false);
        // The observation is qpos ++ qvel, so its element 1 is the pole's angle qpos[1].
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let terminated = !qpos.iter().chain(qvel).all(|x| x.is_finite()) || qpos[1].abs() > 0.2;
        let reward = if terminated { 0.0 } else { 1.0 };
        put(info, "reward_survive", reward);
        (reward, terminated)
    }
}

/// InvertedDoublePendulum-v5: keep the tip high (y > 1) and still.
struct InvertedDoublePendulum {
    healthy_reward: f64,
    noise: f64,
}

impl Robot for InvertedDoublePendulum {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        out.push(qpos[0]);
        out.extend(qpos[1..].iter().map(|x| x.sin()));
        out.extend(qpos[1..].iter().map(|x| x.cos()));
        out.extend(qvel.iter().map(|&x| clip(x, -10.0, 10.0)));
        out.push(clip(sim.qfrc_constraint()[0], -10.0, 10.0));
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, self.noise);
        // `init_qvel + standard_normal(nv) * noise`: the product order of Gymnasium's line.
        for v in qvel {
            let z: f64 = rng.sample(StandardNormal);
            *v += z * self.noise;
        }
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        _dt: f64,
        _init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        do_simulation(sim, action, frame_skip, false);
        let [x, _, y] = sim.site_xpos()[0];
        let terminated = y <= 1.0;
        let (v1, v2) = (sim.qvel()[1], sim.qvel()[2]);
        let dist_penalty = 0.01 * square_pow(x) + square_pow(y - 2.0);
        let vel_penalty = 0.001 * square_pow(v1) + 0.005 * square_pow(v2);
        let alive_bonus = self.healthy_reward * if terminated { 0.0 } else { 1.0 };
        let reward = alive_bonus - dist_penalty - vel_penalty;
        put(info, "reward_survive", alive_bonus);
        put(info, "distance_penalty", -dist_penalty);
        put(info, "velocity_penalty", -vel_penalty);
        (reward, terminated)
    }
}

/// Reacher-v5: move the fingertip to a random target.
struct Reacher {
    dist_w: f64,
    ctrl_w: f64,
    fingertip: usize,
    target: usize,
}

impl Robot for Reacher {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        out.extend(qpos[..2].iter().map(|x| x.cos()));
        out.extend(qpos[..2].iter().map(|x| x.sin()));
        out.extend_from_slice(&qpos[2..]);
        out.extend_from_slice(&qvel[..2]);
        let v = sub3(sim.xpos()[self.fingertip], sim.xpos()[self.target]);
        out.extend_from_slice(&v[..2]);
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        // `uniform(-0.1, 0.1, nq) + init_qpos` (addition commutes exactly).
        add_uniform(rng, qpos, 0.1);
        let goal = loop {
            let g = [uniform(rng, -0.2, 0.2), uniform(rng, -0.2, 0.2)];
            if norm(&g) < 0.2 {
                break g;
            }
        };
        let n = qpos.len();
        qpos[n - 2..].copy_from_slice(&goal);
        add_uniform(rng, qvel, 0.005);
        let n = qvel.len();
        qvel[n - 2..].fill(0.0);
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        _dt: f64,
        _init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        do_simulation(sim, action, frame_skip, false);
        let v = sub3(sim.xpos()[self.fingertip], sim.xpos()[self.target]);
        let reward_dist = -norm(&v) * self.dist_w;
        // `-np.square(action).sum() * weight`: float32.
        let reward_ctrl = -rein_core::numpy::sum_of_squares_f32(action) * self.ctrl_w as f32;
        put(info, "reward_dist", reward_dist);
        put(info, "reward_ctrl", reward_ctrl as f64);
        (reward_dist + reward_ctrl as f64, false)
    }
}

/// Pusher-v5: push a cylinder to a goal with a 7-joint arm.
struct Pusher {
    near_w: f64,
    dist_w: f64,
    ctrl_w: f64,
    tips_arm: usize,
    object: usize,
    goal: usize,
}

impl Robot for Pusher {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        out.extend_from_slice(&sim.qpos()[..7]);
        out.extend_from_slice(&sim.qvel()[..7]);
        for b in [self.tips_arm, self.object, self.goal] {
            out.extend_from_slice(&sim.xpos()[b]);
        }
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        let goal = [0.0, 0.0];
        let cylinder = loop {
            let c = [uniform(rng, -0.3, 0.0), uniform(rng, -0.2, 0.2)];
            if norm(&[c[0] - goal[0], c[1] - goal[1]]) > 0.17 {
                break c;
            }
        };
        let n = qpos.len();
        qpos[n - 4..n - 2].copy_from_slice(&cylinder);
        qpos[n - 2..].copy_from_slice(&goal);
        add_uniform(rng, qvel, 0.005);
        let n = qvel.len();
        qvel[n - 4..].fill(0.0);
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        _dt: f64,
        _init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        do_simulation(sim, action, frame_skip, false);
        let xpos = sim.xpos();
        let reward_near = -norm(&sub3(xpos[self.object], xpos[self.tips_arm])) * self.near_w;
        let reward_dist = -norm(&sub3(xpos[self.object], xpos[self.goal])) * self.dist_w;
        let reward_ctrl = -rein_core::numpy::sum_of_squares_f32(action) * self.ctrl_w as f32;
        put(info, "reward_dist", reward_dist);
        put(info, "reward_ctrl", reward_ctrl as f64);
        put(info, "reward_near", reward_near);
        (reward_dist + reward_ctrl as f64 + reward_near, false)
    }
}

/// HalfCheetah-v5 and Swimmer-v5: run forward along x, paying for control; never terminate.
struct Runner {
    swimmer: bool,
    forward_w: f64,
    ctrl_w: f64,
    noise: f64,
    exclude: bool,
}

impl Robot for Runner {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        let skip = match (self.exclude, self.swimmer) {
            (false, _) => 0,
            (true, true) => 2,
            (true, false) => 1,
        };
        out.extend_from_slice(&sim.qpos()[skip..]);
        out.extend_from_slice(sim.qvel());
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, self.noise);
        if self.swimmer {
            add_uniform(rng, qvel, self.noise);
        } else {
            add_normal(rng, qvel, self.noise);
        }
    }
    fn reset_info(&self, sim: &Simulation, _init_qpos: &[f64], info: &mut Info) {
        let q = sim.qpos();
        put(info, "x_position", q[0]);
        if self.swimmer {
            put(info, "y_position", q[1]);
            put(info, "distance_from_origin", norm(&q[..2]));
        }
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        dt: f64,
        _init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        let (x0, y0) = (sim.qpos()[0], sim.qpos()[1]);
        do_simulation(sim, action, frame_skip, false);
        let (x1, y1) = (sim.qpos()[0], sim.qpos()[1]);
        let x_velocity = (x1 - x0) / dt;
        let forward_reward = self.forward_w * x_velocity;
        let ctrl_cost = control_cost_f32(self.ctrl_w, action);
        put(info, "x_position", x1);
        if self.swimmer {
            put(info, "y_position", y1);
            put(info, "distance_from_origin", norm(&[x1, y1]));
        }
        put(info, "x_velocity", x_velocity);
        if self.swimmer {
            put(info, "y_velocity", (y1 - y0) / dt);
        }
        put(info, "reward_forward", forward_reward);
        put(info, "reward_ctrl", -ctrl_cost as f64);
        (forward_reward - ctrl_cost as f64, false)
    }
}

/// Hopper-v5 and Walker2d-v5: planar walkers that terminate when unhealthy.
struct Walker {
    forward_w: f64,
    ctrl_w: f64,
    healthy_reward: f64,
    terminate: bool,
    /// Hopper only: every `qpos[2:]`/`qvel` entry strictly inside this range.
    state_range: Option<(f64, f64)>,
    z_range: (f64, f64),
    angle_range: (f64, f64),
    noise: f64,
    exclude: bool,
}

impl Walker {
    fn is_healthy(&self, sim: &Simulation) -> bool {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let (z, angle) = (qpos[1], qpos[2]);
        let inside = |x: f64, (lo, hi): (f64, f64)| lo < x && x < hi;
        let state_ok = match self.state_range {
            None => true,
            Some(r) => qpos[2..].iter().chain(qvel).all(|&x| inside(x, r)),
        };
        state_ok && inside(z, self.z_range) && inside(angle, self.angle_range)
    }
}

impl Robot for Walker {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        out.extend_from_slice(&sim.qpos()[usize::from(self.exclude)..]);
        out.extend(sim.qvel().iter().map(|&v| clip(v, -10.0, 10.0)));
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, self.noise);
        add_uniform(rng, qvel, self.noise);
    }
    fn reset_info(&self, sim: &Simulation, init_qpos: &[f64], info: &mut Info) {
        put(info, "x_position", sim.qpos()[0]);
        put(info, "z_distance_from_origin", sim.qpos()[1] - init_qpos[1]);
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        dt: f64,
        init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        let x0 = sim.qpos()[0];
        do_simulation(sim, action, frame_skip, false);
        let x1 = sim.qpos()[0];
        let x_velocity = (x1 - x0) / dt;
        let forward_reward = self.forward_w * x_velocity;
        let healthy = self.is_healthy(sim);
        let healthy_reward = if healthy { self.healthy_reward } else { 0.0 };
        let ctrl_cost = control_cost_f32(self.ctrl_w, action);
        let reward = (forward_reward + healthy_reward) - ctrl_cost as f64;
        put(info, "x_position", x1);
        put(info, "z_distance_from_origin", sim.qpos()[1] - init_qpos[1]);
        put(info, "x_velocity", x_velocity);
        put(info, "reward_forward", forward_reward);
        put(info, "reward_ctrl", -ctrl_cost as f64);
        put(info, "reward_survive", healthy_reward);
        (reward, !healthy && self.terminate)
    }
}

/// Ant-v5: a quadruped walking along x, with contact forces in the observation and cost.
struct Ant {
    forward_w: f64,
    ctrl_w: f64,
    contact_w: f64,
    healthy_reward: f64,
    main_body: usize,
    terminate: bool,
    z_range: (f64, f64),
    force_range: (f64, f64),
    noise: f64,
    exclude: bool,
    include_cfrc_ext: bool,
}

impl Robot for Ant {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        out.extend_from_slice(&sim.qpos()[if self.exclude { 2 } else { 0 }..]);
        out.extend_from_slice(sim.qvel());
        if self.include_cfrc_ext {
            let (lo, hi) = self.force_range;
            for body in &sim.cfrc_ext()[1..] {
                out.extend(body.iter().map(|&f| clip(f, lo, hi)));
            }
        }
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, self.noise);
        add_normal(rng, qvel, self.noise);
    }
    fn reset_info(&self, sim: &Simulation, _init_qpos: &[f64], info: &mut Info) {
        let q = sim.qpos();
        put(info, "x_position", q[0]);
        put(info, "y_position", q[1]);
        put(info, "distance_from_origin", norm(&q[..2]));
    }
    fn uses_contact_forces(&self) -> bool {
        true
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        dt: f64,
        _init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        let before = sim.xpos()[self.main_body];
        do_simulation(sim, action, frame_skip, true);
        let after = sim.xpos()[self.main_body];
        let (xv, yv) = ((after[0] - before[0]) / dt, (after[1] - before[1]) / dt);
        let forward_reward = xv * self.forward_w;
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let healthy = qpos.iter().chain(qvel).all(|x| x.is_finite())
            && self.z_range.0 <= qpos[2]
            && qpos[2] <= self.z_range.1;
        let healthy_reward = if healthy { self.healthy_reward } else { 0.0 };
        let ctrl_cost = control_cost_f32(self.ctrl_w, action);
        let (lo, hi) = self.force_range;
        let contact_cost = self.contact_w
            * sim
                .cfrc_ext()
                .iter()
                .flatten()
                .map(|&f| clip(f, lo, hi))
                .map(|c| c * c)
                .sum::<f64>();
        let reward = (forward_reward + healthy_reward) - (ctrl_cost as f64 + contact_cost);
        put(info, "x_position", qpos[0]);
        put(info, "y_position", qpos[1]);
        put(info, "distance_from_origin", norm(&qpos[..2]));
        put(info, "x_velocity", xv);
        put(info, "y_velocity", yv);
        put(info, "reward_forward", forward_reward);
        put(info, "reward_ctrl", -ctrl_cost as f64);
        put(info, "reward_contact", -contact_cost);
        put(info, "reward_survive", healthy_reward);
        (reward, !healthy && self.terminate)
    }
}

/// The observation options of Humanoid-v5 and HumanoidStandup-v5.
struct HumanoidObservation {
    exclude: bool,
    cinert: bool,
    cvel: bool,
    qfrc_actuator: bool,
    cfrc_ext: bool,
}

impl HumanoidObservation {
    fn write(&self, sim: &Simulation, out: &mut Vec<f64>) {
        out.extend_from_slice(&sim.qpos()[if self.exclude { 2 } else { 0 }..]);
        out.extend_from_slice(sim.qvel());
        if self.cinert {
            out.extend(sim.cinert()[1..].iter().flatten());
        }
        if self.cvel {
            out.extend(sim.cvel()[1..].iter().flatten());
        }
        if self.qfrc_actuator {
            out.extend_from_slice(&sim.qfrc_actuator()[6..]);
        }
        if self.cfrc_ext {
            out.extend(sim.cfrc_ext()[1..].iter().flatten());
        }
    }

    fn info(sim: &Simulation, info: &mut Info) {
        put(info, "x_position", sim.qpos()[0]);
        put(info, "y_position", sim.qpos()[1]);
        put_array(info, "tendon_length", sim.ten_length());
        put_array(info, "tendon_velocity", sim.ten_velocity());
    }
}

fn sum_squares(x: impl Iterator<Item = f64>) -> f64 {
    x.map(|v| v * v).sum()
}

/// `mass_center`: the mass-weighted mean of the bodies' centres of mass, x and y.
fn mass_center(sim: &Simulation) -> [f64; 2] {
    let mass = sim.body_mass();
    let total: f64 = mass.iter().sum();
    let mut num = [0.0; 2];
    for (m, p) in mass.iter().zip(sim.xipos()) {
        num[0] += m * p[0];
        num[1] += m * p[1];
    }
    [num[0] / total, num[1] / total]
}

/// Humanoid-v5: a 3D humanoid walking forward.
struct Humanoid {
    obs: HumanoidObservation,
    noise: f64,
    forward_w: f64,
    ctrl_w: f64,
    contact_w: f64,
    contact_range: (f64, f64),
    healthy_reward: f64,
    terminate: bool,
    z_range: (f64, f64),
}

impl Robot for Humanoid {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        self.obs.write(sim, out);
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, self.noise);
        add_uniform(rng, qvel, self.noise);
    }
    fn reset_info(&self, sim: &Simulation, _init_qpos: &[f64], info: &mut Info) {
        HumanoidObservation::info(sim, info);
        put(info, "distance_from_origin", norm(&sim.qpos()[..2]));
    }
    fn uses_contact_forces(&self) -> bool {
        true
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        dt: f64,
        _init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        let before = mass_center(sim);
        do_simulation(sim, action, frame_skip, true);
        let after = mass_center(sim);
        let (xv, yv) = ((after[0] - before[0]) / dt, (after[1] - before[1]) / dt);
        let forward_reward = self.forward_w * xv;
        let z = sim.qpos()[2];
        let healthy = self.z_range.0 < z && z < self.z_range.1;
        let healthy_reward = if healthy { self.healthy_reward } else { 0.0 };
        // Humanoid's control cost is of `data.ctrl` (float64), not of the float32 action.
        let ctrl_cost = self.ctrl_w * sum_squares(sim.ctrl().iter().copied());
        let contact_cost = clip(
            self.contact_w * sum_squares(sim.cfrc_ext().iter().flatten().copied()),
            self.contact_range.0,
            self.contact_range.1,
        );
        let reward = (forward_reward + healthy_reward) - (ctrl_cost + contact_cost);
        HumanoidObservation::info(sim, info);
        put(info, "distance_from_origin", norm(&sim.qpos()[..2]));
        put(info, "x_velocity", xv);
        put(info, "y_velocity", yv);
        put(info, "reward_survive", healthy_reward);
        put(info, "reward_forward", forward_reward);
        put(info, "reward_ctrl", -ctrl_cost);
        put(info, "reward_contact", -contact_cost);
        (reward, !healthy && self.terminate)
    }
}

/// HumanoidStandup-v5: a humanoid lying down, rewarded for raising its torso.
struct HumanoidStandup {
    obs: HumanoidObservation,
    noise: f64,
    ctrl_w: f64,
    impact_w: f64,
    impact_range: (f64, f64),
}

impl Robot for HumanoidStandup {
    fn observation(&self, sim: &Simulation, out: &mut Vec<f64>) {
        self.obs.write(sim, out);
    }
    fn reset_noise(&mut self, rng: &mut ReinRng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, self.noise);
        add_uniform(rng, qvel, self.noise);
    }
    fn reset_info(&self, sim: &Simulation, init_qpos: &[f64], info: &mut Info) {
        HumanoidObservation::info(sim, info);
        put(info, "z_distance_from_origin", sim.qpos()[2] - init_qpos[2]);
    }
    fn uses_contact_forces(&self) -> bool {
        true
    }
    fn step(
        &mut self,
        sim: &mut Simulation,
        action: &[f32],
        frame_skip: usize,
        _dt: f64,
        init_qpos: &[f64],
        info: &mut Info,
    ) -> (f64, bool) {
        do_simulation(sim, action, frame_skip, true);
        let pos_after = sim.qpos()[2];
        // Gymnasium divides by the model's timestep, not by dt.
        let uph_cost = (pos_after - 0.0) / sim.timestep();
        let quad_ctrl_cost = self.ctrl_w * sum_squares(sim.ctrl().iter().copied());
        let quad_impact_cost = clip(
            self.impact_w * sum_squares(sim.cfrc_ext().iter().flatten().copied()),
            self.impact_range.0,
            self.impact_range.1,
        );
        let reward = uph_cost - quad_ctrl_cost - quad_impact_cost + 1.0;
        HumanoidObservation::info(sim, info);
        put(info, "z_distance_from_origin", pos_after - init_qpos[2]);
        put(info, "reward_linup", uph_cost);
        put(info, "reward_quadctrl", -quad_ctrl_cost);
        put(info, "reward_impact", -quad_impact_cost);
        (reward, false)
    }
}
