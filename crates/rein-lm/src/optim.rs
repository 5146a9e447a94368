//! AdamW (Loshchilov and Hutter 2019) over candle `Var`s, as `torch.optim.AdamW` computes it,
//! with its moments kept as named tensors so that checkpoints can hold them (candle's own
//! AdamW keeps them private).

use crate::LmError;
use candle_core::{backprop::GradStore, Tensor, Var};

/// AdamW hyperparameters and state.
pub struct AdamW {
    /// Learning rate (set it every step for schedules).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Steps taken.
    pub step: u64,
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    /// Zero moments for `params` (name, variable).
    pub fn new(params: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Result<Self, LmError> {
        let m = params
            .iter()
            .map(|(_, p)| p.as_tensor().zeros_like())
            .collect::<Result<Vec<_>, _>>()?;
        let v = m.clone();
        Ok(Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            params,
            m,
            v,
        })
    }

    /// One update from the gradients of a backward pass (parameters without a gradient are
    /// left alone, as PyTorch).
    pub fn step(&mut self, grads: &GradStore) -> Result<(), LmError> {
        let by_name: std::collections::HashMap<String, Tensor> = self
            .params
            .iter()
            .filter_map(|(n, p)| grads.get(p.as_tensor()).map(|g| (n.clone(), g.clone())))
            .collect();
        self.step_named(&by_name)
    }

    /// Adds the gradients of one backward pass into `acc` (by parameter name): gradient
    /// accumulation over micro-batches before one [`AdamW::step_named`].
    pub fn accumulate(
        &self,
        acc: &mut std::collections::HashMap<String, Tensor>,
        grads: &GradStore,
    ) -> Result<(), LmError> {
        for (name, var) in &self.params {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g = g.detach();
                let sum = match acc.remove(name) {
                    Some(prev) => (prev + g)?,
                    None => g,
                };
                acc.insert(name.clone(), sum);
            }
        }
        Ok(())
    }

    /// One update from gradients by parameter name:
    /// `p <- p (1 - lr wd)`, then `p <- p - lr m_hat / (sqrt(v_hat) + eps)`.
    pub fn step_named(
        &mut self,
        grads: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), LmError> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        for (i, (name, p)) in self.params.iter().enumerate() {
            let Some(g) = grads.get(name) else {
                continue;
            };
            // Gradients computed from variables carry their op history; without detaching,
            // the moments would keep every step's graph alive.
            let g = g.detach();
            let m = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?.detach();
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?.detach();
            let denom = ((&v / bc2)?.sqrt()? + self.eps)?;
            let upd = ((&m / bc1)? / denom)?;
            let decayed = (p.as_tensor() * (1.0 - self.lr * self.weight_decay))?;
            p.set(&(decayed - (upd * self.lr)?)?.detach())?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Moments as named tensors (`m.<name>`, `v.<name>`) for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (n, _)) in self.params.iter().enumerate() {
            out.push((format!("m.{n}"), self.m[i].clone()));
            out.push((format!("v.{n}"), self.v[i].clone()));
        }
        out
    }
}

impl AdamW {
    /// Restores moments written by [`AdamW::state_tensors`], checking names and shapes.
    pub fn load_state_tensors(
        &mut self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), String> {
        for (i, (n, p)) in self.params.iter().enumerate() {
            for (key, slot) in [(format!("m.{n}"), 0), (format!("v.{n}"), 1)] {
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| format!("optimizer tensor {key} is missing"))?;
                if t.dims() != p.as_tensor().dims() {
                    return Err(format!(
                        "optimizer tensor {key} has shape {:?}, expected {:?}",
                        t.dims(),
                        p.as_tensor().dims()
                    ));
                }
                if slot == 0 {
                    self.m[i] = t.clone();
                } else {
                    self.v[i] = t.clone();
                }
            }
        }
        Ok(())
    }
}

/// Global L2 norm of gradients (by name), and scaling of them to at most `max_norm`
/// (`torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
pub fn clip_grad_norm(
    grads: &mut std::collections::HashMap<String, Tensor>,
    max_norm: f64,
) -> Result<f64, LmError> {
    let mut sq = 0f64;
    let mut names: Vec<&String> = grads.keys().collect();
    names.sort(); // a fixed summation order: bit-reproducible norms
    for n in names {
        sq += f64::from(grads[n].sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.values_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}
