"""rein for Python: rein's environments as Gymnasium environments (`make`, and
`gymnasium.make("rein/<id>")`) and vector environments (`make_vec`), its deep-RL trainers
(`train`) and trained policies (`load`), language models (`lm.load`, and `lm.grpo`/`lm.ppo`
with Python reward functions), its text metrics (`metrics`), and an SB3 vector env
(`sb3.VecEnv`), on rein's compiled Rust core."""

from . import lm, metrics, sb3
from .envs import ReinEnv, gymnasium_id, make, register_all, registry
from .training import Policy, Run, load, train
from .vector import ReinVectorEnv, make_vec

register_all()

__all__ = [
    "gymnasium_id",
    "ReinEnv",
    "ReinVectorEnv",
    "Policy",
    "Run",
    "lm",
    "load",
    "make",
    "make_vec",
    "metrics",
    "registry",
    "sb3",
    "train",
]
__version__ = "0.1.0"
