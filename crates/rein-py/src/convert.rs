//! Conversions between rein's values and Python objects: observations out as numpy arrays and
//! Python ints, actions in with a `ValueError` naming the expected space, infos and settings
//! through JSON.

use numpy::{PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyTuple};
use rein_core::space::Dtype;
use rein_core::{Space, Value};

/// An observation or action as Gymnasium gives it: an `int` for `Discrete`, a numpy array of
/// the box's dtype and shape for `Box`, an int64 array for `MultiDiscrete`, a tuple for
/// `Tuple`.
pub fn value_to_py<'py>(py: Python<'py>, v: &Value, space: &Space) -> PyResult<Bound<'py, PyAny>> {
    Ok(match (v, space) {
        (Value::Discrete(i), _) => i.into_pyobject(py)?.into_any(),
        (Value::Box(x), Space::Box { shape, .. }) => PyArray1::from_slice(py, x)
            .reshape(shape.clone())?
            .into_any(),
        (Value::BoxF64(x), Space::Box { shape, .. }) => PyArray1::from_slice(py, x)
            .reshape(shape.clone())?
            .into_any(),
        (Value::MultiDiscrete(x), _) => PyArray1::from_slice(py, x).into_any(),
        (Value::Tuple(parts), Space::Tuple { spaces }) => {
            let items = parts
                .iter()
                .zip(spaces)
                .map(|(p, s)| value_to_py(py, p, s))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any()
        }
        (v, s) => {
            return Err(PyValueError::new_err(format!(
                "internal: the value {v:?} does not match the space {s}"
            )))
        }
    })
}

fn bad_action(obj: &Bound<'_, PyAny>, space: &Space, expected: &str) -> PyErr {
    let shown = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    PyValueError::new_err(format!(
        "the action {shown} is not in the action space {space}: expected {expected}"
    ))
}

/// A numpy array (or anything `numpy.asarray` takes) of real numbers with exactly `shape`,
/// as f64; `None` when the dtype is not real (bool, complex, strings, objects) or the shape
/// differs.
fn real_array(obj: &Bound<'_, PyAny>, shape: &[usize]) -> PyResult<Option<Vec<f64>>> {
    let np = obj.py().import("numpy")?;
    let arr = np.call_method1("asarray", (obj,))?;
    let untyped = arr.cast::<PyUntypedArray>()?;
    let kind = untyped.dtype().kind();
    if !matches!(kind, b'f' | b'i' | b'u') || untyped.shape() != shape {
        return Ok(None);
    }
    let flat = arr
        .call_method1("astype", (np.getattr("float64")?,))?
        .call_method0("ravel")?;
    Ok(Some(flat.extract::<Vec<f64>>()?))
}

/// An integer given as a Python `int` or a numpy integer (scalar or 0-d array); not a float
/// or a bool.
fn integer(obj: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<pyo3::types::PyBool>() {
        return Ok(None);
    }
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        if a.ndim() != 0 || !matches!(a.dtype().kind(), b'i' | b'u') {
            return Ok(None);
        }
        return Ok(obj.call_method0("item")?.extract::<i64>().ok());
    }
    let np = obj.py().import("numpy")?;
    if obj.is_instance(&np.getattr("bool_")?)? || obj.is_instance(&np.getattr("floating")?)? {
        return Ok(None);
    }
    Ok(obj.extract::<i64>().ok())
}

