//! Spaces (the sets that observations and actions live in) and the values that inhabit them.
//!
//! Mirrors `gymnasium.spaces`: [`Space::Discrete`], [`Space::Box`], [`Space::MultiDiscrete`] and
//! [`Space::Tuple`] (Blackjack's observation). [`Value`] is one element of a space. Algorithms
//! consume observations through the flat `f32` encoding of [`Space::flatten_into`]
//! (`gymnasium.spaces.flatten`: one-hot for discrete parts, the raw numbers for boxes).

use crate::error::EnvError;
use crate::rng::ReinRng;
use rand::Rng;
use rand_distr::{Distribution, Exp1, StandardNormal};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::fmt;

/// Inline storage for `f32` box values: observations of the classic-control envs fit without a
/// heap allocation, which keeps `step` allocation-free on the hot path.
pub type F32Vec = SmallVec<[f32; 8]>;

/// Element type of a [`Space::Box`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit floats (every built-in environment).
    Float32,
    /// 64-bit floats.
    Float64,
}

/// A set of observations or actions, as in `gymnasium.spaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Space {
    /// `{start, ..., start + n - 1}`.
    Discrete {
        /// Number of elements.
        n: u64,
        /// Smallest element.
        start: i64,
    },
    /// A box `[low, high]` of the given shape; bounds may be infinite.
    Box {
        /// Shape (row-major); the number of elements is its product.
        shape: Vec<usize>,
        /// Element type.
        dtype: Dtype,
        /// Lower bounds, one per element.
        low: Vec<f64>,
        /// Upper bounds, one per element.
        high: Vec<f64>,
    },
    /// A vector of independent discrete components, component i in `{0, ..., nvec[i]-1}`.
    MultiDiscrete {
        /// Number of values of each component.
        nvec: Vec<u64>,
    },
    /// A cartesian product of spaces.
    Tuple {
        /// The component spaces.
        spaces: Vec<Space>,
    },
}

/// An element of a [`Space`]: an observation or an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Element of a `Discrete` space.
    Discrete(i64),
    /// Element of a `float32` `Box` space (row-major).
    Box(F32Vec),
    /// Element of a `float64` `Box` space (row-major).
    BoxF64(Vec<f64>),
    /// Element of a `MultiDiscrete` space.
    MultiDiscrete(Vec<i64>),
    /// Element of a `Tuple` space.
    Tuple(Vec<Value>),
}

impl Value {
    /// The integer of a discrete value.
    pub fn as_discrete(&self) -> Option<i64> {
        match self {
            Value::Discrete(i) => Some(*i),
            _ => None,
        }
    }

    /// The numbers of a float32 box value.
    pub fn as_box(&self) -> Option<&[f32]> {
        match self {
            Value::Box(v) => Some(v),
            _ => None,
        }
    }

    /// Compact JSON text of the value in which float32 numbers keep their shortest float32
    /// form (`0.013696169`, as Gymnasium's fixtures and `json.dumps(float(np.float32))` of
    /// numpy's repr), which a `serde_json::Value` cannot hold (it widens to f64).
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        use std::fmt::Write;
        let list = |out: &mut String, items: &mut dyn Iterator<Item = String>| {
            out.push('[');
            for (i, x) in items.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&x);
            }
            out.push(']');
        };
        match self {
            Value::Discrete(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Box(v) => list(out, &mut v.iter().map(|&x| f32_text(x))),
            Value::BoxF64(v) => list(out, &mut v.iter().map(|&x| f64_to_json(x).to_string())),
            Value::MultiDiscrete(v) => list(out, &mut v.iter().map(|x| x.to_string())),
            Value::Tuple(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write_json(out);
                }
                out.push(']');
            }
        }
    }

    /// The value as JSON: an integer, a (nested for tuples) array of numbers. Floats are written
    /// as the shortest decimal that reads back as the same f64 (see [`Value::to_json_string`]
    /// for float32 text).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Discrete(i) => J::from(*i),
            Value::Box(v) => J::Array(v.iter().map(|&x| f32_to_json(x)).collect()),
            Value::BoxF64(v) => J::Array(v.iter().map(|&x| f64_to_json(x)).collect()),
            Value::MultiDiscrete(v) => J::Array(v.iter().map(|&x| J::from(x)).collect()),
            Value::Tuple(v) => J::Array(v.iter().map(Value::to_json).collect()),
        }
    }
}

