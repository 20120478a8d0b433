//! The checks a set of registrations must pass before the server accepts them together: no
//! shared id or token, and no two services claiming the same identifiers exclusively, which
//! is proven on automata (see [`validate_set`]).

use std::collections::{HashSet, VecDeque};

use regex::Regex;
use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};

use super::{anchored, NamespaceKind, Registration, RegistrationError};

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
            let other = || format!("appservice `{}` ({})", earlier.id, earlier.origin);
            let conflict = |field: &str, message: String| RegistrationError::Conflict {
                file: later.origin.clone(),
                field: field.to_owned(),
                message,
                other: Some(earlier.origin.clone()),
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
                        file: b.origin.clone(),
                        field: later.field.clone(),
                        message: format!(
                            "{} overlaps {} of appservice `{}` ({}, field `{}`): {shown}",
                            later.describe(),
                            earlier.describe(),
                            a.id,
                            a.origin,
                            earlier.field
                        ),
                        other: Some(a.origin.clone()),
                    });
                }
            }
        }
    }
    Ok(())
}

/// How many pairs of DFA states the overlap search visits before it gives up and falls back
/// to the witness heuristic.
pub(crate) const PRODUCT_STATE_LIMIT: usize = 50_000;

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
mod tests;
