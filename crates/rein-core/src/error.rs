//! Errors of the environment API.

use thiserror::Error;

/// Everything that can go wrong when building, stepping or configuring an environment.
///
/// Every variant names the offending value and what was expected, so that a user who passed
/// a bad action, state or option learns what to fix without reading the source.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EnvError {
    /// An action that is not an element of the action space.
    #[error("invalid action {action}: expected an element of {space}")]
    InvalidAction {
        /// The action as the user gave it.
        action: String,
        /// The action space, as text.
        space: String,
    },
    /// `step` was called before the first `reset`.
    #[error("step called before reset: call reset() first")]
    ResetNeeded,
    /// An environment id that the registry does not know.
    #[error("unknown environment id {id:?}; registered ids: {known}")]
    UnknownId {
        /// The id that was asked for.
        id: String,
        /// Comma-separated list of known ids.
        known: String,
    },
    /// A constructor option (kwarg) that is unknown or has an invalid value.
    #[error("invalid option for {env}: {message}")]
    InvalidOption {
        /// The environment id.
        env: String,
        /// What was wrong and what is accepted.
        message: String,
    },
    /// A state given to `set_state` that the environment cannot take.
    #[error("invalid state for {env}: {message}")]
    InvalidState {
        /// The environment id.
        env: String,
        /// What was wrong and what is accepted.
        message: String,
    },
    /// A feature that this environment does not provide.
    #[error("{env} does not support {what}")]
    Unsupported {
        /// The environment id or type.
        env: String,
        /// The missing feature.
        what: String,
    },
    /// A value that does not fit a space (used by parsers and the env checker).
    #[error("{0}")]
    Invalid(String),
}
