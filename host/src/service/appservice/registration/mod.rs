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
mod origin;
mod overlap;
mod parse;
mod registry;

#[cfg(test)]
mod test_support;

pub use compiled::CompiledNamespaces;
pub(crate) use compiled::CompiledService;
pub(crate) use interest::Interest;
pub use namespaces::NamespaceKind;
pub(crate) use namespaces::{anchored, Namespace, Namespaces};
pub use origin::Origin;
pub use overlap::validate_set;
pub use parse::Registration;
pub(crate) use registry::Registry;

/// What went wrong with a registration, or with a set of them. The message always starts
/// with where the registration came from (its [`Origin`]) and names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The text is not YAML, or not a YAML mapping.
    #[error("{file}: not a valid YAML registration: {message}")]
    Syntax { file: Origin, message: String },
    #[error("{file}: missing field `{field}`")]
    Missing { file: Origin, field: String },
    /// The field is there but its type or value is wrong (a bad regex, an empty token, …).
    #[error("{file}: field `{field}`: {message}")]
    Invalid {
        file: Origin,
        field: String,
        message: String,
    },
    /// The registration is fine alone but clashes with another one in the same set: `other`,
    /// when the clash is with a registration (the message names it too).
    #[error("{file}: field `{field}`: {message}")]
    Conflict {
        file: Origin,
        field: String,
        message: String,
        other: Option<Origin>,
    },
}

impl RegistrationError {
    /// The registrations the error names: the one at fault, and the other of a clash.
    pub(crate) fn origins(&self) -> impl Iterator<Item = &Origin> {
        let (file, other) = match self {
            RegistrationError::Syntax { file, .. }
            | RegistrationError::Missing { file, .. }
            | RegistrationError::Invalid { file, .. } => (file, None),
            RegistrationError::Conflict { file, other, .. } => (file, other.as_ref()),
        };
        std::iter::once(file).chain(other)
    }

    /// The error names a registration added at runtime (stored in the database).
    pub(crate) fn names_runtime_registration(&self) -> bool {
        self.origins().any(|o| matches!(o, Origin::Runtime(_)))
    }
}
