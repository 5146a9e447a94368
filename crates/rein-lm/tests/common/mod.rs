//! Helpers shared by the integration tests of `rein-lm` (`mod common;` in each test file).

/// Largest absolute difference of two tensors of one shape.
pub fn tensor_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
