//! Classic-control environments (Gymnasium's `classic_control`).

mod acrobot;
mod cartpole;
mod mountain_car;
mod pendulum;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use mountain_car::{ContinuousState, MountainCar, MountainCarContinuous};
pub use pendulum::{angle_normalize, Pendulum};
