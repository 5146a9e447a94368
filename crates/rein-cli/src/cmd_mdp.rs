//! `rein mdp solve`: dynamic programming on toy-text environments or user MDPs.

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use rein_envs::mdp::{Solution, TabularMdp};
use rein_envs::toy_text::ToyKind;
use rein_train::settings::parse_overrides;
use serde_json::json;

#[derive(Subcommand)]
pub enum MdpCommand {
    /// Compute V*, Q* and a greedy optimal policy.
    #[command(
        after_help = "Examples:\n  rein mdp solve --env FrozenLake-v1\n  rein mdp solve --env FrozenLake-v1 --map 8x8 --slippery false --method policy-iteration\n  rein mdp solve --env CliffWalking-v1 --gamma 1.0\n  rein mdp solve --mdp my_mdp.json --json\n\nMDP JSON (see README): {\"gamma\": 0.9, \"P\": [[[[p, next_state, reward, terminated], ...] per action] per state]}\nor {\"gamma\": 0.9, \"transition\": T[s][a][s'], \"reward\": R[s][a], \"terminal\": [bool per state]}."
    )]
    Solve(SolveArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Method {
    ValueIteration,
    PolicyIteration,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["env", "mdp"])))]
pub struct SolveArgs {
    /// A table-driven toy-text env: FrozenLake-v1, FrozenLake8x8-v1, Taxi-v4, CliffWalking-v1,
    /// CliffWalkingSlippery-v1.
    #[arg(long)]
    env: Option<String>,
    /// A JSON file with a user MDP.
    #[arg(long)]
    mdp: Option<std::path::PathBuf>,
    /// Solution method.
    #[arg(long, value_enum, default_value = "value-iteration")]
    method: Method,
    /// Discount factor (overrides the "gamma" of an MDP file). Default 0.99 for envs.
    #[arg(long, allow_negative_numbers = true)]
    gamma: Option<f64>,
    /// FrozenLake map: 4x4 or 8x8.
    #[arg(long)]
    map: Option<String>,
    /// FrozenLake/CliffWalking slipperiness.
    #[arg(long)]
    slippery: Option<bool>,
    /// Other environment options key=value, repeatable.
    #[arg(long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Stopping tolerance of value iteration (largest change of V in a sweep).
    #[arg(long, default_value_t = 1e-10)]
    tol: f64,
    /// Print {"V": [...], "Q": [[...]], "policy": [...], "bellman_residual_v": ..., "bellman_residual_q": ...}.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: MdpCommand) -> Result<()> {
    match cmd {
        MdpCommand::Solve(a) => solve(&a),
    }
}

fn solve(a: &SolveArgs) -> Result<()> {
    if let Some(g) = a.gamma {
        if !(0.0..=1.0).contains(&g) {
            bail!("--gamma must be in [0, 1], got {g}");
        }
    }
    let (mdp, kind, label) = if let Some(path) = &a.mdp {
        let mut mdp = TabularMdp::read(path)?;
        if let Some(g) = a.gamma {
            mdp.gamma = g;
        }
        (mdp, None, path.display().to_string())
    } else {
        let id = a.env.as_deref().unwrap_or_default();
        let mut kwargs = parse_overrides(&a.options)?;
        if let Some(m) = &a.map {
            kwargs.insert("map_name".into(), json!(m));
        }
        if let Some(s) = a.slippery {
            kwargs.insert("is_slippery".into(), json!(s));
        }
        let env = rein_envs::make_discrete(id, &kwargs)?;
        let mdp = TabularMdp::from_env(&env, a.gamma.unwrap_or(0.99))?;
        (mdp, Some(env.kind().clone()), id.to_string())
    };
    let sol: Solution = match a.method {
        Method::ValueIteration => mdp.value_iteration(a.tol, 10_000_000)?,
        Method::PolicyIteration => mdp.policy_iteration(100_000)?,
    };
    let (v_residual, q_residual) = mdp.bellman_residuals(&sol.v, &sol.q);
    if a.json {
        println!(
            "{}",
            json!({"V": sol.v, "Q": sol.q, "policy": sol.policy,
                   "bellman_residual_v": v_residual, "bellman_residual_q": q_residual})
        );
        return Ok(());
    }
    let method = match a.method {
        Method::ValueIteration => "value iteration (sweeps)",
        Method::PolicyIteration => "policy iteration (improvement steps)",
    };
    println!(
        "{label}: {} states, {} actions, gamma {}; {method}: {}",
        mdp.n_states(),
        mdp.n_actions(),
        mdp.gamma,
        sol.iterations
    );
    if let Some((rows, cols)) = kind.as_ref().and_then(ToyKind::grid_shape) {
        println!("\ngreedy policy:");
        for line in kind
            .as_ref()
            .and_then(|k| k.policy_picture(&sol.policy))
            .unwrap_or_default()
        {
            println!("{line}");
        }
        println!("\nV*:");
        for r in 0..rows {
            let line: Vec<String> = (0..cols)
                .map(|c| format!("{:>8.4}", sol.v[r * cols + c]))
                .collect();
            println!("{}", line.join(" "));
        }
    }
    println!("\nstate  V*            greedy action  Q*");
    for s in 0..mdp.n_states() {
        let q: Vec<String> = sol.q[s].iter().map(|x| format!("{x:.6}")).collect();
        println!(
            "{s:<6} {:<13.6} {:<14} [{}]",
            sol.v[s],
            sol.policy[s],
            q.join(", ")
        );
    }
    println!(
        "\nBellman optimality residuals: max_s |V - max_a backup(V)| = {v_residual:.1e}, \
         max_s,a |Q - backup(max Q)| = {q_residual:.1e}"
    );
    Ok(())
}
