//! `rein`: the command-line front end of the rein reinforcement-learning toolkit.

mod cmd_bench;
mod cmd_env;
mod cmd_eval;
mod cmd_lm;
mod cmd_lm_rl;
mod cmd_lm_tasks;
mod cmd_mdp;
mod cmd_train;
mod gif;
mod session;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rein",
    version,
    about = "Reinforcement learning in one binary: Gymnasium-exact environments, MDP solvers and agents.",
    after_help = "Examples:\n  rein envs\n  rein env rollout --env CartPole-v1 --seed 0 --actions '[0,1,1]'\n  rein env bench --env CartPole-v1 --steps 10000000\n  rein mdp solve --env FrozenLake-v1 --map 8x8\n  rein train qlearning --env Taxi-v4 --seed 1\n  rein train ppo --env CartPole-v1\n  rein eval runs/<run directory> --deterministic\n  rein bench ppo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every registered environment with its spaces, reward threshold and episode limit.
    #[command(after_help = "Examples:\n  rein envs\n  rein envs --json")]
    Envs(cmd_env::EnvsArgs),
    /// Work with one environment: roll out actions, benchmark, check.
    #[command(subcommand)]
    Env(cmd_env::EnvCommand),
    /// Solve tabular MDPs by dynamic programming.
    #[command(subcommand)]
    Mdp(cmd_mdp::MdpCommand),
    /// Train an agent; writes a run directory with config, metrics, checkpoints and evaluation.
    Train(cmd_train::TrainArgs),
    /// Evaluate the policy of a run directory.
    Eval(cmd_eval::EvalArgs),
    /// Benchmarks of training speed.
    #[command(
        subcommand,
        after_help = "Examples:\n  rein bench ppo --env CartPole-v1\n  rein bench dqn --total-timesteps 20000\n  rein bench lm --sizes tiny\n  rein bench lm-rl --model SmolLM2-135M-Instruct.Q4_1.gguf\n  rein bench gemm"
    )]
    Bench(BenchCommand),
    /// Language models: generation, chat, training, RL fine-tuning, evaluation.
    #[command(subcommand)]
    Lm(LmCommand),
}

#[derive(Subcommand)]
enum LmCommand {
    /// Generate continuations of prompts (text, a JSONL file of prompts, or token ids).
    Generate(cmd_lm::GenerateArgs),
    /// Interactive multi-turn chat with a model's chat template, streaming the reply.
    Chat(cmd_lm::ChatArgs),
    /// Logits of token sequences run as one left-padded batch (cross-checking checkpoints).
    Logits(cmd_lm::LogitsArgs),
    /// Scores of token sequences under a reward (sequence-classification) model.
    Score(cmd_lm::ScoreArgs),
    /// The chat template's text and token ids of a list of messages.
    ChatTemplate(cmd_lm::ChatTemplateArgs),
    /// Writes a model (directory or .gguf file) as a Hugging Face directory.
    Convert(cmd_lm::ConvertArgs),
    /// Merges a PEFT LoRA adapter into its base model and writes a Hugging Face directory.
    MergeLora(cmd_lm::MergeLoraArgs),
    /// Train a byte-level BPE tokenizer on text files (writes tokenizer.json).
    TrainTokenizer(cmd_lm::TrainTokenizerArgs),
    /// Pretrain a new model from scratch on plain text (GPT-2, or the config.json given with --config).
    Pretrain(cmd_lm::PretrainArgs),
    /// Fine-tune a model on JSONL prompt/completion or text records.
    Sft(cmd_lm::SftArgs),
    /// Build the default small model (arithmetic) from nothing, in minutes.
    Quickstart(cmd_lm::QuickstartArgs),
    /// RL fine-tuning with GRPO, Dr. GRPO, RLOO or REINFORCE on a JSONL prompt file.
    Grpo(cmd_lm_rl::GrpoArgs),
    /// RL fine-tuning with PPO (value head, KL-in-reward, adaptive KL) on a JSONL prompt file.
    Ppo(cmd_lm_rl::PpoArgs),
    /// The verifiable-arithmetic pipeline: evaluate, GRPO-train, evaluate again.
    Demo(cmd_lm_rl::DemoArgs),
    /// Task metric, KL and reference perplexity of a trained model on held-out prompts.
    Eval(cmd_lm_tasks::EvalArgs),
    /// Train a Bradley-Terry reward model on preference pairs.
    TrainRewardModel(cmd_lm_tasks::TrainRewardModelArgs),
    /// Check a task preset: settings, prompt files, rewards.
    CheckPreset(cmd_lm_rl::CheckPresetArgs),
    /// Write the example datasets of the task presets.
    ExampleData(cmd_lm_tasks::ExampleDataArgs),
    /// Text metrics: BLEU and chrF as sacrebleu, ROUGE as rouge-score, VADER as vaderSentiment.
    Metric(cmd_lm_rl::MetricArgs),
}

