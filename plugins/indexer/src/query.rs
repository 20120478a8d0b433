//! What a search asks for: words (all must match), `"exact phrases"`, and the filters
//! `from:@user[:server]`, `before:TIME`, `after:TIME`. A word that segments into several
//! terms (`e-mail`, `東京`) is searched as a phrase of them.

use crate::dates;
use crate::text;

/// Longest query read, in bytes.
pub const MAX_QUERY_BYTES: usize = 1000;
/// Most distinct terms in one query.
pub const MAX_TERMS: usize = 16;

/// A parsed query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Distinct terms every hit contains.
    pub terms: Vec<String>,
    /// Runs of terms that must stand side by side, in order.
    pub phrases: Vec<Vec<String>>,
    /// Senders a hit is from (any of them), when given.
    pub from: Vec<Sender>,
    /// Hits are at or after this time (ms).
    pub after: Option<u64>,
    /// Hits are before this time (ms).
    pub before: Option<u64>,
}

/// A `from:` value: a whole user id, or a localpart on any server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Exact(String),
    Localpart(String),
}

impl Sender {
    pub fn matches(&self, user_id: &str) -> bool {
        match self {
            Sender::Exact(id) => id == user_id,
            Sender::Localpart(l) => user_id
                .strip_prefix('@')
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(local, _)| local == l),
        }
    }
}

impl Query {
    /// Whether it has no words at all (only filters): hits are then the newest matches.
    pub fn filters_only(&self) -> bool {
        self.terms.is_empty()
    }

    fn add_terms(&mut self, words: Vec<String>) -> Result<(), String> {
        match words.len() {
            0 => {}
            1 => self.add_term(&words[0])?,
            _ => {
                for w in &words {
                    self.add_term(w)?;
                }
                if !self.phrases.contains(&words) {
                    self.phrases.push(words);
                }
            }
        }
        Ok(())
    }

    fn add_term(&mut self, term: &str) -> Result<(), String> {
        if !self.terms.iter().any(|t| t == term) {
            if self.terms.len() == MAX_TERMS {
                return Err(format!("a search has at most {MAX_TERMS} different words"));
            }
            self.terms.push(term.to_string());
        }
        Ok(())
    }
}

fn terms_of(text: &str) -> Vec<String> {
    text::tokens(text).map(|t| t.term.into_owned()).collect()
}

/// Reads `input`; `now_ms` anchors relative times. The error says what is wrong, for the
/// person who typed it.
pub fn parse(input: &str, now_ms: u64) -> Result<Query, String> {
    if input.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "the search is too long (at most {MAX_QUERY_BYTES} bytes)"
        ));
    }
    let mut q = Query::default();
    let mut rest = input.trim_start();
    while !rest.is_empty() {
        if let Some(after_quote) = rest.strip_prefix('"') {
            let (phrase, next) = after_quote.split_once('"').unwrap_or((after_quote, ""));
            q.add_terms(terms_of(phrase))?;
            rest = next.trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, next) = rest.split_at(end);
        rest = next.trim_start();
        match word.split_once(':') {
            Some((key, value)) if is_filter(key) => filter(&mut q, key, value, now_ms)?,
            _ => q.add_terms(terms_of(word))?,
        }
    }
    if q.terms.is_empty() && q.from.is_empty() && q.after.is_none() && q.before.is_none() {
        return Err("there is nothing to search for: give some words".into());
    }
    Ok(q)
}

fn is_filter(key: &str) -> bool {
    ["from", "before", "after"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
}

fn filter(q: &mut Query, key: &str, value: &str, now_ms: u64) -> Result<(), String> {
    let key = key.to_ascii_lowercase();
    if key == "from" {
        let v = value.strip_prefix('@').unwrap_or(value);
        if v.is_empty() || v.len() > 255 || v.contains(char::is_whitespace) {
            return Err(format!(
                "`from:{value}` is not a user: write from:@name or from:@name:server"
            ));
        }
        let sender = match v.split_once(':') {
            Some((local, server)) if !local.is_empty() && !server.is_empty() => {
                Sender::Exact(format!("@{v}"))
            }
            Some(_) => {
                return Err(format!(
                    "`from:{value}` is not a user: write from:@name or from:@name:server"
                ))
            }
            None => Sender::Localpart(v.to_string()),
        };
        if q.from.len() < MAX_TERMS && !q.from.contains(&sender) {
            q.from.push(sender);
        }
        return Ok(());
    }
    let Some(at) = dates::parse(value, now_ms) else {
        return Err(format!(
            "cannot read the time in `{key}:{value}`: use YYYY-MM-DD, YYYY-MM-DDTHH:MM (UTC), \
             today, yesterday, or a span back from now such as 12h, 7d, 2w"
        ));
    };
    if key == "before" {
        q.before = Some(q.before.map_or(at, |b| b.min(at)));
    } else {
        q.after = Some(q.after.map_or(at, |a| a.max(at)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn words(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn words_phrases_and_filters_are_told_apart() {
        let q = parse(
            r#"Quick "brown FOX" from:@alice:test after:2023-11-01 before:2023-11-14 e-mail"#,
            NOW,
        )
        .unwrap();
        assert_eq!(q.terms, words(&["quick", "brown", "fox", "e", "mail"]));
        assert_eq!(
            q.phrases,
            vec![words(&["brown", "fox"]), words(&["e", "mail"])]
        );
        assert_eq!(q.from, vec![Sender::Exact("@alice:test".into())]);
        assert_eq!(q.after, dates::parse("2023-11-01", NOW));
        assert_eq!(q.before, dates::parse("2023-11-14", NOW));
    }

    #[test]
    fn an_open_quote_runs_to_the_end_and_a_one_word_phrase_is_a_word() {
        let q = parse(r#""solo" "to the end"#, NOW).unwrap();
        assert_eq!(q.terms, words(&["solo", "to", "the", "end"]));
        assert_eq!(q.phrases, vec![words(&["to", "the", "end"])]);
    }

    #[test]
    fn from_takes_a_localpart_or_a_whole_id() {
        let q = parse("from:@bob from:carol:x", NOW).unwrap();
        assert!(q.filters_only());
        assert!(q.from[0].matches("@bob:anywhere") && !q.from[0].matches("@bobby:x"));
        assert!(q.from[1].matches("@carol:x") && !q.from[1].matches("@carol:y"));
    }

    #[test]
    fn bad_queries_say_why() {
        assert!(parse("   ", NOW).unwrap_err().contains("nothing to search"));
        assert!(parse("!!! ???", NOW).is_err());
        assert!(parse("x before:someday", NOW)
            .unwrap_err()
            .contains("YYYY-MM-DD"));
        assert!(parse("x from:@", NOW).unwrap_err().contains("not a user"));
        assert!(parse("x from:@a:", NOW).is_err());
        assert!(parse(&"x".repeat(MAX_QUERY_BYTES + 1), NOW)
            .unwrap_err()
            .contains("too long"));
        let many: Vec<String> = (0..=MAX_TERMS).map(|i| format!("w{i}")).collect();
        assert!(parse(&many.join(" "), NOW).unwrap_err().contains("at most"));
    }
}
