//! The user-visible strings the server stores or shows on a user's behalf: display names,
//! device names, room names, topics and reasons. One rule per kind of string, so that the
//! profile, the device list and the events that carry the same string refuse the same text.

use super::{Error, Result};

/// The longest display name (Synapse's bound too).
pub(crate) const MAX_DISPLAYNAME_BYTES: usize = 256;
/// The longest device display name.
pub(crate) const MAX_DEVICE_NAME_BYTES: usize = 256;
/// The longest room name: the spec's bound on `m.room.name`.
pub(crate) const MAX_ROOM_NAME_BYTES: usize = 255;

/// A name shown on one line (a display name, a device name, a room name): at most
/// `max_bytes`, and no control characters at all. A NUL or an escape sequence in a name is
/// never meant, and it would reach every client that lists the name.
pub(crate) fn check_line(what: &str, text: &str, max_bytes: usize) -> Result<()> {
    if text.len() > max_bytes {
        return Err(Error::InvalidParam(format!(
            "{what} is {} bytes; at most {max_bytes} are allowed",
            text.len()
        )));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(Error::InvalidParam(format!(
            "{what} may not contain the control character {}",
            c.escape_unicode()
        )));
    }
    Ok(())
}

/// Free text that may run over several lines (a topic, a reason): line breaks and tabs are
/// allowed, other control characters (NUL, escape sequences) are not.
pub(crate) fn check_text(what: &str, text: &str) -> Result<()> {
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::InvalidParam(format!(
            "{what} may not contain the control character {}",
            c.escape_unicode()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_refuses_every_control_character_and_overlong_text() {
        assert!(check_line("name", "Alice \u{1F600} \u{5E9}\u{200B}", 256).is_ok());
        for bad in ["a\u{0}b", "a\nb", "a\tb", "\u{1b}[31m", "a\u{85}b"] {
            assert!(check_line("name", bad, 256).is_err(), "{bad:?}");
        }
        assert!(check_line("name", &"n".repeat(256), 256).is_ok());
        assert!(check_line("name", &"n".repeat(257), 256).is_err());
    }

    #[test]
    fn text_keeps_line_breaks_and_tabs_but_not_nul_or_escapes() {
        assert!(check_text("reason", "two\nlines\r\n\tindented").is_ok());
        for bad in ["a\u{0}b", "\u{1b}[2J", "bell\u{7}", "a\u{7f}"] {
            assert!(check_text("reason", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_field_and_the_character() {
        let Err(Error::InvalidParam(msg)) = check_line("displayname", "a\u{0}", 256) else {
            panic!("accepted");
        };
        assert!(
            msg.contains("displayname") && msg.contains("\\u{0}"),
            "{msg}"
        );
    }
}