fn run_lm(c: LmCommand) -> anyhow::Result<()> {
    match c {
        LmCommand::Generate(a) => cmd_lm::cmd_generate(&a),
        LmCommand::Chat(a) => cmd_lm::cmd_chat(&a),
        LmCommand::Logits(a) => cmd_lm::cmd_logits(&a),
        LmCommand::Score(a) => cmd_lm::cmd_score(&a),
        LmCommand::ChatTemplate(a) => cmd_lm::cmd_chat_template(&a),
        LmCommand::Convert(a) => cmd_lm::cmd_convert(&a),
        LmCommand::MergeLora(a) => cmd_lm::cmd_merge_lora(&a),
        LmCommand::TrainTokenizer(a) => cmd_lm::train_tokenizer(&a),
        LmCommand::Pretrain(a) => cmd_lm::pretrain(&a),
        LmCommand::Sft(a) => cmd_lm::sft(&a),
        LmCommand::Quickstart(a) => cmd_lm::quickstart(&a),
        LmCommand::Grpo(a) => cmd_lm_rl::grpo(&a),
        LmCommand::Ppo(a) => cmd_lm_rl::ppo(&a),
        LmCommand::Demo(a) => cmd_lm_rl::demo(&a),
        LmCommand::Metric(a) => cmd_lm_rl::metric(&a),
        LmCommand::Eval(a) => cmd_lm_tasks::eval(&a),
        LmCommand::TrainRewardModel(a) => cmd_lm_tasks::train_rm(&a),
        LmCommand::ExampleData(a) => cmd_lm_tasks::example_data(&a),
        LmCommand::CheckPreset(a) => cmd_lm_rl::check_preset(&a),
    }
}

#[derive(Subcommand)]
enum BenchCommand {
    /// PPO training throughput with the shipped preset (steps/s, time per gradient step, GFLOP/s).
    Ppo(cmd_bench::BenchPpoArgs),
    /// Rerun the learning-results table (algorithm x env x seeds) and write it as Markdown.
    Learn(cmd_bench::BenchLearnArgs),
    /// DQN training throughput with the shipped preset, and its fraction of the sgemm peak.
    Dqn(cmd_bench::BenchOffPolicyArgs),
    /// DDPG training throughput with the shipped preset, and its fraction of the sgemm peak.
    Ddpg(cmd_bench::BenchOffPolicyArgs),
    /// TD3 training throughput with the shipped preset, and its fraction of the sgemm peak.
    Td3(cmd_bench::BenchOffPolicyArgs),
    /// SAC training throughput with the shipped preset, and its fraction of the sgemm peak.
    Sac(cmd_bench::BenchOffPolicyArgs),
    /// Language-model speed: forward, generation and training step of GPT-2 small and a tiny GPT-2.
    Lm(cmd_bench::BenchLmArgs),
    /// Seconds per GRPO and PPO step for language models (tiny GPT-2, 8 completions of 32 tokens).
    LmRl(cmd_bench::BenchLmRlArgs),
    /// This machine's one-thread sgemm throughput.
    Gemm,
    /// Under mpirun: milliseconds per gradient allreduce of the presets' sizes (rein's
    /// averaging of one flattened f32 buffer).
    Allreduce(cmd_bench::BenchAllreduceArgs),
}

