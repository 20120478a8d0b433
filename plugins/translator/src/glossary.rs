//! A room's glossary: terms with the translation they must get, applied around the backend.
//! Before a text is sent, every whole-word occurrence of a term (ASCII letters in any case) is
//! replaced by a placeholder `[[n]]`, which translation engines copy through like a number;
//! after, each placeholder (spaces inside it tolerated) is replaced by the term's
//! translation. Placeholders are numbered above any `[[n]]` the text has of its own, so a
//! text that happens to contain one keeps it.

use std::collections::BTreeMap;

use plugboard_sdk::prelude::*;

/// Longest term, in bytes.
pub const MAX_TERM: usize = 100;
/// Longest translation of a term, in bytes.
pub const MAX_TRANSLATION: usize = 200;

/// A room's glossary: term → translation.
pub type Glossary = BTreeMap<String, String>;

fn key(room: &str) -> String {
    format!("glossary/{room}")
}

/// The glossary of `room` (empty when it has none).
pub fn load(room: &str) -> Result<Glossary, Error> {
    Ok(kv::get(&key(room))?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// Stores the glossary of `room`.
pub fn save(room: &str, glossary: &Glossary) -> Result<(), Error> {
    if glossary.is_empty() {
        kv::delete(&key(room))?;
        Ok(())
    } else {
        kv::set_json(&key(room), glossary)
    }
}

/// `TERM = TRANSLATION` parsed, or why it is not one.
pub fn parse_entry(text: &str) -> Result<(String, String), String> {
    let Some((term, translation)) = text.split_once('=') else {
        return Err("write it as TERM = TRANSLATION".into());
    };
    let (term, translation) = (term.trim(), translation.trim());
    if term.is_empty() || translation.is_empty() {
        return Err("both TERM and TRANSLATION must be given".into());
    }
    if term.len() > MAX_TERM || translation.len() > MAX_TRANSLATION {
        return Err(format!(
            "a term has at most {MAX_TERM} bytes and its translation {MAX_TRANSLATION}"
        ));
    }
    if term.contains(['\n', '[', ']']) || translation.contains('\n') {
        return Err("a term is one line without [ or ]".into());
    }
    Ok((term.to_string(), translation.to_string()))
}

/// A text with its glossary terms replaced by placeholders, and what they stand for.
#[derive(Debug, Clone, PartialEq)]
pub struct Protected {
    /// What goes to the backend.
    pub text: String,
    /// The number of the first placeholder.
    first: usize,
    /// The translation of placeholder `first + i`.
    translations: Vec<String>,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The `[[n]]` at the start of `s` (spaces allowed inside), as (n, its length in bytes).
fn placeholder_at(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    let skip = |i: &mut usize, want: Option<u8>| {
        while *i < b.len() && b[*i] == b' ' {
            *i += 1;
        }
        match want {
            Some(c) if *i < b.len() && b[*i] == c => {
                *i += 1;
                true
            }
            Some(_) => false,
            None => true,
        }
    };
    if !s.starts_with('[') {
        return None;
    }
    i += 1;
    if !skip(&mut i, Some(b'[')) {
        return None;
    }
    skip(&mut i, None);
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() && i - start < 6 {
        i += 1;
    }
    if i == start {
        return None;
    }
    let n: usize = s[start..i].parse().ok()?;
    if !(skip(&mut i, Some(b']')) && skip(&mut i, Some(b']'))) {
        return None;
    }
    Some((n, i))
}

/// `text` with the whole-word occurrences of `glossary`'s terms replaced by placeholders;
/// longer terms win over shorter ones they contain.
pub fn protect(text: &str, glossary: &Glossary) -> Protected {
    let first = text
        .match_indices('[')
        .filter_map(|(i, _)| placeholder_at(&text[i..]))
        .map(|(n, _)| n + 1)
        .max()
        .unwrap_or(0);
    let mut terms: Vec<(&String, &String)> = glossary.iter().collect();
    terms.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
    let mut out = String::with_capacity(text.len());
    let mut translations: Vec<String> = Vec::new();
    let mut used: BTreeMap<&str, usize> = BTreeMap::new();
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let at_word_start = !prev.is_some_and(is_word);
        let hit = at_word_start
            .then(|| {
                terms.iter().find(|(term, _)| {
                    rest.len() >= term.len()
                        && rest.is_char_boundary(term.len())
                        && rest.as_bytes()[..term.len()].eq_ignore_ascii_case(term.as_bytes())
                        && !rest[term.len()..].chars().next().is_some_and(is_word)
                })
            })
            .flatten();
        if let Some((term, translation)) = hit {
            let n = *used.entry(term.as_str()).or_insert_with(|| {
                translations.push((*translation).clone());
                first + translations.len() - 1
            });
            out.push_str(&format!("[[{n}]]"));
            prev = term.chars().last();
            i += term.len();
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            prev = Some(c);
            i += c.len_utf8();
        }
    }
    Protected {
        text: out,
        first,
        translations,
    }
}

impl Protected {
    /// The backend's translation of [`Protected::text`] with the placeholders replaced by
    /// the terms' translations.
    pub fn restore(&self, translated: &str) -> String {
        if self.translations.is_empty() {
            return translated.to_string();
        }
        let mut out = String::with_capacity(translated.len());
        let mut rest = translated;
        while let Some(at) = rest.find('[') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            match placeholder_at(rest)
                .filter(|(n, _)| (self.first..self.first + self.translations.len()).contains(n))
            {
                Some((n, len)) => {
                    out.push_str(&self.translations[n - self.first]);
                    rest = &rest[len..];
                }
                None => {
                    out.push('[');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glossary(entries: &[(&str, &str)]) -> Glossary {
        entries
            .iter()
            .map(|(t, r)| (t.to_string(), r.to_string()))
            .collect()
    }

    #[test]
    fn whole_words_are_protected_in_any_ascii_case_and_longer_terms_win() {
        let g = glossary(&[
            ("Plugboard", "Plugboard"),
            ("board", "planche"),
            ("cat", "Minou"),
        ]);
        let p = protect("plugboard and the board, a CAT; not catalog", &g);
        assert_eq!(p.text, "[[0]] and the [[1]], a [[2]]; not catalog");
        assert_eq!(
            p.restore("[[0]] et la [[ 1 ]], un [[2]]; pas catalogue"),
            "Plugboard et la planche, un Minou; pas catalogue"
        );
    }

    #[test]
    fn the_same_term_twice_shares_one_placeholder() {
        let g = glossary(&[("cat", "Minou")]);
        let p = protect("cat cat", &g);
        assert_eq!(p.text, "[[0]] [[0]]");
        assert_eq!(p.restore("[[0]] [[0]]"), "Minou Minou");
    }

    #[test]
    fn a_text_with_placeholders_of_its_own_keeps_them() {
        let g = glossary(&[("cat", "Minou")]);
        let p = protect("see [[3]] and cat", &g);
        assert_eq!(p.text, "see [[3]] and [[4]]");
        assert_eq!(p.restore("voir [[3]] et [[4]]"), "voir [[3]] et Minou");
    }

    #[test]
    fn without_terms_nothing_changes() {
        let p = protect("héllo [[ wörld", &Glossary::new());
        assert_eq!(p.text, "héllo [[ wörld");
        assert!(p.translations.is_empty());
        assert_eq!(p.restore("x [[0]]"), "x [[0]]");
    }

    #[test]
    fn unicode_neighbours_count_as_word_characters() {
        let g = glossary(&[("cat", "Minou")]);
        assert_eq!(protect("écat caté cat.", &g).text, "écat caté [[0]].");
    }

    #[test]
    fn entries_are_parsed_and_bad_ones_explained() {
        assert_eq!(
            parse_entry(" Plugboard =  Plugboard "),
            Ok(("Plugboard".into(), "Plugboard".into()))
        );
        assert_eq!(parse_entry("a = b = c"), Ok(("a".into(), "b = c".into())));
        assert!(parse_entry("no equals").is_err());
        assert!(parse_entry(" = x").is_err());
        assert!(parse_entry("x = ").is_err());
        assert!(parse_entry(&format!("{} = x", "t".repeat(MAX_TERM + 1))).is_err());
        assert!(parse_entry("[[0]] = x").is_err());
    }
}
