//! `rein._rein`, the compiled core of rein's Python package (`python/rein`): built-in
//! environments and the threaded vector env with numpy buffers filled in place, the deep
//! agents and the language-model trainers (GRPO/PPO with Python reward functions) run through
//! rein's run loop with a Python observer, trained policies, language models, and the text
//! metrics. The Gymnasium-facing classes are Python (`python/rein/*.py`) over these.

mod convert;
mod env;
mod lm;
mod metrics;
mod train;
mod vector;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _rein(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<env::RustEnv>()?;
    m.add_class::<vector::RustVecEnv>()?;
    m.add_class::<train::RustPolicy>()?;
    m.add_class::<lm::RustLm>()?;
    m.add_function(wrap_pyfunction!(lm::lm_train, m)?)?;
    m.add_function(wrap_pyfunction!(env::registry_json, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(train::train_tabular, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::corpus_bleu, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::sentence_bleu, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::corpus_chrf, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::sentence_chrf, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::rouge, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::vader, m)?)?;
    Ok(())
}
