//! Weights on disk as safetensors (the format of Hugging Face and of `torch` users), with
//! free-form metadata for training state, written atomically.

use std::collections::HashMap;
use std::path::Path;

/// A named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Name, e.g. `actor.layers.0.weight`.
    pub name: String,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Elements.
    pub data: Vec<f32>,
}

/// Errors reading or writing weight files; messages name the file and the tensor.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid safetensors or lacks what was expected.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
}

/// Serialises tensors and metadata to safetensors bytes.
pub fn to_safetensors(
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| format!("tensor {}: {e}", t.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

/// Writes tensors and metadata to `path` atomically (temporary file, then rename).
pub fn save(
    path: &Path,
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
) -> Result<(), IoError> {
    let bytes = to_safetensors(tensors, metadata).map_err(|message| IoError::Format {
        path: path.display().to_string(),
        message,
    })?;
    rein_core::metrics::write_atomic(path, &bytes).map_err(|source| IoError::File {
        path: path.display().to_string(),
        source,
    })
}

/// Tensors by name, and the file's metadata.
pub type Loaded = (HashMap<String, NamedTensor>, HashMap<String, String>);

/// Reads every f32 tensor and the metadata of a safetensors file.
pub fn load(path: &Path) -> Result<Loaded, IoError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| IoError::File {
        path: p.clone(),
        source,
    })?;
    let fmt = |message: String| IoError::Format {
        path: p.clone(),
        message,
    };
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| fmt(format!("not a safetensors file: {e}")))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| fmt(e.to_string()))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(fmt(format!(
                "tensor {name} has dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            name.clone(),
            NamedTensor {
                name,
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

impl crate::mlp::Mlp {
    /// The layers as tensors named `{prefix}.{l}.weight` (PyTorch's `[out, in]` layout) and
    /// `{prefix}.{l}.bias`.
    pub fn to_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for l in 0..self.n_layers() {
            let (i, o) = (self.sizes()[l], self.sizes()[l + 1]);
            let (wr, br) = self.layer_ranges(l);
            let w = &self.params[wr];
            let wt: Vec<f32> = (0..o)
                .flat_map(|r| (0..i).map(move |c| (r, c)))
                .map(|(r, c)| w[c * o + r])
                .collect();
            out.push(NamedTensor {
                name: format!("{prefix}.{l}.weight"),
                shape: vec![o, i],
                data: wt,
            });
            out.push(NamedTensor {
                name: format!("{prefix}.{l}.bias"),
                shape: vec![o],
                data: self.params[br].to_vec(),
            });
        }
        out
    }

    /// Loads the tensors written by [`Mlp::to_tensors`], checking every shape.
    pub fn load_tensors(
        &mut self,
        prefix: &str,
        tensors: &HashMap<String, NamedTensor>,
    ) -> Result<(), String> {
        for l in 0..self.n_layers() {
            let (i, o) = (self.sizes()[l], self.sizes()[l + 1]);
            let get = |name: String, shape: Vec<usize>| -> Result<&NamedTensor, String> {
                let t = tensors
                    .get(&name)
                    .ok_or_else(|| format!("missing tensor {name}"))?;
                if t.shape != shape {
                    return Err(format!(
                        "tensor {name} has shape {:?}, expected {shape:?}",
                        t.shape
                    ));
                }
                Ok(t)
            };
            let w = get(format!("{prefix}.{l}.weight"), vec![o, i])?;
            let b = get(format!("{prefix}.{l}.bias"), vec![o])?;
            let (wr, br) = self.layer_ranges(l);
            let dst = &mut self.params[wr];
            for r in 0..o {
                for c in 0..i {
                    dst[c * o + r] = w.data[r * i + c];
                }
            }
            self.params[br].copy_from_slice(&b.data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Mlp};

    #[test]
    fn mlp_round_trips_through_safetensors() {
        let mut a = Mlp::new(&[3, 4, 2], Activation::Tanh);
        a.init_orthogonal(&[1.0, 1.0], &mut rein_core::rng_from_seed(0));
        let dir = std::env::temp_dir().join(format!("rein-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        save(&path, &a.to_tensors("actor"), meta).unwrap();
        let (tensors, meta) = load(&path).unwrap();
        assert_eq!(meta["k"], "v");
        assert_eq!(tensors["actor.0.weight"].shape, vec![4, 3]);
        let mut b = Mlp::new(&[3, 4, 2], Activation::Tanh);
        b.load_tensors("actor", &tensors).unwrap();
        assert_eq!(a.params, b.params);
        let mut c = Mlp::new(&[3, 5, 2], Activation::Tanh);
        assert!(c
            .load_tensors("actor", &tensors)
            .unwrap_err()
            .contains("actor.0.weight"));
    }
}