/// An f32 as a JSON number (shortest round-trip form); non-finite values become strings
/// `"inf"`, `"-inf"`, `"nan"` because JSON has no literal for them.
pub fn f32_to_json(x: f32) -> serde_json::Value {
    if x.is_finite() {
        // serde_json writes f32 with ryu's shortest f32 representation.
        serde_json::to_value(x).unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::Value::String(non_finite(x as f64))
    }
}

/// An f64 as a JSON number (shortest round-trip form); non-finite values become strings.
pub fn f64_to_json(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::to_value(x).unwrap_or(serde_json::Value::Null)
    } else {
        serde_json::Value::String(non_finite(x))
    }
}

/// The shortest decimal that reads back as the same f32 (Rust's `Display` for `f32`), with a
/// `.0` for integral values; non-finite values as the strings `"inf"`, `"-inf"`, `"nan"`.
pub fn f32_text(x: f32) -> String {
    if !x.is_finite() {
        return format!("\"{}\"", non_finite(x as f64));
    }
    let s = format!("{x}");
    if s.contains('.') || s.contains('e') {
        s
    } else {
        format!("{s}.0")
    }
}

fn non_finite(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x > 0.0 {
        "inf".into()
    } else {
        "-inf".into()
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Space::Discrete { n, start } => {
                if *start == 0 {
                    write!(f, "Discrete({n})")
                } else {
                    write!(f, "Discrete({n}, start={start})")
                }
            }
            Space::Box {
                shape,
                dtype,
                low,
                high,
            } => {
                let one = |x: f64| match dtype {
                    Dtype::Float32 => format!("{}", x as f32),
                    Dtype::Float64 => format!("{x}"),
                };
                // Bounds that are all equal print as one number (as Gymnasium's `Box.__repr__`
                // does), so that a 348-dimensional observation space stays one short line.
                let fmt_b = |v: &[f64]| {
                    if v.len() > 1 && v.iter().all(|&x| x.to_bits() == v[0].to_bits()) {
                        return one(v[0]);
                    }
                    let parts: Vec<String> = v.iter().map(|&x| one(x)).collect();
                    format!("[{}]", parts.join(", "))
                };
                let dt = match dtype {
                    Dtype::Float32 => "float32",
                    Dtype::Float64 => "float64",
                };
                write!(f, "Box({}, {}, {shape:?}, {dt})", fmt_b(low), fmt_b(high))
            }
            Space::MultiDiscrete { nvec } => write!(f, "MultiDiscrete({nvec:?})"),
            Space::Tuple { spaces } => {
                let parts: Vec<String> = spaces.iter().map(|s| s.to_string()).collect();
                write!(f, "Tuple({})", parts.join(", "))
            }
        }
    }
}

impl Space {
    /// `Discrete(n)` starting at 0.
    pub fn discrete(n: u64) -> Self {
        Space::Discrete { n, start: 0 }
    }

    /// A float32 box with per-element bounds (the shape is `[low.len()]`).
    pub fn box_f32(low: Vec<f64>, high: Vec<f64>) -> Self {
        let shape = vec![low.len()];
        Space::Box {
            shape,
            dtype: Dtype::Float32,
            low,
            high,
        }
    }

    /// Checks that the space is well formed (bounds have the shape's size, low <= high, n > 0).
    pub fn validate(&self) -> Result<(), EnvError> {
        match self {
            Space::Discrete { n, .. } if *n == 0 => Err(EnvError::Invalid(
                "Discrete space with n = 0: n must be at least 1".into(),
            )),
            Space::Discrete { .. } => Ok(()),
            Space::Box {
                shape, low, high, ..
            } => {
                let size: usize = shape.iter().product();
                if low.len() != size || high.len() != size {
                    return Err(EnvError::Invalid(format!(
                        "Box of shape {shape:?} needs {size} bounds, got {} low and {} high",
                        low.len(),
                        high.len()
                    )));
                }
                for (i, (l, h)) in low.iter().zip(high).enumerate() {
                    if l.is_nan() || h.is_nan() || l > h {
                        return Err(EnvError::Invalid(format!(
                            "Box bound {i}: low {l} must be <= high {h}"
                        )));
                    }
                }
                Ok(())
            }
            Space::MultiDiscrete { nvec } => {
                if nvec.contains(&0) {
                    return Err(EnvError::Invalid(format!(
                        "MultiDiscrete({nvec:?}): every component needs at least one value"
                    )));
                }
                Ok(())
            }
            Space::Tuple { spaces } => spaces.iter().try_for_each(Space::validate),
        }
    }

