//! Application service registrations as data. The raw registration, as an admin wrote it
//! ([`parse`]: Synapse-format YAML, and its [`namespaces`] of regexes), and the checks a set of
//! them must pass together, among them the proof that exclusive namespaces of two services do
//! not overlap ([`overlap`]); then the registration compiled for matching ([`compiled`]), the
//! registry of every compiled service ([`registry`]), and which service wants which room and
//! event ([`interest`]).
//!
//! One word tells the raw from the compiled: [`Registration`] and [`Namespaces`] are as
//! written; [`CompiledService`] and [`CompiledNamespaces`] have their regexes built.
//!
//! Every error names the registration it came from and the field at fault, so that an admin
//! with a directory of registrations knows which line to fix.

mod compiled;
mod interest;
mod namespaces;
mod overlap;
mod parse;
mod registry;

#[cfg(test)]
mod test_support;

pub use compiled::{CompiledNamespaces, CompiledService};
pub use interest::Interest;
pub use namespaces::{anchored, Namespace, NamespaceKind, Namespaces};
pub use overlap::{validate_set, PRODUCT_STATE_LIMIT};
pub use parse::Registration;
pub use registry::Registry;

/// What went wrong with a registration file, or with a set of them. The message always starts
/// with the file (as given to [`Registration::from_yaml`]) and names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The text is not YAML, or not a YAML mapping.
    #[error("{file}: not a valid YAML registration: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: missing field `{field}`")]
    Missing { file: String, field: String },
    /// The field is there but its type or value is wrong (a bad regex, an empty token, …).
    #[error("{file}: field `{field}`: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
    /// The registration is fine alone but clashes with another one in the same set.
    #[error("{file}: field `{field}`: {message}")]
    Conflict {
        file: String,
        field: String,
        message: String,
    },
}
