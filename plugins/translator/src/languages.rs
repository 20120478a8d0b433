//! The languages the backend knows, as `/languages` last listed them, kept in kv: what
//! `!translate on LANG` and `!tr LANG` are checked against. A code missing from the list asks
//! the backend again (it may have learnt a language since).

use plugboard_sdk::prelude::*;

use crate::backend::Language;

const KEY: &str = "languages";

/// The list as last fetched (empty before the first time).
pub fn cached() -> Result<Vec<Language>, Error> {
    Ok(kv::get(KEY)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// Keeps `list` as the backend's languages.
pub fn store(list: &[Language]) -> Result<(), Error> {
    kv::set_json(KEY, &list)
}

/// The language of `list` whose code is `code`, in any case.
pub fn find<'a>(list: &'a [Language], code: &str) -> Option<&'a Language> {
    list.iter().find(|l| l.code.eq_ignore_ascii_case(code))
}

/// Whether text detected as `detected` is already in `target`: the same code, or the same
/// base language when one of them names no variant (`en` and `en-US`).
pub fn same_language(detected: &str, target: &str) -> bool {
    if detected.eq_ignore_ascii_case(target) {
        return true;
    }
    let base = |c: &str| c.split(['-', '_']).next().unwrap_or(c).to_ascii_lowercase();
    let plain = |c: &str| !c.contains(['-', '_']);
    (plain(detected) || plain(target)) && base(detected) == base(target)
}

/// The codes of `list`, for an answer.
pub fn codes(list: &[Language]) -> String {
    list.iter()
        .map(|l| l.code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_of_a_language_are_the_same_language() {
        assert!(same_language("en", "EN"));
        assert!(same_language("en", "en-US"));
        assert!(same_language("pt-BR", "pt"));
        assert!(!same_language("pt-BR", "pt-PT"));
        assert!(!same_language("en", "fr"));
    }

    #[test]
    fn codes_are_found_in_any_case() {
        let list = vec![Language {
            code: "pt-BR".into(),
            name: "Portuguese".into(),
        }];
        assert_eq!(
            find(&list, "pt-br").map(|l| l.name.as_str()),
            Some("Portuguese")
        );
        assert!(find(&list, "pt").is_none());
        assert_eq!(codes(&list), "pt-BR");
    }
}