    /// Whether `value` is an element of this space (type, shape, bounds).
    pub fn contains(&self, value: &Value) -> bool {
        match (self, value) {
            (Space::Discrete { n, start }, Value::Discrete(i)) => {
                *i >= *start && ((*i - *start) as u64) < *n
            }
            (
                Space::Box {
                    dtype: Dtype::Float32,
                    low,
                    high,
                    ..
                },
                Value::Box(v),
            ) => {
                v.len() == low.len()
                    && v.iter()
                        .zip(low.iter().zip(high))
                        .all(|(&x, (&l, &h))| (x as f64) >= l && (x as f64) <= h)
            }
            (
                Space::Box {
                    dtype: Dtype::Float64,
                    low,
                    high,
                    ..
                },
                Value::BoxF64(v),
            ) => {
                v.len() == low.len()
                    && v.iter()
                        .zip(low.iter().zip(high))
                        .all(|(&x, (&l, &h))| x >= l && x <= h)
            }
            (Space::MultiDiscrete { nvec }, Value::MultiDiscrete(v)) => {
                v.len() == nvec.len() && v.iter().zip(nvec).all(|(&x, &n)| x >= 0 && (x as u64) < n)
            }
            (Space::Tuple { spaces }, Value::Tuple(v)) => {
                v.len() == spaces.len() && spaces.iter().zip(v).all(|(s, x)| s.contains(x))
            }
            _ => false,
        }
    }

    /// A uniformly random element, as `gymnasium.spaces.Space.sample`: bounded box dimensions
    /// are uniform, unbounded ones standard normal, half-bounded ones shifted exponential.
    pub fn sample(&self, rng: &mut ReinRng) -> Value {
        match self {
            Space::Discrete { n, start } => {
                Value::Discrete(*start + rng.random_range(0..*n) as i64)
            }
            Space::Box {
                dtype, low, high, ..
            } => {
                let draw = |rng: &mut ReinRng, l: f64, h: f64| -> f64 {
                    match (l.is_finite(), h.is_finite()) {
                        (true, true) => {
                            if l == h {
                                l
                            } else {
                                l + (h - l) * rng.random::<f64>()
                            }
                        }
                        (false, false) => StandardNormal.sample(rng),
                        (true, false) => {
                            l + {
                                let e: f64 = Exp1.sample(rng);
                                e
                            }
                        }
                        (false, true) => {
                            h - {
                                let e: f64 = Exp1.sample(rng);
                                e
                            }
                        }
                    }
                };
                match dtype {
                    Dtype::Float32 => Value::Box(
                        low.iter()
                            .zip(high)
                            .map(|(&l, &h)| {
                                // Round to f32 and keep it inside the (f32) bounds.
                                let x = draw(rng, l, h) as f32;
                                x.clamp(l as f32, h as f32)
                            })
                            .collect(),
                    ),
                    Dtype::Float64 => Value::BoxF64(
                        low.iter()
                            .zip(high)
                            .map(|(&l, &h)| draw(rng, l, h))
                            .collect(),
                    ),
                }
            }
            Space::MultiDiscrete { nvec } => Value::MultiDiscrete(
                nvec.iter()
                    .map(|&n| rng.random_range(0..n) as i64)
                    .collect(),
            ),
            Space::Tuple { spaces } => Value::Tuple(spaces.iter().map(|s| s.sample(rng)).collect()),
        }
    }

