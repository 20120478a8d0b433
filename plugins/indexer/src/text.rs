//! How text becomes terms: Unicode word segmentation (UAX #29), then NFKC and full case
//! folding, so that `Straße`, `STRASSE` and `strasse` are one term and so are `ﬁle` and
//! `file`. Indexing, queries and snippet marking all go through [`tokens`].

use std::borrow::Cow;

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Longer "words" (hashes, base64) are not indexed: nobody types them into a search.
pub const MAX_TERM_BYTES: usize = 64;

/// Most tokens indexed per message; the rest of a longer message is kept but not indexed.
pub const MAX_TOKENS: usize = 4096;

/// One word of a text: its folded term and where it is in the text (bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    pub term: Cow<'a, str>,
    pub start: usize,
    pub end: usize,
}

/// The words of `text`, folded, in order, at most [`MAX_TOKENS`].
pub fn tokens(text: &str) -> impl Iterator<Item = Token<'_>> {
    text.unicode_word_indices()
        .filter_map(|(start, word)| {
            let term = fold(word);
            (term.len() <= MAX_TERM_BYTES && !term.is_empty()).then(|| Token {
                term,
                start,
                end: start + word.len(),
            })
        })
        .take(MAX_TOKENS)
}

/// The folded form of one word: ASCII lower-cased in place when it can be (most words);
/// anything else through NFKC, full case folding and NFKC again (folding can un-normalize).
pub fn fold(word: &str) -> Cow<'_, str> {
    if word.is_ascii() {
        if word.bytes().any(|b| b.is_ascii_uppercase()) {
            return Cow::Owned(word.to_ascii_lowercase());
        }
        return Cow::Borrowed(word);
    }
    Cow::Owned(word.chars().nfkc().default_case_fold().nfkc().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        tokens(text).map(|t| t.term.into_owned()).collect()
    }

    #[test]
    fn words_are_split_on_unicode_boundaries_and_folded() {
        assert_eq!(
            terms("Hello, World! It's 3.14 — don't PANIC."),
            ["hello", "world", "it's", "3.14", "don't", "panic"]
        );
        assert_eq!(terms("Straße STRASSE"), ["strasse", "strasse"]);
        assert_eq!(terms("ﬁle ΣΊΣΥΦΟΣ"), ["file", "σίσυφοσ"]);
        // Composed and decomposed é are one term.
        assert_eq!(terms("caf\u{e9} cafe\u{301}"), ["café", "café"]);
        assert_eq!(terms("東京タワー"), ["東", "京", "タワー"]);
        assert!(terms("🙂 — !!!").is_empty());
    }

    #[test]
    fn tokens_know_where_they_are() {
        let t: Vec<_> = tokens("a  Bc").collect();
        assert_eq!((t[1].start, t[1].end, t[1].term.as_ref()), (3, 5, "bc"));
    }

    #[test]
    fn huge_words_and_huge_texts_are_bounded() {
        let long = "x".repeat(MAX_TERM_BYTES + 1);
        assert_eq!(terms(&format!("{long} ok")), ["ok"]);
        let many = "w ".repeat(MAX_TOKENS + 10);
        assert_eq!(tokens(&many).count(), MAX_TOKENS);
    }
}
