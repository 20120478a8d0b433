//! `m.room.server_acl`: whether a server may take part in a room, by the spec's rules. The
//! federation service applies it to incoming PDUs, EDUs, joins and history requests.

use std::net::IpAddr;

use serde_json::Value;

use super::policy::{glob_matches, host_of};

/// Whether `server` (a server name, port included) is allowed by the ACL `content`: an IP
/// literal is denied when `allow_ip_literals` is false; then a `deny` match denies; then an
/// `allow` match allows; anything else is denied (an ACL without `allow` allows nobody).
/// Globs are compared to the name without its port; entries that are not strings are
/// ignored.
pub(crate) fn server_allowed(server: &str, content: &Value) -> bool {
    let host = host_of(server);
    let allow_ip_literals = content
        .get("allow_ip_literals")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if !allow_ip_literals && is_ip_literal(host) {
        return false;
    }
    let globs = |key: &str| -> Vec<&str> {
        content
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    if globs("deny").iter().any(|g| glob_matches(g, host)) {
        return false;
    }
    globs("allow").iter().any(|g| glob_matches(g, host))
}

/// An IPv4 literal or a bracketed IPv6 literal.
fn is_ip_literal(host: &str) -> bool {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    unbracketed.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_acl_allows_servers_matching_an_allow_glob_and_nobody_without_one() {
        let acl = json!({"allow": ["*.example.org", "matrix.org"]});
        assert!(server_allowed("a.example.org", &acl));
        assert!(server_allowed("matrix.org:8448", &acl));
        assert!(!server_allowed("example.com", &acl));
        assert!(!server_allowed("matrix.org", &json!({})));
        assert!(!server_allowed("matrix.org", &json!({"allow": []})));
    }

    #[test]
    fn deny_wins_over_allow() {
        let acl = json!({"allow": ["*"], "deny": ["evil.example.org", "*.bad"]});
        assert!(server_allowed("good.example.org", &acl));
        assert!(!server_allowed("evil.example.org", &acl));
        assert!(!server_allowed("x.bad:443", &acl));
    }

    #[test]
    fn ip_literals_are_denied_only_when_allow_ip_literals_is_false() {
        let open = json!({"allow": ["*"]});
        let closed = json!({"allow": ["*"], "allow_ip_literals": false});
        for server in ["127.0.0.1:8448", "1.2.3.4", "[::1]:8448", "[2001:db8::1]"] {
            assert!(server_allowed(server, &open), "{server}");
            assert!(!server_allowed(server, &closed), "{server}");
        }
        assert!(server_allowed("example.org", &closed));
    }

    #[test]
    fn entries_that_are_not_strings_are_ignored() {
        let acl =
            json!({"allow": [1, null, "ok.org"], "deny": [{"x": 1}], "allow_ip_literals": "no"});
        assert!(server_allowed("ok.org", &acl));
        assert!(!server_allowed("other.org", &acl));
        // A non-boolean allow_ip_literals is the default, true.
        assert!(!server_allowed("1.2.3.4", &acl));
        assert!(server_allowed(
            "1.2.3.4",
            &json!({"allow": ["*"], "allow_ip_literals": "no"})
        ));
    }
}
