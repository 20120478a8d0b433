//! An application service's registration, read from the YAML file Synapse and the spec use,
//! and the checks a set of registrations must pass before the server accepts them together.
//!
//! Every error names the file it came from and the field at fault, so that an admin with a
//! directory of registrations knows which line to fix.

use std::collections::{HashSet, VecDeque};
use std::fmt;

use regex::Regex;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use serde_yaml::{Mapping, Value};

use crate::service::identifiers::MAX_LOCALPART_BYTES;

/// The unstable MSC2409 key that older bridges use for `receive_ephemeral`.
const UNSTABLE_PUSH_EPHEMERAL: &str = "de.sorunome.msc2409.push_ephemeral";

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
    pub fn key(self) -> &'static str {
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
    pub regex: String,
    pub exclusive: bool,
    matcher: Regex,
}

impl Namespace {
    /// Compiles `regex` the way Synapse applies it: Synapse calls Python's `re.match`, which
    /// anchors at the start of the identifier but not at its end, so `@irc_` matches
    /// `@irc_alice:example.org`. We keep exactly that (wrapping the text as `^(?:…)`) rather
    /// than anchoring both ends, so that registrations written for Synapse mean the same here;
    /// a registration that wants the whole identifier ends its regex with `$` as it would for
    /// Synapse. Matching is case-sensitive unless the regex itself says `(?i)`.
    pub fn new(regex: &str, exclusive: bool) -> Result<Namespace, regex::Error> {
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
pub fn anchored(regex: &str) -> String {
    format!("^(?:{regex})")
}

/// The `namespaces` of a registration; a kind that is absent from the file is empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Namespaces {
    pub users: Vec<Namespace>,
    pub aliases: Vec<Namespace>,
    pub rooms: Vec<Namespace>,
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

/// One application service's registration.
#[derive(Clone)]
pub struct Registration {
    /// Where it was read from (a file path), for error messages.
    pub source: String,
    pub id: String,
    /// Where transactions are pushed; `None` (`url: null` or no `url`) means no pushes.
    pub url: Option<String>,
    /// What the service authenticates with to us.
    pub as_token: String,
    /// What we authenticate with to the service.
    pub hs_token: String,
    pub sender_localpart: String,
    pub namespaces: Namespaces,
    pub rate_limited: bool,
    pub protocols: Vec<String>,
    pub receive_ephemeral: bool,
    /// Plugboard's own key `legacy_query_token`: also send the hs_token as `?access_token=`
    /// on pushes, for services written against the pre-r0 spec (the 2015 talk's receiver).
    pub legacy_query_token: bool,
    /// Whether the service is sent the events its own users sent (its sender and the users
    /// of its exclusive users namespaces). Always so for a registration file, as the spec
    /// has it; a plugin's manifest may turn it off, so that a bot's answers do not come back
    /// to it as transactions.
    pub receive_own_events: bool,
}

/// Tokens are secrets: they never appear in logs through `{:?}`.
impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("source", &self.source)
            .field("id", &self.id)
            .field("url", &self.url)
            .field("as_token", &"<redacted>")
            .field("hs_token", &"<redacted>")
            .field("sender_localpart", &self.sender_localpart)
            .field("namespaces", &self.namespaces)
            .field("rate_limited", &self.rate_limited)
            .field("protocols", &self.protocols)
            .field("receive_ephemeral", &self.receive_ephemeral)
            .finish()
    }
}

impl Registration {
    /// Parses a Synapse-format registration. `source` names the text (its file path) in
    /// errors. Keys we do not know are ignored, as Synapse does; keys we know must have the
    /// right type.
    pub fn from_yaml(text: &str, source: &str) -> Result<Registration, RegistrationError> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| RegistrationError::Syntax {
            file: source.to_owned(),
            message: e.to_string(),
        })?;
        let Value::Mapping(top) = doc else {
            return Err(RegistrationError::Syntax {
                file: source.to_owned(),
                message: "the document is not a mapping of keys to values".to_owned(),
            });
        };
        let p = Fields { file: source };

        let id = p.token(&top, "id")?;
        let url = p.url(&top)?;
        let as_token = p.token(&top, "as_token")?;
        let hs_token = p.token(&top, "hs_token")?;
        let sender_localpart = p.token(&top, "sender_localpart")?;
        // Synapse's rule: the localpart must need no URL encoding.
        if !sender_localpart
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
        {
            return Err(p.invalid(
                "sender_localpart",
                "may only contain letters, digits and `-._~/`",
            ));
        }
        // Found by the registration fuzz target: a longer one makes a sender whose user id
        // is over the spec's 255 bytes.
        if sender_localpart.len() > MAX_LOCALPART_BYTES {
            return Err(p.invalid(
                "sender_localpart",
                format!("may be at most {MAX_LOCALPART_BYTES} bytes long"),
            ));
        }
        let namespaces = p.namespaces(&top)?;
        let rate_limited = p
            .bool(top.get("rate_limited"), "rate_limited")?
            .unwrap_or(true);
        let protocols = p.protocols(&top)?;
        let stable = p.bool(top.get("receive_ephemeral"), "receive_ephemeral")?;
        let unstable = p.bool(top.get(UNSTABLE_PUSH_EPHEMERAL), UNSTABLE_PUSH_EPHEMERAL)?;
        let receive_ephemeral = stable.unwrap_or(false) || unstable.unwrap_or(false);
        let legacy_query_token = p
            .bool(top.get("legacy_query_token"), "legacy_query_token")?
            .unwrap_or(false);

        Ok(Registration {
            source: source.to_owned(),
            id,
            url,
            as_token,
            hs_token,
            sender_localpart,
            namespaces,
            rate_limited,
            protocols,
            receive_ephemeral,
            legacy_query_token,
            receive_own_events: true,
        })
    }

    /// The service's own user, `@{sender_localpart}:{server_name}`.
    pub fn sender(&self, server_name: &str) -> String {
        format!("@{}:{}", self.sender_localpart, server_name)
    }
}

