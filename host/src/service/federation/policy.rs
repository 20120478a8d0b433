//! Which servers and addresses this server talks to: the `[federation]` address ranges, applied
//! to every address a destination resolves to before connecting, and the server name globs,
//! applied to destinations and to the origins of incoming requests. Server names are matched
//! by [`glob_matches`], which `m.room.server_acl` ([`super::acl`]) uses too.

use std::net::IpAddr;

use crate::config::FederationConfig;
use crate::net::address::AddressRange;

/// The configuration's lists, parsed once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    denied_ranges: Vec<AddressRange>,
    allowed_ranges: Vec<AddressRange>,
    allowed_servers: Vec<String>,
    denied_servers: Vec<String>,
}

impl Policy {
    pub(crate) fn new(config: &FederationConfig) -> Policy {
        // Each range was checked when the configuration was loaded.
        let ranges = |list: &[String]| list.iter().filter_map(|r| r.parse().ok()).collect();
        Policy {
            denied_ranges: ranges(&config.ip_range_denylist),
            allowed_ranges: ranges(&config.ip_range_allowlist),
            allowed_servers: config.allowed_servers.clone(),
            denied_servers: config.denied_servers.clone(),
        }
    }

    /// Whether a connection to `ip` may be made: not in a denied range, or in an allowed one.
    pub(crate) fn address_allowed(&self, ip: IpAddr) -> bool {
        !self.denied_ranges.iter().any(|r| r.contains(ip))
            || self.allowed_ranges.iter().any(|r| r.contains(ip))
    }

    /// Whether this server talks to `server` (a server name, port included): not denied, and
    /// allowed when there is an allow list. Globs match the name with and without its port.
    pub(crate) fn server_allowed(&self, server: &str) -> bool {
        let matches = |globs: &[String]| {
            globs
                .iter()
                .any(|g| glob_matches(g, server) || glob_matches(g, host_of(server)))
        };
        !matches(&self.denied_servers)
            && (self.allowed_servers.is_empty() || matches(&self.allowed_servers))
    }
}

/// The host of a server name: without its port (`[::1]:8448` is `[::1]`).
pub(crate) fn host_of(server: &str) -> &str {
    match server.rfind(':') {
        // A colon inside an IPv6 literal's brackets is not a port separator.
        Some(i) if !server[i..].contains(']') => &server[..i],
        _ => server,
    }
}

/// Whether `name` matches `glob`, where `*` is any run of characters (none included) and `?`
/// is one character; case-insensitive, as DNS names are.
pub(crate) fn glob_matches(glob: &str, name: &str) -> bool {
    let glob: Vec<char> = glob.to_ascii_lowercase().chars().collect();
    let name: Vec<char> = name.to_ascii_lowercase().chars().collect();
    // The classic greedy matcher with one backtrack point: linear in practice, no recursion.
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some('*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    g = sg + 1;
                    n = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(adjust: impl FnOnce(&mut FederationConfig)) -> Policy {
        let mut config = FederationConfig::default();
        adjust(&mut config);
        Policy::new(&config)
    }

    #[test]
    fn the_default_denylist_refuses_private_loopback_link_local_and_cgnat_addresses() {
        let p = policy(|_| {});
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.0.1",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!p.address_allowed(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "2606:4700::1111"] {
            assert!(p.address_allowed(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn an_allowlisted_range_is_taken_out_of_the_denylist() {
        let p = policy(|c| c.ip_range_allowlist = vec!["127.0.0.1".into()]);
        assert!(p.address_allowed("127.0.0.1".parse().unwrap()));
        assert!(!p.address_allowed("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn denied_server_globs_win_over_allowed_ones_and_match_without_the_port() {
        let p = policy(|c| {
            c.allowed_servers = vec!["*.example.org".into(), "127.0.0.1".into()];
            c.denied_servers = vec!["evil.example.org".into()];
        });
        assert!(p.server_allowed("matrix.example.org"));
        assert!(p.server_allowed("matrix.example.org:8448"));
        assert!(p.server_allowed("127.0.0.1:8448"));
        assert!(!p.server_allowed("evil.example.org"));
        assert!(!p.server_allowed("EVIL.example.org:443"));
        assert!(!p.server_allowed("example.com"));
        assert!(policy(|_| {}).server_allowed("anything.example"));
    }

    #[test]
    fn globs_match_any_run_with_a_star_and_one_character_with_a_question_mark() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*.org", "a.b.org"));
        assert!(!glob_matches("*.org", "a.org.uk"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "ac"));
        assert!(glob_matches("*a*b*", "xxaxxbxx"));
        assert!(!glob_matches("*a*b", "xxaxxbxxc"));
        assert!(glob_matches("Example.ORG", "example.org"));
    }

    #[test]
    fn the_host_of_a_server_name_drops_only_a_port() {
        assert_eq!(host_of("example.org:8448"), "example.org");
        assert_eq!(host_of("example.org"), "example.org");
        assert_eq!(host_of("[::1]:8448"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
    }
}
