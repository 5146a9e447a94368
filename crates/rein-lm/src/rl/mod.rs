//! Reinforcement learning for language models: the reward interface and prompt data
//! ([`reward`]), the rewards themselves ([`rewards`], learned ones in [`reward_model`]), the KL
//! penalty ([`kl`]), advantages and baselines ([`advantages`]), batches of sampled responses
//! ([`batch`]), the prompt loader and rollouts ([`rollout`]), the trainers GRPO and its
//! relatives ([`grpo`]) and PPO ([`ppo_lm`]), and both as one `rein_train::Trainer`
//! ([`trainer`]).

pub mod advantages;
pub mod batch;
pub mod grpo;
pub mod kl;
pub mod ppo_lm;
pub mod reward;
pub mod reward_model;
pub mod rewards;
pub mod rollout;
pub mod trainer;