/// The binary's allocator: mimalloc, which keeps freed memory for reuse (see
/// [`keep_freed_memory`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (`mimalloc.h`; the sys crate names
/// no constant for it). A test checks that it reads mimalloc's default, 1,000 ms (`options.c`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process for the next allocation instead of handing it back to
/// the kernel. candle allocates a fresh buffer for every tensor operation; returned to the
/// kernel (glibc for any buffer of 32 MB or more, whatever `mallopt` says; mimalloc after a
/// second by default), each is page-faulted and zeroed again on the next step, and the unmapping
/// flushes every core's TLB: 30,000 page faults per tiny GPT-2 training step, a quarter of it
/// (that step alone in a loop, 2026-12-02: 0.35 -> 0.26 s). The cost is that the process keeps its peak memory, as
/// PyTorch's caching allocators do. `MIMALLOC_PURGE_DELAY` set by the user wins.
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's options (a plain integer), valid at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Shortens how long candle's element-wise worker threads spin after each operation (25,000
/// spins by default) unless the user set `CANDLE_BARRIER_POOL_SPIN_LIMIT`: on 2 cores a
/// spinning candle worker takes a core from the rayon threads of the next matrix product
/// (tiny GPT-2 forward: best of 3 runs 0.116-0.126 s with the default, 0.107-0.109 s with 1,000).
fn limit_candle_spinning() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000");
    }
}

/// Lets a closed stdout end the process quietly, as it ends `ls` or `grep`: `rein envs | head
/// -1` made the next `println!` panic with "failed printing to stdout: Broken pipe". SIGPIPE
/// stays ignored (its default would also kill rein when a reward command exits without
/// reading its stdin); instead that one panic exits with status 141, the shell's code for a
/// process ended by SIGPIPE. Checkpoints are written atomically, so a training run ended
/// this way keeps its last checkpoint.
fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() {
    exit_quietly_on_closed_stdout();
    keep_freed_memory();
    limit_candle_spinning();
    let cli = Cli::parse();
    #[cfg(feature = "mpi")]
    let mpi = match rein_mpi::start() {
        Ok(session) => session,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let result = match cli.command {
        Command::Envs(a) => cmd_env::list(&a),
        Command::Env(c) => cmd_env::run(c),
        Command::Mdp(c) => cmd_mdp::run(c),
        Command::Train(a) => cmd_train::run(a),
        Command::Eval(a) => cmd_eval::eval(&a),
        Command::Lm(c) => run_lm(c),
        Command::Bench(BenchCommand::Ppo(a)) => cmd_bench::bench_ppo(&a),
        Command::Bench(BenchCommand::Learn(a)) => cmd_bench::bench_learn(&a),
        Command::Bench(BenchCommand::Dqn(a)) => {
            cmd_bench::bench_off_policy(rein_algos::agent::Algo::Dqn, &a)
        }
        Command::Bench(BenchCommand::Ddpg(a)) => {
            cmd_bench::bench_off_policy(rein_algos::agent::Algo::Ddpg, &a)
        }
        Command::Bench(BenchCommand::Td3(a)) => {
            cmd_bench::bench_off_policy(rein_algos::agent::Algo::Td3, &a)
        }
        Command::Bench(BenchCommand::Sac(a)) => {
            cmd_bench::bench_off_policy(rein_algos::agent::Algo::Sac, &a)
        }
        Command::Bench(BenchCommand::Lm(a)) => cmd_bench::bench_lm(&a),
        Command::Bench(BenchCommand::LmRl(a)) => cmd_bench::bench_lm_rl(&a),
        Command::Bench(BenchCommand::Gemm) => cmd_bench::bench_gemm(),
        Command::Bench(BenchCommand::Allreduce(a)) => cmd_bench::bench_allreduce(&a),
    };
    if let Err(e) = result {
        let world = rein_core::collective::world();
        let rank = if world.size() > 1 {
            format!(" (rank {} of {})", world.rank(), world.size())
        } else {
            String::new()
        };
        eprintln!("error{rank}: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        if world.size() > 1 {
            // The other ranks wait in a collective for this one: MPI_Abort ends them all.
            world.abort(1);
        }
        std::process::exit(1);
    }
    #[cfg(feature = "mpi")]
    drop(mpi);
}

#[cfg(test)]
mod tests {
    /// The option index names the purge delay: it reads mimalloc's default (1,000 ms)
    /// when the environment does not set it, and takes what is set.
    #[test]
    fn purge_delay_option_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads and sets a plain integer option.
        unsafe {
            assert_eq!(
                libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY),
                1000
            );
            super::keep_freed_memory();
            assert_eq!(
                libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY),
                -1
            );
        }
    }
}