    /// Number of f32 values in the flat encoding ([`Space::flatten_into`]).
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Discrete { n, .. } => *n as usize,
            Space::Box { low, .. } => low.len(),
            Space::MultiDiscrete { nvec } => nvec.iter().map(|&n| n as usize).sum(),
            Space::Tuple { spaces } => spaces.iter().map(Space::flat_dim).sum(),
        }
    }

    /// Number of discrete elements (`Discrete`), the size of tabular methods' tables.
    pub fn n(&self) -> Option<usize> {
        match self {
            Space::Discrete { n, .. } => Some(*n as usize),
            _ => None,
        }
    }

    /// Writes the flat f32 encoding of `value` into `out` (length [`Space::flat_dim`]), as
    /// `gymnasium.spaces.flatten`: one-hot for discrete spaces, the numbers themselves for
    /// boxes, concatenation for tuples and multi-discrete spaces.
    pub fn flatten_into(&self, value: &Value, out: &mut [f32]) -> Result<(), EnvError> {
        let bad = || {
            EnvError::Invalid(format!(
                "cannot flatten {value} as an element of {self}: wrong type or size"
            ))
        };
        if out.len() != self.flat_dim() {
            return Err(bad());
        }
        match (self, value) {
            (Space::Discrete { n, start }, Value::Discrete(i)) => {
                let k = i - start;
                if k < 0 || k as u64 >= *n {
                    return Err(bad());
                }
                out.fill(0.0);
                out[k as usize] = 1.0;
            }
            (Space::Box { .. }, Value::Box(v)) if v.len() == out.len() => {
                out.copy_from_slice(v);
            }
            (Space::Box { .. }, Value::BoxF64(v)) if v.len() == out.len() => {
                for (o, &x) in out.iter_mut().zip(v) {
                    *o = x as f32;
                }
            }
            (Space::MultiDiscrete { nvec }, Value::MultiDiscrete(v)) if v.len() == nvec.len() => {
                out.fill(0.0);
                let mut off = 0;
                for (&x, &n) in v.iter().zip(nvec) {
                    if x < 0 || x as u64 >= n {
                        return Err(bad());
                    }
                    out[off + x as usize] = 1.0;
                    off += n as usize;
                }
            }
            (Space::Tuple { spaces }, Value::Tuple(v)) if v.len() == spaces.len() => {
                let mut off = 0;
                for (s, x) in spaces.iter().zip(v) {
                    let d = s.flat_dim();
                    s.flatten_into(x, &mut out[off..off + d])?;
                    off += d;
                }
            }
            _ => return Err(bad()),
        }
        Ok(())
    }

    /// The flat f32 encoding of `value` in a new vector.
    pub fn flatten(&self, value: &Value) -> Result<Vec<f32>, EnvError> {
        let mut out = vec![0.0; self.flat_dim()];
        self.flatten_into(value, &mut out)?;
        Ok(out)
    }

    /// Parses a JSON value as an element of this space type (bounds are not checked here:
    /// that is [`Space::contains`]' job, so envs that clip can receive out-of-bound actions).
    /// Accepts an integer for `Discrete`, an array of numbers (or a single number for
    /// one-element boxes) for `Box`, arrays for `MultiDiscrete` and `Tuple`.
    pub fn parse_json(&self, json: &serde_json::Value) -> Result<Value, EnvError> {
        use serde_json::Value as J;
        let err = |what: &str| {
            EnvError::Invalid(format!(
                "cannot read {json} as an element of {self}: expected {what}"
            ))
        };
        match self {
            Space::Discrete { .. } => json
                .as_i64()
                .map(Value::Discrete)
                .ok_or_else(|| err("an integer")),
            Space::Box { dtype, low, .. } => {
                let nums: Vec<f64> = match json {
                    J::Array(a) => a
                        .iter()
                        .map(json_number)
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| err(&format!("an array of {} numbers", low.len())))?,
                    J::Number(_) if low.len() == 1 => vec![json_number(json).unwrap_or(f64::NAN)],
                    _ => return Err(err(&format!("an array of {} numbers", low.len()))),
                };
                if nums.len() != low.len() {
                    return Err(err(&format!("an array of {} numbers", low.len())));
                }
                Ok(match dtype {
                    Dtype::Float32 => Value::Box(nums.iter().map(|&x| x as f32).collect()),
                    Dtype::Float64 => Value::BoxF64(nums),
                })
            }
            Space::MultiDiscrete { nvec } => {
                let a = json
                    .as_array()
                    .ok_or_else(|| err(&format!("an array of {} integers", nvec.len())))?;
                let v = a
                    .iter()
                    .map(|x| x.as_i64())
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| err(&format!("an array of {} integers", nvec.len())))?;
                if v.len() != nvec.len() {
                    return Err(err(&format!("an array of {} integers", nvec.len())));
                }
                Ok(Value::MultiDiscrete(v))
            }
            Space::Tuple { spaces } => {
                let a = json
                    .as_array()
                    .filter(|a| a.len() == spaces.len())
                    .ok_or_else(|| err(&format!("an array of {} elements", spaces.len())))?;
                Ok(Value::Tuple(
                    spaces
                        .iter()
                        .zip(a)
                        .map(|(s, x)| s.parse_json(x))
                        .collect::<Result<_, _>>()?,
                ))
            }
        }
    }
}