/// Reads typed fields out of the YAML, naming `file` and the field in every error.
struct Fields<'a> {
    file: &'a str,
}

impl Fields<'_> {
    fn missing(&self, field: &str) -> RegistrationError {
        RegistrationError::Missing {
            file: self.file.to_owned(),
            field: field.to_owned(),
        }
    }

    fn invalid(&self, field: &str, message: impl Into<String>) -> RegistrationError {
        RegistrationError::Invalid {
            file: self.file.to_owned(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// A required, non-empty string; `null` counts as missing.
    fn token(&self, map: &Mapping, field: &str) -> Result<String, RegistrationError> {
        match map.get(field) {
            None | Some(Value::Null) => Err(self.missing(field)),
            Some(Value::String(s)) if s.is_empty() => Err(self.invalid(field, "must not be empty")),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => {
                Err(self.invalid(field, format!("must be a string, not {}", kind(other))))
            }
        }
    }

    fn url(&self, map: &Mapping) -> Result<Option<String>, RegistrationError> {
        match map.get("url") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let rest = s
                    .strip_prefix("https://")
                    .or_else(|| s.strip_prefix("http://"));
                match rest {
                    Some(host) if !host.is_empty() => Ok(Some(s.clone())),
                    _ => Err(self.invalid(
                        "url",
                        "must be an http:// or https:// URL, or null for no pushes",
                    )),
                }
            }
            Some(other) => Err(self.invalid(
                "url",
                format!("must be a string or null, not {}", kind(other)),
            )),
        }
    }

    /// An optional boolean; `None` when absent or null.
    fn bool(&self, value: Option<&Value>, field: &str) -> Result<Option<bool>, RegistrationError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => {
                Err(self.invalid(field, format!("must be true or false, not {}", kind(other))))
            }
        }
    }

    fn protocols(&self, map: &Mapping) -> Result<Vec<String>, RegistrationError> {
        let items = match map.get("protocols") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Sequence(items)) => items,
            Some(other) => {
                return Err(self.invalid(
                    "protocols",
                    format!("must be a list of strings, not {}", kind(other)),
                ))
            }
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.invalid(
                    &format!("protocols[{i}]"),
                    format!("must be a string, not {}", kind(other)),
                )),
            })
            .collect()
    }

    fn namespaces(&self, map: &Mapping) -> Result<Namespaces, RegistrationError> {
        let lists = match map.get("namespaces") {
            None | Some(Value::Null) => return Ok(Namespaces::default()),
            Some(Value::Mapping(lists)) => lists,
            Some(other) => {
                return Err(self.invalid(
                    "namespaces",
                    format!(
                        "must be a mapping of users / aliases / rooms, not {}",
                        kind(other)
                    ),
                ))
            }
        };
        Ok(Namespaces {
            users: self.namespace_list(lists, NamespaceKind::Users)?,
            aliases: self.namespace_list(lists, NamespaceKind::Aliases)?,
            rooms: self.namespace_list(lists, NamespaceKind::Rooms)?,
        })
    }

    fn namespace_list(
        &self,
        lists: &Mapping,
        ns_kind: NamespaceKind,
    ) -> Result<Vec<Namespace>, RegistrationError> {
        let field = format!("namespaces.{}", ns_kind.key());
        let entries = match lists.get(ns_kind.key()) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Sequence(entries)) => entries,
            Some(other) => {
                return Err(self.invalid(
                    &field,
                    format!(
                        "must be a list of {{regex, exclusive}} entries, not {}",
                        kind(other)
                    ),
                ))
            }
        };
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let Value::Mapping(entry) = entry else {
                return Err(self.invalid(
                    &at,
                    format!(
                        "must be a {{regex, exclusive}} mapping, not {}",
                        kind(entry)
                    ),
                ));
            };
            let regex_field = format!("{at}.regex");
            let regex = match entry.get("regex") {
                None | Some(Value::Null) => return Err(self.missing(&regex_field)),
                Some(Value::String(s)) => s,
                Some(other) => {
                    return Err(self.invalid(
                        &regex_field,
                        format!("must be a string, not {}", kind(other)),
                    ))
                }
            };
            let exclusive = self
                .bool(entry.get("exclusive"), &format!("{at}.exclusive"))?
                .unwrap_or(false);
            let namespace = Namespace::new(regex, exclusive)
                .map_err(|e| self.invalid(&regex_field, format!("invalid regex: {e}")))?;
            out.push(namespace);
        }
        Ok(out)
    }
}

