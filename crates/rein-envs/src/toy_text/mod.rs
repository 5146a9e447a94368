//! Toy-text environments (Gymnasium's `toy_text`): FrozenLake, Taxi, CliffWalking, whose
//! dynamics are an explicit transition table, and Blackjack.

mod blackjack;
mod cliff_walking;
mod discrete;
mod frozen_lake;
mod taxi;

pub use blackjack::Blackjack;
pub use cliff_walking::cliff_walking;
pub use discrete::{DiscreteEnv, ToyKind, Transition, TransitionTable};
pub use frozen_lake::{frozen_lake, generate_random_map, map_by_name, FrozenLakeOptions};
pub use taxi::{taxi, taxi_decode, taxi_encode};
