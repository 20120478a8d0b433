//! Route coverage: every path and method of the spec's client-server API that is not
//! deprecated (`tests/spec/routes.txt`, made from the spec's OpenAPI files) is asked of a real
//! server without a token, where no request changes anything. A route the server does not
//! know answers 404 or 405 `M_UNRECOGNIZED` in the router's words; any other answer (401 for
//! an authenticated route, a handler's own error, a result) means it is served. The routes
//! not served yet are listed in `tests/spec/unserved.txt`, and the test fails both when one of
//! them starts to be served (take it off the list) and when a served route stops being
//! served.

use std::collections::BTreeSet;

use plugboard_tests::{enc, TestServer};
use reqwest::Method;
use serde_json::json;

/// A plausible value for a path parameter, so that a route's own checks do not answer first.
fn value_of(param: &str) -> String {
    let raw = match param {
        "userId" => "@alice:localhost",
        "roomId" | "roomIdOrAlias" => "!room:localhost",
        "roomAlias" => "#room:localhost",
        "eventId" => "$event",
        "serverName" => "localhost",
        _ => "x",
    };
    enc(raw)
}

/// `path` with each `{param}` replaced by a value for it.
fn filled(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').expect("a closed {param}");
        out.push_str(&rest[..open]);
        out.push_str(&value_of(&rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// `METHOD PATH` of each line of a list in tests/spec (comments and blank lines skipped).
fn listed(name: &str) -> Vec<(String, String)> {
    let file = format!("{}/spec/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let method = words.next().expect("a method").to_string();
            let path = words.next().unwrap_or_else(|| panic!("a path in {l:?}"));
            (method, path.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_spec_is_served_but_those_listed_as_not_yet() {
    let server = TestServer::start().await;
    let anonymous = server.client();
    let routes = listed("routes.txt");
    assert!(routes.len() > 150, "{} routes", routes.len());
    let mut unserved = BTreeSet::new();
    for (method, path) in &routes {
        let m = Method::from_bytes(method.as_bytes()).expect("a method");
        let body = matches!(m, Method::PUT | Method::POST).then(|| json!({}));
        let reply = anonymous.request(m, &filled(path), body.as_ref()).await;
        assert!(
            reply.status.as_u16() < 500,
            "{method} {path}: {} {}",
            reply.status,
            reply.body
        );
        // The router's own answer to a route it does not know; a handler that answers
        // M_UNRECOGNIZED because the spec says so (OAuth discovery) says more.
        let unknown = matches!(reply.status.as_u16(), 404 | 405)
            && reply.body["errcode"] == "M_UNRECOGNIZED"
            && matches!(
                reply.body["error"].as_str(),
                Some("unrecognized request" | "method not allowed on this endpoint")
            );
        if unknown {
            unserved.insert(format!("{method} {path}"));
        }
    }
    let expected: BTreeSet<String> = listed("unserved.txt")
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    let now_served: Vec<_> = expected.difference(&unserved).collect();
    let lost: Vec<_> = unserved.difference(&expected).collect();
    println!(
        "{} of {} routes served; {} listed as not yet",
        routes.len() - unserved.len(),
        routes.len(),
        expected.len()
    );
    assert!(
        now_served.is_empty() && lost.is_empty(),
        "served now, take them off tests/spec/unserved.txt: {now_served:#?}\n\
         not served (404/405 M_UNRECOGNIZED) and not listed: {lost:#?}"
    );
}
