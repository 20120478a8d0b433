//! A snippet of a hit: a window of its text around the first matched word, with every word
//! of the query marked, `**like this**` in plain text and `<strong>` in HTML.

use plugboard_sdk::message::escape_html;

use crate::text;

/// A snippet in both forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub plain: String,
    pub html: String,
    /// The words that were marked, as they stand in the text.
    pub marked: Vec<String>,
}

/// Bytes of context kept before the first match.
const BEFORE: usize = 40;

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The snippet of `text` for the query `terms`, about `width` bytes long.
pub fn make(text: &str, terms: &[String], width: usize) -> Snippet {
    let matches: Vec<(usize, usize)> = text::tokens(text)
        .filter(|t| terms.iter().any(|q| q == t.term.as_ref()))
        .map(|t| (t.start, t.end))
        .collect();
    let (first, first_end) = matches.first().copied().unwrap_or((0, 0));
    let mut start = floor_boundary(text, first.saturating_sub(BEFORE));
    if start > 0 {
        // Start at a word boundary rather than inside a word.
        if let Some(space) = text[start..first].find(char::is_whitespace) {
            start += space + 1;
        }
    }
    let mut end = floor_boundary(text, start + width.max(first_end - start));
    if end < text.len() {
        if let Some(space) = text[start..end].rfind(char::is_whitespace) {
            if start + space >= first_end {
                end = start + space;
            }
        }
    }
    let mut plain = String::new();
    let mut html = String::new();
    let mut marked = Vec::new();
    if start > 0 {
        plain.push('…');
        html.push('…');
    }
    let mut at = start;
    let flat = |s: &str| s.replace(['\n', '\r', '\t'], " ");
    for &(s, e) in matches.iter().filter(|(s, e)| *s >= start && *e <= end) {
        plain.push_str(&flat(&text[at..s]));
        html.push_str(&escape_html(&flat(&text[at..s])));
        plain.push_str("**");
        plain.push_str(&text[s..e]);
        plain.push_str("**");
        html.push_str("<strong>");
        html.push_str(&escape_html(&text[s..e]));
        html.push_str("</strong>");
        if !marked.iter().any(|m| m == &text[s..e]) {
            marked.push(text[s..e].to_string());
        }
        at = e;
    }
    plain.push_str(&flat(&text[at..end]));
    html.push_str(&escape_html(&flat(&text[at..end])));
    if end < text.len() {
        plain.push('…');
        html.push('…');
    }
    Snippet {
        plain,
        html,
        marked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matched_words_are_marked_whatever_their_case() {
        let s = make("The Quick brown fox <3", &terms(&["quick", "fox"]), 100);
        assert_eq!(s.plain, "The **Quick** brown **fox** <3");
        assert_eq!(
            s.html,
            "The <strong>Quick</strong> brown <strong>fox</strong> &lt;3"
        );
        assert_eq!(s.marked, ["Quick", "fox"]);
    }

    #[test]
    fn a_long_text_is_cut_around_the_first_match() {
        let text = format!("{} needle {}", "hay ".repeat(50), "straw ".repeat(50));
        let s = make(&text, &terms(&["needle"]), 80);
        assert!(
            s.plain.starts_with('…') && s.plain.ends_with('…'),
            "{}",
            s.plain
        );
        assert!(s.plain.contains("**needle**"));
        assert!(s.plain.len() < 140, "{}", s.plain);
        let plain = make("line one\nline two", &terms(&["two"]), 100).plain;
        assert_eq!(plain, "line one line **two**");
    }

    #[test]
    fn multibyte_text_is_cut_at_character_boundaries() {
        let text = "é".repeat(100) + " clé " + &"ü".repeat(100);
        let s = make(&text, &terms(&["clé"]), 30);
        assert!(s.plain.contains("**clé**"), "{}", s.plain);
    }
}
