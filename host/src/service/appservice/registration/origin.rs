//! Where a registration comes from. Errors name it (as the admin knows it: a file's path, the
//! request, the plugin), and the server tells by it which registrations it may change and
//! which refuse to start.

use std::fmt;
use std::path::PathBuf;

/// Where a registration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file: one listed in `appservice_config_files`, read at every start (the server does
    /// not change or remove these at runtime: the file would undo the change at the next
    /// start), or one given to the command line.
    File(PathBuf),
    /// The body of a request to the admin API, until the service is stored.
    AdminRequest,
    /// The body of the talk's `POST /_matrix/appservice/v1/register`, until it is stored.
    RegisterRequest,
    /// Added while the server ran, stored in the database and loaded again at every start:
    /// the service's id.
    Runtime(String),
    /// A WASM plugin's manifest, which the plugin runtime adds, changes and removes: the
    /// plugin's id.
    Plugin(String),
    /// A plugin manifest that did not read, named as the plugin runtime names it.
    Manifest(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::AdminRequest => f.write_str("registration"),
            Origin::RegisterRequest => f.write_str("register request"),
            Origin::Runtime(id) => write!(f, "runtime registration `{id}`"),
            Origin::Plugin(id) => write!(f, "plugin `{id}`"),
            Origin::Manifest(name) => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_origin_is_named_as_the_admin_knows_it() {
        let named = [
            (Origin::File("/etc/irc.yaml".into()), "/etc/irc.yaml"),
            (Origin::AdminRequest, "registration"),
            (Origin::RegisterRequest, "register request"),
            (Origin::Runtime("irc".into()), "runtime registration `irc`"),
            (Origin::Plugin("echo".into()), "plugin `echo`"),
            (Origin::Manifest("plugin.toml".into()), "plugin.toml"),
        ];
        for (origin, name) in named {
            assert_eq!(origin.to_string(), name);
        }
    }
}