/// A JSON number, or one of the strings "inf", "-inf", "nan".
fn json_number(j: &serde_json::Value) -> Option<f64> {
    match j {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => match s.as_str() {
            "inf" | "Infinity" => Some(f64::INFINITY),
            "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
            "nan" | "NaN" => Some(f64::NAN),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::rng_from_seed;
    use proptest::prelude::*;

    #[test]
    fn discrete_flatten_is_one_hot() {
        let s = Space::Discrete { n: 4, start: 2 };
        assert_eq!(
            s.flatten(&Value::Discrete(3)).unwrap(),
            vec![0.0, 1.0, 0.0, 0.0]
        );
        assert!(s.flatten(&Value::Discrete(6)).is_err());
        assert!(!s.contains(&Value::Discrete(1)));
    }

    #[test]
    fn tuple_flatten_concatenates() {
        let s = Space::Tuple {
            spaces: vec![Space::discrete(3), Space::discrete(2)],
        };
        let v = Value::Tuple(vec![Value::Discrete(2), Value::Discrete(0)]);
        assert_eq!(s.flatten(&v).unwrap(), vec![0.0, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!(s.flat_dim(), 5);
    }

    #[test]
    fn json_text_keeps_float32_shortest_form() {
        let v = Value::Box([0.013_696_169_f32, 1.0, -4.8].into_iter().collect());
        assert_eq!(v.to_json_string(), "[0.013696169,1.0,-4.8]");
        let t = Value::Tuple(vec![Value::Discrete(11), Value::Discrete(0)]);
        assert_eq!(t.to_json_string(), "[11,0]");
        let parsed: Vec<f32> = serde_json::from_str(&v.to_json_string()).unwrap();
        assert_eq!(parsed, vec![0.013_696_169_f32, 1.0, -4.8]);
    }

    #[test]
    fn parse_rejects_wrong_shape() {
        let s = Space::box_f32(vec![-1.0, -1.0], vec![1.0, 1.0]);
        let e = s.parse_json(&serde_json::json!([1.0])).unwrap_err();
        assert!(e.to_string().contains("an array of 2 numbers"), "{e}");
        assert!(Space::discrete(2)
            .parse_json(&serde_json::json!("a"))
            .is_err());
    }

    #[test]
    fn validate_catches_bad_bounds() {
        assert!(Space::box_f32(vec![1.0], vec![0.0]).validate().is_err());
        assert!(Space::discrete(0).validate().is_err());
    }

    proptest! {
        #[test]
        fn samples_are_contained(seed in any::<u64>(), n in 1u64..50, lo in -10.0f64..0.0, w in 0.0f64..10.0) {
            let mut rng = rng_from_seed(seed);
            let spaces = [
                Space::Discrete { n, start: -3 },
                Space::box_f32(vec![lo, f64::NEG_INFINITY, lo], vec![lo + w, f64::INFINITY, f64::INFINITY]),
                Space::Box { shape: vec![2], dtype: Dtype::Float64, low: vec![lo, lo], high: vec![lo + w, lo + w] },
                Space::MultiDiscrete { nvec: vec![n, 3] },
                Space::Tuple { spaces: vec![Space::discrete(n), Space::discrete(2)] },
            ];
            for s in &spaces {
                for _ in 0..20 {
                    let v = s.sample(&mut rng);
                    prop_assert!(s.contains(&v), "{} not in {}", v, s);
                    prop_assert_eq!(s.flatten(&v).unwrap().len(), s.flat_dim());
                }
            }
        }
    }
}