/// A Python action as an element of `space`, or a `ValueError` naming the space and what it
/// takes. Box actions may lie outside the bounds (the continuous envs clip them, as
/// Gymnasium's do); discrete ones must lie in the space.
pub fn py_to_value(obj: &Bound<'_, PyAny>, space: &Space) -> PyResult<Value> {
    match space {
        Space::Discrete { n, start } => {
            let i = integer(obj)?
                .ok_or_else(|| bad_action(obj, space, "an integer (int or numpy integer)"))?;
            if i < *start || i >= *start + *n as i64 {
                return Err(bad_action(
                    obj,
                    space,
                    &format!("an integer in {start}..{}", *start + *n as i64),
                ));
            }
            Ok(Value::Discrete(i))
        }
        Space::Box { shape, dtype, .. } => {
            let x = real_array(obj, shape)?.ok_or_else(|| {
                bad_action(
                    obj,
                    space,
                    &format!("an array of real numbers with shape {shape:?}"),
                )
            })?;
            Ok(match dtype {
                Dtype::Float32 => Value::Box(x.iter().map(|&v| v as f32).collect()),
                Dtype::Float64 => Value::BoxF64(x),
            })
        }
        Space::MultiDiscrete { nvec } => {
            let x = real_array(obj, &[nvec.len()])?
                .filter(|x| x.iter().all(|v| v.fract() == 0.0))
                .ok_or_else(|| bad_action(obj, space, &format!("{} integers", nvec.len())))?;
            let v = Value::MultiDiscrete(x.iter().map(|&v| v as i64).collect());
            if !space.contains(&v) {
                return Err(bad_action(obj, space, "each component below its nvec"));
            }
            Ok(v)
        }
        Space::Tuple { spaces } => {
            let t = obj
                .cast::<PyTuple>()
                .map_err(|_| bad_action(obj, space, "a tuple"))?;
            if t.len() != spaces.len() {
                return Err(bad_action(
                    obj,
                    space,
                    &format!("a tuple of {} elements", spaces.len()),
                ));
            }
            let parts = t
                .iter()
                .zip(spaces)
                .map(|(o, s)| py_to_value(&o, s))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(Value::Tuple(parts))
        }
    }
}

/// A JSON value as Python: objects as dicts, arrays of numbers as numpy arrays (int64 when
/// every element is an integer, float64 otherwise: what Gymnasium's infos hold), other arrays
/// as lists.
pub fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => py.None().into_bound(py),
        J::Bool(b) => pyo3::types::PyBool::new(py, *b).to_owned().into_any(),
        J::Number(n) => match n.as_i64() {
            Some(i) => i.into_pyobject(py)?.into_any(),
            None => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        J::String(s) => s.into_pyobject(py)?.into_any(),
        J::Array(a) if !a.is_empty() && a.iter().all(|x| x.is_i64()) => {
            let ints: Vec<i64> = a.iter().filter_map(|x| x.as_i64()).collect();
            PyArray1::from_slice(py, &ints).into_any()
        }
        J::Array(a) if !a.is_empty() && a.iter().all(|x| x.is_number()) => {
            let fs: Vec<f64> = a.iter().filter_map(|x| x.as_f64()).collect();
            PyArray1::from_slice(py, &fs).into_any()
        }
        J::Array(a) => {
            let items = a
                .iter()
                .map(|x| json_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        J::Object(o) => dict_from_json(py, o)?.into_any(),
    })
}

/// A JSON object (an env's info) as a Python dict.
pub fn dict_from_json<'py>(
    py: Python<'py>,
    o: &serde_json::Map<String, serde_json::Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, x) in o {
        d.set_item(k, json_to_py(py, x)?)?;
    }
    Ok(d)
}

/// A Python object (settings, env options, states) as JSON, through the `json` module
/// (numpy scalars and arrays are turned into Python numbers and lists first).
pub fn py_to_json(obj: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let py = obj.py();
    let json = py.import("json")?;
    let default = py
        .import("rein._json")
        .and_then(|m| m.getattr("default"))
        .ok();
    let kwargs = PyDict::new(py);
    if let Some(d) = default {
        kwargs.set_item("default", d)?;
    }
    let text: String = json
        .call_method("dumps", (obj,), Some(&kwargs))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| PyValueError::new_err(format!("not JSON: {e}")))
}

/// Gymnasium-style make kwargs (a dict, or None for none) as rein's env options.
pub fn options_from_py(
    obj: &Bound<'_, PyAny>,
) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    match py_to_json(obj)? {
        serde_json::Value::Object(o) => Ok(o),
        serde_json::Value::Null => Ok(Default::default()),
        other => Err(PyValueError::new_err(format!(
            "options must be a dict, got {other}"
        ))),
    }
}

/// A failure that is not the caller's input (an I/O error, a run error) as `RuntimeError`.
pub fn runtime(e: impl std::fmt::Display) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(e.to_string())
}