/// How a YAML value's type reads in an error message.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Checks that registrations can be loaded together. Refused, with the error on the later of
/// the two registrations in `regs` and naming the earlier one:
///
/// - two services with the same `id`;
/// - two services with the same `as_token` (a request could not tell them apart), or the same
///   `hs_token` (one could pose as this server to the other);
/// - one service's `as_token` equal to another's `hs_token` (the second, which receives that
///   token with every push, could act as the first);
/// - an exclusive namespace that overlaps an exclusive namespace of another service, of the
///   same kind (users, aliases or rooms). A service's sender counts as an exclusive user
///   namespace of its own (`@{sender_localpart}:` followed by any server name), so an
///   exclusive users regex that could match another service's sender is refused too, and so
///   are two services with the same `sender_localpart`. A service's own namespaces may
///   overlap each other.
///
/// # What the overlap check catches
///
/// Two namespaces overlap when some identifier is matched by both, with the matching rule of
/// [`Namespace::new`] (anchored at the start only). Each regex `r` is compiled to a DFA for
/// `r` followed by anything, and the two DFAs are explored together, breadth first, from
/// their start states; they overlap exactly when a pair of states that both accept at the end
/// of input is reachable. That check is exact (no false alarms, no misses) whenever both DFAs
/// can be built and the explored product stays under [`PRODUCT_STATE_LIMIT`] pairs, which
/// covers the namespaces bridges write (`@irc_.*:example\.org`, `#_discord_[0-9]+:…`); the
/// error shows the shortest identifier that both match. Because matching is anchored at the
/// start only, `@irc_.*:a\.org` and `@irc_.*:b\.org` do overlap (both match
/// `@irc_:a.org:b.org`); regexes meant for one server end with `$`.
///
/// What it does not catch for sure: a regex the DFA builder refuses (Unicode word boundaries
/// `\b` / `\B`) or that grows too large (long counted repetitions of Unicode classes). For
/// those it falls back to a heuristic that finds overlaps only by example: the two texts are
/// equal once a leading `^` and trailing `$` / `.*` are ignored, or both regexes match a
/// witness made of either regex's literal prefix followed by a few sample suffixes. An overlap
/// that none of those witnesses shows is then accepted.
pub fn validate_set(regs: &[Registration]) -> Result<(), RegistrationError> {
    for (j, later) in regs.iter().enumerate() {
        for earlier in &regs[..j] {
            let other = || format!("appservice `{}` ({})", earlier.id, earlier.source);
            let conflict = |field: &str, message: String| RegistrationError::Conflict {
                file: later.source.clone(),
                field: field.to_owned(),
                message,
            };
            if later.id == earlier.id {
                return Err(conflict(
                    "id",
                    format!("`{}` is already the id of {}", later.id, other()),
                ));
            }
            if later.as_token == earlier.as_token {
                return Err(conflict(
                    "as_token",
                    format!("the same as_token is already used by {}", other()),
                ));
            }
            if later.hs_token == earlier.hs_token {
                return Err(conflict(
                    "hs_token",
                    format!("the same hs_token is already used by {}", other()),
                ));
            }
            if later.as_token == earlier.hs_token {
                return Err(conflict(
                    "as_token",
                    format!("equals the hs_token of {}", other()),
                ));
            }
            if later.hs_token == earlier.as_token {
                return Err(conflict(
                    "hs_token",
                    format!("equals the as_token of {}", other()),
                ));
            }
        }
    }

    for ns_kind in NamespaceKind::ALL {
        let claims = claims(regs, ns_kind);
        for (j, later) in claims.iter().enumerate() {
            for earlier in &claims[..j] {
                if earlier.owner == later.owner {
                    continue;
                }
                if let Some(shown) = overlap(earlier, later) {
                    let (a, b) = (&regs[earlier.owner], &regs[later.owner]);
                    return Err(RegistrationError::Conflict {
                        file: b.source.clone(),
                        field: later.field.clone(),
                        message: format!(
                            "{} overlaps {} of appservice `{}` ({}, field `{}`): {shown}",
                            later.describe(),
                            earlier.describe(),
                            a.id,
                            a.source,
                            earlier.field
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// How many pairs of DFA states the overlap search visits before it gives up and falls back
/// to the witness heuristic.
pub const PRODUCT_STATE_LIMIT: usize = 50_000;

/// The most memory one namespace's DFA may take.
const DFA_SIZE_LIMIT: usize = 8 << 20;

/// Sample endings added to a regex's literal prefix by the fallback heuristic.
const SAMPLE_SUFFIXES: [&str; 12] = [
    "",
    "a",
    "z",
    "0",
    "9",
    "_",
    "-",
    ".",
    ":localhost",
    "a:localhost",
    "a:example.org",
    "0:example.org",
];

/// One exclusive claim on identifiers of a kind: an exclusive namespace, or (for users) a
/// service's sender.
struct Claim {
    /// Index of the registration in the set.
    owner: usize,
    field: String,
    /// The regex text as written (for the sender, the one we make up).
    regex: String,
    /// For a service's sender: its localpart.
    sender_localpart: Option<String>,
    matcher: Regex,
    dfa: Option<dense::DFA<Vec<u32>>>,
}

impl Claim {
    fn describe(&self) -> String {
        match &self.sender_localpart {
            Some(localpart) => format!("the sender `@{localpart}:…`"),
            None => format!("exclusive namespace `{}`", self.regex),
        }
    }
}

fn claims(regs: &[Registration], ns_kind: NamespaceKind) -> Vec<Claim> {
    let mut out = Vec::new();
    for (owner, reg) in regs.iter().enumerate() {
        if ns_kind == NamespaceKind::Users {
            let regex = format!("@{}:", regex::escape(&reg.sender_localpart));
            if let Ok(matcher) = Regex::new(&anchored(&regex)) {
                out.push(Claim {
                    owner,
                    field: "sender_localpart".to_owned(),
                    dfa: prefix_dfa(&regex),
                    regex,
                    sender_localpart: Some(reg.sender_localpart.clone()),
                    matcher,
                });
            }
        }
        for (i, ns) in reg.namespaces.get(ns_kind).iter().enumerate() {
            if !ns.exclusive {
                continue;
            }
            out.push(Claim {
                owner,
                field: format!("namespaces.{}[{i}].regex", ns_kind.key()),
                regex: ns.regex.clone(),
                sender_localpart: None,
                matcher: ns.matcher.clone(),
                dfa: prefix_dfa(&ns.regex),
            });
        }
    }
    out
}

/// `None` when the two claims are disjoint (or no overlap was found, see [`validate_set`]);
/// otherwise how the overlap shows, for the error message.
fn overlap(a: &Claim, b: &Claim) -> Option<String> {
    if let (Some(da), Some(db)) = (&a.dfa, &b.dfa) {
        match dfa_witness(da, db) {
            Search::Disjoint => return None,
            Search::Overlap(witness) => return Some(format!("both match `{witness}`")),
            Search::TooLarge => {}
        }
    }
    if normalise(&a.regex) == normalise(&b.regex) {
        return Some("they are the same regex".to_owned());
    }
    for from in [a, b] {
        let prefix = literal_prefix(&from.regex);
        for suffix in SAMPLE_SUFFIXES {
            let witness = format!("{prefix}{suffix}");
            if a.matcher.is_match(&witness) && b.matcher.is_match(&witness) {
                return Some(format!("both match `{witness}`"));
            }
        }
    }
    None
}

/// A DFA accepting exactly the identifiers that `regex` matches under our rule: the whole
/// input is `regex` followed by anything. `None` when the DFA cannot be built.
fn prefix_dfa(regex: &str) -> Option<dense::DFA<Vec<u32>>> {
    dense::Builder::new()
        .configure(
            dense::DFA::config()
                .match_kind(MatchKind::All)
                .start_kind(StartKind::Anchored)
                .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
        )
        .build(&format!("(?:{regex})(?s:.*)"))
        .ok()
}

enum Search {
    Disjoint,
    /// The shortest input both accept.
    Overlap(String),
    TooLarge,
}

/// Breadth-first search of the product of two DFAs for an input both accept.
fn dfa_witness(a: &dense::DFA<Vec<u32>>, b: &dense::DFA<Vec<u32>>) -> Search {
    let config = start::Config::new().anchored(Anchored::Yes);
    let (Ok(start_a), Ok(start_b)) = (a.start_state(&config), b.start_state(&config)) else {
        return Search::TooLarge;
    };
    // Each visited pair with the pair it was reached from and the byte that led here.
    let mut visited: Vec<(StateID, StateID, usize, u8)> = vec![(start_a, start_b, 0, 0)];
    let mut seen: HashSet<(StateID, StateID)> = HashSet::from([(start_a, start_b)]);
    let mut queue = VecDeque::from([0usize]);
    while let Some(at) = queue.pop_front() {
        let (sa, sb, _, _) = visited[at];
        if a.is_match_state(a.next_eoi_state(sa)) && b.is_match_state(b.next_eoi_state(sb)) {
            return Search::Overlap(path_to(&visited, at));
        }
        for byte in 0..=u8::MAX {
            let (na, nb) = (a.next_state(sa, byte), b.next_state(sb, byte));
            if a.is_dead_state(na)
                || b.is_dead_state(nb)
                || a.is_quit_state(na)
                || b.is_quit_state(nb)
            {
                continue;
            }
            if seen.insert((na, nb)) {
                if visited.len() >= PRODUCT_STATE_LIMIT {
                    return Search::TooLarge;
                }
                visited.push((na, nb, at, byte));
                queue.push_back(visited.len() - 1);
            }
        }
    }
    Search::Disjoint
}

/// The input that led from the start pair (index 0) to `at`.
fn path_to(visited: &[(StateID, StateID, usize, u8)], mut at: usize) -> String {
    let mut bytes = Vec::new();
    while at != 0 {
        let (_, _, parent, byte) = visited[at];
        bytes.push(byte);
        at = parent;
    }
    bytes.reverse();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The regex text without what does not change which identifiers it claims: a leading `^`,
/// a trailing unescaped `$` or `.*`.
fn normalise(regex: &str) -> &str {
    let mut text = regex.strip_prefix('^').unwrap_or(regex);
    loop {
        let trimmed = if text.ends_with(".*") && !text.ends_with("\\.*") {
            &text[..text.len() - 2]
        } else if text.ends_with('$') && !text.ends_with("\\$") {
            &text[..text.len() - 1]
        } else {
            return text;
        };
        text = trimmed;
    }
}

/// The literal text a regex starts with (`@irc_` for `@irc_.*:x\.org`), unescaping `\.` and
/// the like; it stops at the first metacharacter, and drops a character made optional by a
/// following `?`, `*` or `{`.
fn literal_prefix(regex: &str) -> String {
    let mut out = String::new();
    let mut chars = regex.strip_prefix('^').unwrap_or(regex).chars().peekable();
    while let Some(c) = chars.next() {
        let literal = match c {
            '\\' => match chars.next() {
                Some(escaped) if !escaped.is_ascii_alphanumeric() => escaped,
                _ => break,
            },
            '.' | '[' | ']' | '(' | ')' | '{' | '}' | '*' | '+' | '?' | '|' | '^' | '$' => break,
            c => c,
        };
        if matches!(chars.peek(), Some('?' | '*' | '{')) {
            break;
        }
        out.push(literal);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
id: irc
url: "http://127.0.0.1:9999"
as_token: as-secret
hs_token: hs-secret
sender_localpart: _irc_bot
rate_limited: false
protocols: ["irc", "gitter"]
receive_ephemeral: true
namespaces:
  users:
    - exclusive: true
      regex: '@irc_.*:example\.org'
    - regex: '@freenode_.*'
  aliases:
    - exclusive: true
      regex: '#irc_.*'
  rooms:
    - exclusive: false
      regex: '!ops:example\.org'
some_key_we_do_not_know: 42
"#;

    fn minimal(id: &str, extra: &str) -> String {
        format!(
            "id: {id}\nurl: null\nas_token: as-{id}\nhs_token: hs-{id}\nsender_localpart: {id}_bot\n{extra}"
        )
    }

    fn parse(text: &str) -> Registration {
        Registration::from_yaml(text, "appservice.yaml").unwrap()
    }

    fn error(text: &str) -> String {
        Registration::from_yaml(text, "appservice.yaml")
            .unwrap_err()
            .to_string()
    }

    fn service(id: &str, users: &[(&str, bool)]) -> Registration {
        let mut reg = parse(&minimal(id, ""));
        reg.source = format!("{id}.yaml");
        reg.namespaces.users = users
            .iter()
            .map(|(regex, exclusive)| Namespace::new(regex, *exclusive).unwrap())
            .collect();
        reg
    }

    fn set_error(regs: &[Registration]) -> String {
        validate_set(regs).unwrap_err().to_string()
    }

    #[test]
    fn refuses_a_sender_localpart_that_makes_a_user_id_over_255_bytes() {
        let long = "b".repeat(MAX_LOCALPART_BYTES + 1);
        let text = minimal("x", "").replace(
            "sender_localpart: x_bot",
            &format!("sender_localpart: {long}"),
        );
        assert!(
            error(&text).contains("sender_localpart"),
            "{}",
            error(&text)
        );
        let fits = "b".repeat(MAX_LOCALPART_BYTES);
        let text = minimal("x", "").replace(
            "sender_localpart: x_bot",
            &format!("sender_localpart: {fits}"),
        );
        assert_eq!(parse(&text).sender_localpart, fits);
    }

    #[test]
    fn parses_every_field_of_a_synapse_registration() {
        let reg = parse(FULL);
        assert_eq!(reg.source, "appservice.yaml");
        assert_eq!(reg.id, "irc");
        assert_eq!(reg.url.as_deref(), Some("http://127.0.0.1:9999"));
        assert_eq!(reg.as_token, "as-secret");
        assert_eq!(reg.hs_token, "hs-secret");
        assert_eq!(reg.sender_localpart, "_irc_bot");
        assert!(!reg.rate_limited);
        assert_eq!(reg.protocols, ["irc", "gitter"]);
        assert!(reg.receive_ephemeral);
        let users = &reg.namespaces.users;
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].regex, r"@irc_.*:example\.org");
        assert!(users[0].exclusive);
        assert_eq!(users[1].regex, "@freenode_.*");
        assert!(!users[1].exclusive);
        assert_eq!(reg.namespaces.aliases.len(), 1);
        assert!(reg.namespaces.aliases[0].exclusive);
        assert_eq!(reg.namespaces.rooms.len(), 1);
        assert!(!reg.namespaces.rooms[0].exclusive);
    }

    #[test]
    fn tolerates_keys_it_does_not_know() {
        let reg = parse(&minimal(
            "a",
            "ip_range_whitelist: [\"10.0.0.0/8\"]\nfoo: {bar: 1}\n",
        ));
        assert_eq!(reg.id, "a");
    }

    #[test]
    fn a_null_url_means_no_pushes() {
        assert_eq!(parse(&minimal("a", "")).url, None);
    }

    #[test]
    fn an_absent_url_means_no_pushes() {
        let text = "id: a\nas_token: x\nhs_token: y\nsender_localpart: bot\n";
        assert_eq!(parse(text).url, None);
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_naming_file_and_field() {
        let text = minimal("a", "").replace("url: null", "url: ftp://x");
        assert_eq!(
            error(&text),
            "appservice.yaml: field `url`: must be an http:// or https:// URL, or null for no pushes"
        );
        let text = minimal("a", "").replace("url: null", "url: 5");
        assert_eq!(
            error(&text),
            "appservice.yaml: field `url`: must be a string or null, not a number"
        );
    }

    #[test]
    fn defaults_apply_to_every_optional_field() {
        let reg = parse(&minimal("a", ""));
        assert!(reg.rate_limited);
        assert!(reg.protocols.is_empty());
        assert!(!reg.receive_ephemeral);
        assert!(reg.namespaces.users.is_empty());
        assert!(reg.namespaces.aliases.is_empty());
        assert!(reg.namespaces.rooms.is_empty());
    }

    #[test]
    fn a_namespace_kind_may_be_absent_or_null() {
        let reg = parse(&minimal(
            "a",
            "namespaces:\n  users: null\n  rooms:\n    - regex: '!r'\n",
        ));
        assert!(reg.namespaces.users.is_empty());
        assert!(reg.namespaces.aliases.is_empty());
        assert_eq!(reg.namespaces.rooms.len(), 1);
    }

    #[test]
    fn exclusive_defaults_to_false() {
        let reg = parse(&minimal(
            "a",
            "namespaces:\n  users:\n    - regex: '@a_.*'\n",
        ));
        assert!(!reg.namespaces.users[0].exclusive);
    }

    #[test]
    fn the_unstable_msc2409_key_turns_on_receive_ephemeral() {
        let reg = parse(&minimal("a", "de.sorunome.msc2409.push_ephemeral: true\n"));
        assert!(reg.receive_ephemeral);
        let reg = parse(&minimal(
            "a",
            "receive_ephemeral: false\nde.sorunome.msc2409.push_ephemeral: true\n",
        ));
        assert!(reg.receive_ephemeral);
    }

    #[test]
    fn the_legacy_query_token_is_asked_for_explicitly() {
        assert!(!parse(&minimal("a", "")).legacy_query_token);
        assert!(parse(&minimal("a", "legacy_query_token: true\n")).legacy_query_token);
    }

    #[test]
    fn each_missing_required_field_is_named_with_the_file() {
        for field in ["id", "as_token", "hs_token", "sender_localpart"] {
            let text: String = minimal("a", "")
                .lines()
                .filter(|line| !line.starts_with(&format!("{field}:")))
                .map(|line| format!("{line}\n"))
                .collect();
            assert_eq!(
                error(&text),
                format!("appservice.yaml: missing field `{field}`")
            );
        }
    }

    #[test]
    fn an_empty_or_non_string_token_is_refused() {
        let text = minimal("a", "").replace("as_token: as-a", "as_token: ''");
        assert_eq!(
            error(&text),
            "appservice.yaml: field `as_token`: must not be empty"
        );
        let text = minimal("a", "").replace("hs_token: hs-a", "hs_token: 12345");
        assert_eq!(
            error(&text),
            "appservice.yaml: field `hs_token`: must be a string, not a number"
        );
    }

    #[test]
    fn a_sender_localpart_that_needs_url_encoding_is_refused() {
        let text = minimal("a", "").replace("sender_localpart: a_bot", "sender_localpart: 'a bot'");
        assert_eq!(
            error(&text),
            "appservice.yaml: field `sender_localpart`: may only contain letters, digits and `-._~/`"
        );
    }

    #[test]
    fn wrong_types_of_optional_fields_are_named() {
        assert_eq!(
            error(&minimal("a", "rate_limited: 'yes'\n")),
            "appservice.yaml: field `rate_limited`: must be true or false, not a string"
        );
        assert_eq!(
            error(&minimal("a", "protocols: [irc, 3]\n")),
            "appservice.yaml: field `protocols[1]`: must be a string, not a number"
        );
        assert_eq!(
            error(&minimal("a", "receive_ephemeral: 1\n")),
            "appservice.yaml: field `receive_ephemeral`: must be true or false, not a number"
        );
        assert_eq!(
            error(&minimal("a", "namespaces: [a]\n")),
            "appservice.yaml: field `namespaces`: must be a mapping of users / aliases / rooms, not a list"
        );
        assert_eq!(
            error(&minimal("a", "namespaces:\n  users:\n    - regex: '@a'\n      exclusive: 'yes'\n")),
            "appservice.yaml: field `namespaces.users[0].exclusive`: must be true or false, not a string"
        );
        assert_eq!(
            error(&minimal("a", "namespaces:\n  aliases:\n    - '#a'\n")),
            "appservice.yaml: field `namespaces.aliases[0]`: must be a {regex, exclusive} mapping, not a string"
        );
        assert_eq!(
            error(&minimal(
                "a",
                "namespaces:\n  rooms:\n    - exclusive: true\n"
            )),
            "appservice.yaml: missing field `namespaces.rooms[0].regex`"
        );
    }

    #[test]
    fn an_invalid_regex_is_named_with_its_file_and_path() {
        let text = minimal(
            "a",
            "namespaces:\n  users:\n    - regex: '@a_.*'\n    - regex: '@b_(.*'\n",
        );
        let message = error(&text);
        assert!(
            message
                .starts_with("appservice.yaml: field `namespaces.users[1].regex`: invalid regex: "),
            "{message}"
        );
    }

    #[test]
    fn an_unbalanced_group_cannot_escape_the_anchor() {
        let text = minimal("a", "namespaces:\n  users:\n    - regex: 'a)|(b'\n");
        let message = error(&text);
        assert!(
            message
                .starts_with("appservice.yaml: field `namespaces.users[0].regex`: invalid regex"),
            "{message}"
        );
    }

    #[test]
    fn text_that_is_not_a_yaml_mapping_is_refused_naming_the_file() {
        let message = error("id: [unclosed\n");
        assert!(
            message.starts_with("appservice.yaml: not a valid YAML registration: "),
            "{message}"
        );
        assert_eq!(
            error("- a\n- b\n"),
            "appservice.yaml: not a valid YAML registration: the document is not a mapping of keys to values"
        );
        assert_eq!(
            error(""),
            "appservice.yaml: not a valid YAML registration: the document is not a mapping of keys to values"
        );
    }

    #[test]
    fn regexes_are_anchored_at_the_start() {
        let ns = Namespace::new("@irc_.*", true).unwrap();
        assert_eq!(ns.anchored_pattern(), "^(?:@irc_.*)");
        assert!(ns.is_match("@irc_a:x"));
        assert!(!ns.is_match("@xirc_a:x"));
        let ns = Namespace::new("irc_.*", true).unwrap();
        assert!(!ns.is_match("@irc_a:x"), "an unanchored search would match");
    }

    #[test]
    fn regexes_are_not_anchored_at_the_end_as_in_synapse() {
        let ns = Namespace::new("@irc_a", false).unwrap();
        assert!(ns.is_match("@irc_abc:x"));
        let ns = Namespace::new("@irc_a$", false).unwrap();
        assert!(!ns.is_match("@irc_abc:x"));
        assert!(ns.is_match("@irc_a"));
    }

    #[test]
    fn regexes_are_case_sensitive() {
        let ns = Namespace::new("@irc_.*", false).unwrap();
        assert!(!ns.is_match("@IRC_a:x"));
        assert!(!ns.is_match("@Irc_a:x"));
    }

    #[test]
    fn the_sender_is_the_localpart_on_our_server() {
        assert_eq!(parse(FULL).sender("example.org"), "@_irc_bot:example.org");
    }

    #[test]
    fn debug_output_hides_the_tokens() {
        let shown = format!("{:?}", parse(FULL));
        assert!(
            !shown.contains("as-secret") && !shown.contains("hs-secret"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn a_set_of_distinct_services_is_accepted() {
        let a = service("a", &[("@a_.*", true)]);
        let b = service("b", &[("@b_.*", true)]);
        validate_set(&[a, b]).unwrap();
        validate_set(&[parse(FULL)]).unwrap();
        validate_set(&[]).unwrap();
    }

    #[test]
    fn a_duplicate_id_is_refused_naming_both_files() {
        let a = service("a", &[]);
        let mut b = service("b", &[]);
        b.id = "a".into();
        assert_eq!(
            set_error(&[a, b]),
            "b.yaml: field `id`: `a` is already the id of appservice `a` (a.yaml)"
        );
    }

    #[test]
    fn a_duplicate_as_token_is_refused() {
        let a = service("a", &[]);
        let mut b = service("b", &[]);
        b.as_token = a.as_token.clone();
        assert_eq!(
            set_error(&[a, b]),
            "b.yaml: field `as_token`: the same as_token is already used by appservice `a` (a.yaml)"
        );
    }

    #[test]
    fn a_duplicate_hs_token_is_refused() {
        let a = service("a", &[]);
        let mut b = service("b", &[]);
        b.hs_token = a.hs_token.clone();
        assert_eq!(
            set_error(&[a, b]),
            "b.yaml: field `hs_token`: the same hs_token is already used by appservice `a` (a.yaml)"
        );
    }

    #[test]
    fn an_as_token_equal_to_another_services_hs_token_is_refused() {
        let a = service("a", &[]);
        let mut b = service("b", &[]);
        b.as_token = a.hs_token.clone();
        assert_eq!(
            set_error(&[a.clone(), b]),
            "b.yaml: field `as_token`: equals the hs_token of appservice `a` (a.yaml)"
        );
        let mut b = service("b", &[]);
        b.hs_token = a.as_token.clone();
        assert_eq!(
            set_error(&[a, b]),
            "b.yaml: field `hs_token`: equals the as_token of appservice `a` (a.yaml)"
        );
    }

    #[test]
    fn overlapping_exclusive_user_namespaces_are_refused_with_an_example() {
        let a = service("a", &[("@irc_.*", true)]);
        let b = service("b", &[("@other_.*", false), ("@irc_bridge_.*", true)]);
        assert_eq!(
            set_error(&[a, b]),
            "b.yaml: field `namespaces.users[1].regex`: exclusive namespace `@irc_bridge_.*` \
             overlaps exclusive namespace `@irc_.*` of appservice `a` (a.yaml, field \
             `namespaces.users[0].regex`): both match `@irc_bridge_`"
        );
    }

    #[test]
    fn exclusive_namespaces_overlap_through_a_shorter_prefix() {
        // `@a` matches every id starting with `@a`, `@ab:x` included.
        let a = service("a", &[("@a", true)]);
        let b = service("b", &[("@ab:x$", true)]);
        let message = set_error(&[a, b]);
        assert!(message.ends_with("both match `@ab:x`"), "{message}");
    }

    #[test]
    fn exclusive_namespaces_that_cannot_meet_are_accepted() {
        let pairs = [
            (r"@irc_.*:a\.org$", r"@irc_.*:b\.org$"),
            ("@a_[0-9]+$", "@a_[a-z]+$"),
            ("@irc_", "@slack_"),
            ("@a$", "@ab"),
        ];
        for (x, y) in pairs {
            validate_set(&[service("a", &[(x, true)]), service("b", &[(y, true)])])
                .unwrap_or_else(|e| panic!("{x} / {y}: {e}"));
        }
    }

    #[test]
    fn without_an_end_anchor_namespaces_for_two_servers_still_overlap() {
        // Matching is anchored at the start only, so `@irc_.*:a\.org` also matches ids that
        // go on after `a.org`.
        let a = service("a", &[(r"@irc_.*:a\.org", true)]);
        let b = service("b", &[(r"@irc_.*:b\.org", true)]);
        let message = set_error(&[a, b]);
        assert!(
            message.ends_with("both match `@irc_:a.org:b.org`"),
            "{message}"
        );
    }

    #[test]
    fn a_non_exclusive_namespace_may_overlap_an_exclusive_one() {
        let a = service("a", &[("@irc_.*", true)]);
        let b = service("b", &[("@irc_.*", false)]);
        validate_set(&[a, b]).unwrap();
    }

    #[test]
    fn a_services_own_exclusive_namespaces_may_overlap() {
        let a = service("a", &[("@irc_.*", true), ("@irc_x.*", true)]);
        validate_set(&[a]).unwrap();
    }

    #[test]
    fn overlap_is_only_checked_within_one_kind() {
        let a = service("a", &[("[@#]x_.*", true)]);
        let mut b = service("b", &[]);
        b.namespaces.aliases = vec![Namespace::new("[@#]x_.*", true).unwrap()];
        validate_set(&[a, b]).unwrap();
    }

    #[test]
    fn overlapping_exclusive_alias_namespaces_are_refused() {
        let mut a = service("a", &[]);
        a.namespaces.aliases = vec![Namespace::new("#irc_.*", true).unwrap()];
        let mut b = service("b", &[]);
        b.namespaces.aliases = vec![Namespace::new(r"#irc_.*:example\.org", true).unwrap()];
        let message = set_error(&[a, b]);
        assert!(
            message.starts_with("b.yaml: field `namespaces.aliases[0].regex`: exclusive namespace"),
            "{message}"
        );
        assert!(
            message.ends_with("both match `#irc_:example.org`"),
            "{message}"
        );
    }

    #[test]
    fn an_exclusive_namespace_claiming_another_services_sender_is_refused() {
        let a = service("a", &[]);
        let b = service("b", &[("@a_.*", true)]);
        assert_eq!(
            set_error(&[a, b]),
            "b.yaml: field `namespaces.users[0].regex`: exclusive namespace `@a_.*` overlaps the \
             sender `@a_bot:…` of appservice `a` (a.yaml, field `sender_localpart`): both match \
             `@a_bot:`"
        );
    }

    #[test]
    fn two_services_with_the_same_sender_are_refused() {
        let a = service("a", &[]);
        let mut b = service("b", &[]);
        b.sender_localpart = "a_bot".into();
        let message = set_error(&[a, b]);
        assert!(
            message.starts_with(
                "b.yaml: field `sender_localpart`: the sender `@a_bot:…` overlaps the sender `@a_bot:…`"
            ),
            "{message}"
        );
    }

    #[test]
    fn regexes_without_a_dfa_fall_back_to_witnesses() {
        // A Unicode word boundary has no DFA; the literal prefix `@irc_` plus `a` shows it.
        assert!(prefix_dfa(r"@irc_\w+\b").is_none());
        let a = service("a", &[(r"@irc_\w+\b", true)]);
        let b = service("b", &[("@irc_.*", true)]);
        let message = set_error(&[a, b]);
        assert!(message.ends_with("both match `@irc_a`"), "{message}");

        let a = service("a", &[(r"^@x\b.*$", true)]);
        let b = service("b", &[(r"@x\b", true)]);
        let message = set_error(&[a, b]);
        assert!(message.ends_with("they are the same regex"), "{message}");

        let a = service("a", &[(r"@x\b", true)]);
        let b = service("b", &[(r"@y\b", true)]);
        validate_set(&[a, b]).unwrap();
    }

    #[test]
    fn the_literal_prefix_stops_at_the_first_metacharacter() {
        assert_eq!(literal_prefix(r"@irc_.*:example\.org"), "@irc_");
        assert_eq!(literal_prefix(r"^@a\.b[0-9]"), "@a.b");
        assert_eq!(literal_prefix("@ab?c"), "@a");
        assert_eq!(literal_prefix(r"\w+"), "");
    }
}
