//! The namespaces of a registration as written: for each kind (users, aliases, rooms) a list of
//! `{regex, exclusive}` entries, each regex compiled the way Synapse applies it.

use regex::Regex;

/// The three kinds of namespace a registration declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NamespaceKind {
    Users,
    Aliases,
    Rooms,
}

impl NamespaceKind {
    pub const ALL: [NamespaceKind; 3] = [
        NamespaceKind::Users,
        NamespaceKind::Aliases,
        NamespaceKind::Rooms,
    ];

    /// The key under `namespaces` in the registration file.
    pub(crate) fn key(self) -> &'static str {
        match self {
            NamespaceKind::Users => "users",
            NamespaceKind::Aliases => "aliases",
            NamespaceKind::Rooms => "rooms",
        }
    }
}

/// One `{regex, exclusive}` entry of a namespace list.
#[derive(Clone, Debug)]
pub struct Namespace {
    /// The regex as written in the file.
    pub(crate) regex: String,
    pub(crate) exclusive: bool,
    pub(super) matcher: Regex,
}

impl Namespace {
    /// Compiles `regex` the way Synapse applies it: Synapse calls Python's `re.match`, which
    /// anchors at the start of the identifier but not at its end, so `@irc_` matches
    /// `@irc_alice:example.org`. We keep exactly that (wrapping the text as `^(?:…)`) rather
    /// than anchoring both ends, so that registrations written for Synapse mean the same here;
    /// a registration that wants the whole identifier ends its regex with `$` as it would for
    /// Synapse. Matching is case-sensitive unless the regex itself says `(?i)`.
    pub(crate) fn new(regex: &str, exclusive: bool) -> Result<Namespace, regex::Error> {
        // The text alone must be a regex first: otherwise an unbalanced `a)|(b` would turn
        // `^(?:a)|(?:b)` into an unanchored alternative.
        Regex::new(regex)?;
        let matcher = Regex::new(&anchored(regex))?;
        Ok(Namespace {
            regex: regex.to_owned(),
            exclusive,
            matcher,
        })
    }

    /// The pattern actually matched, `^(?:regex)`: what [`regex::RegexSet`]s are built from.
    pub fn anchored_pattern(&self) -> &str {
        self.matcher.as_str()
    }

    pub fn is_match(&self, identifier: &str) -> bool {
        self.matcher.is_match(identifier)
    }
}

/// Two namespaces are the same when they are written the same (the compiled matcher follows).
impl PartialEq for Namespace {
    fn eq(&self, other: &Namespace) -> bool {
        self.regex == other.regex && self.exclusive == other.exclusive
    }
}

/// `regex` anchored at the start of the identifier (see [`Namespace::new`]).
pub(crate) fn anchored(regex: &str) -> String {
    format!("^(?:{regex})")
}

/// The `namespaces` of a registration; a kind that is absent from the file is empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Namespaces {
    pub(crate) users: Vec<Namespace>,
    pub(crate) aliases: Vec<Namespace>,
    pub(crate) rooms: Vec<Namespace>,
}

impl Namespaces {
    pub fn get(&self, kind: NamespaceKind) -> &[Namespace] {
        match kind {
            NamespaceKind::Users => &self.users,
            NamespaceKind::Aliases => &self.aliases,
            NamespaceKind::Rooms => &self.rooms,
        }
    }
}
