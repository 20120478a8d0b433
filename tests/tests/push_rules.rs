//! Push rules end to end: a new user has the spec's server-default rules, at `/pushrules/`
//! and in their first /sync; `/pushrules/global/{kind}/{ruleId}` adds, places, reads,
//! disables, re-acts and deletes rules with the spec's errors; a change reaches the next
//! /sync as `m.push_rules` account data; and the server keeps `m.push_rules` itself.

use plugboard_tests::{enc, Client, TestServer};
use serde_json::{json, Value};

/// The rule ids of `kind` in a ruleset, in order.
fn ids(ruleset: &Value, kind: &str) -> Vec<String> {
    ruleset[kind]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r["rule_id"].as_str().expect("a rule id").to_string())
        .collect()
}

/// The content of the `m.push_rules` account data in a sync response, if it has one.
fn push_rules_in(sync: &Value) -> Option<Value> {
    sync["account_data"]["events"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "m.push_rules")
        .map(|e| e["content"].clone())
}

fn rule(kind: &str, id: &str) -> String {
    format!("/pushrules/global/{kind}/{}", enc(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_has_the_server_default_rules_everywhere_a_client_looks() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;

    let all = alice.get("/pushrules/").await.ok();
    let global = &all["global"];
    let overrides = ids(global, "override");
    assert_eq!(
        &overrides[..3],
        [
            ".m.rule.master",
            ".m.rule.suppress_notices",
            ".m.rule.invite_for_me"
        ]
    );
    assert!(overrides.contains(&".m.rule.is_user_mention".into()));
    assert_eq!(
        ids(global, "underride").last().map(String::as_str),
        Some(".m.rule.encrypted")
    );
    // The user's own id is in the rules that name them.
    let invite = &global["override"][2];
    assert_eq!(invite["conditions"][2]["pattern"], alice.user_id);
    // The same under /pushrules/global/, under r0, and without the trailing slash.
    assert_eq!(alice.get("/pushrules/global/").await.ok(), *global);
    assert_eq!(alice.get("/_matrix/client/r0/pushrules/").await.ok(), all);
    assert_eq!(alice.get("/pushrules").await.ok(), all);
    // And in the first sync, and as account data.
    let first = alice.sync(None, 0).await;
    assert_eq!(push_rules_in(&first), Some(all.clone()));
    let path = format!("/user/{}/account_data/m.push_rules", enc(&alice.user_id));
    assert_eq!(alice.get(&path).await.ok(), all);
    // One rule, its enabled and its actions.
    let master = alice.get(&rule("override", ".m.rule.master")).await.ok();
    assert_eq!(master["default"], true);
    let enabled = alice
        .get(&format!("{}/enabled", rule("override", ".m.rule.master")))
        .await
        .ok();
    assert_eq!(enabled, json!({"enabled": false}));
    let actions = alice
        .get(&format!("{}/actions", rule("underride", ".m.rule.message")))
        .await
        .ok();
    assert_eq!(actions, json!({"actions": ["notify"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_added_placed_changed_and_deleted_and_each_change_reaches_sync() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let since = alice.sync(None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_string();

    let cake = json!({"pattern": "cake*lie", "actions": ["notify"]});
    alice.put(&rule("content", "cake"), cake.clone()).await.ok();
    let placed = format!("{}?after=cake", rule("content", "pie"));
    alice
        .put(&placed, json!({"pattern": "pie", "actions": []}))
        .await
        .ok();
    let first = format!("{}?before=cake", rule("content", "tart"));
    alice
        .put(&first, json!({"pattern": "tart", "actions": []}))
        .await
        .ok();
    let room_rule = rule("room", "!quiet:localhost");
    alice.put(&room_rule, json!({"actions": []})).await.ok();
    let sender_rule = rule("sender", "@boss:localhost");
    let loud = json!({"actions": ["notify", {"set_tweak": "sound", "value": "default"}]});
    alice.put(&sender_rule, loud.clone()).await.ok();

    let all = alice.get("/pushrules/").await.ok();
    assert_eq!(ids(&all["global"], "content"), ["tart", "cake", "pie"]);
    assert_eq!(ids(&all["global"], "room"), ["!quiet:localhost"]);
    let got = alice.get(&rule("content", "cake")).await.ok();
    assert_eq!(got["pattern"], "cake*lie");
    assert_eq!(got["enabled"], true);
    assert_eq!(got["default"], false);
    assert_eq!(
        alice.get(&sender_rule).await.ok()["actions"],
        loud["actions"]
    );

    // The next sync carries the changed rules.
    let next = alice.sync(Some(&since), 0).await;
    assert_eq!(push_rules_in(&next), Some(all));

    // Disabling, new actions, deleting.
    let enabled = format!("{}/enabled", rule("content", "cake"));
    alice.put(&enabled, json!({"enabled": false})).await.ok();
    assert_eq!(alice.get(&enabled).await.ok(), json!({"enabled": false}));
    let master = format!("{}/enabled", rule("override", ".m.rule.master"));
    alice.put(&master, json!({"enabled": true})).await.ok();
    assert_eq!(alice.get(&master).await.ok(), json!({"enabled": true}));
    let actions = format!("{}/actions", rule("underride", ".m.rule.message"));
    alice.put(&actions, json!({"actions": []})).await.ok();
    assert_eq!(alice.get(&actions).await.ok(), json!({"actions": []}));
    alice.delete(&rule("content", "pie"), json!({})).await.ok();
    alice
        .get(&rule("content", "pie"))
        .await
        .err(404, "M_NOT_FOUND");
    // Putting a disabled rule again keeps it disabled.
    alice.put(&rule("content", "cake"), cake).await.ok();
    assert_eq!(alice.get(&enabled).await.ok(), json!({"enabled": false}));

    // Bob's rules are his own.
    let bobs = bob.get("/pushrules/").await.ok();
    assert!(ids(&bobs["global"], "content").is_empty());
    assert_eq!(
        bob.get(&master).await.ok(),
        json!({"enabled": false}),
        "bob's master rule"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_changes_get_the_specs_errors_and_change_nothing() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let notify = json!({"pattern": "x", "actions": ["notify"]});
    let before = alice.get("/pushrules/").await.ok();

    for (path, body, status, errcode) in [
        (rule("global", "x"), notify.clone(), 400, "M_INVALID_PARAM"),
        (
            rule("content", ".mine"),
            notify.clone(),
            400,
            "M_INVALID_PARAM",
        ),
        (
            format!("{}?before=nope", rule("content", "x")),
            notify.clone(),
            400,
            "M_UNKNOWN",
        ),
        (
            format!("{}?after=.m.rule.master", rule("override", "x")),
            json!({"actions": []}),
            400,
            "M_INVALID_PARAM",
        ),
        (
            rule("content", "x"),
            json!({"actions": ["notify"]}),
            400,
            "M_MISSING_PARAM",
        ),
        (
            rule("content", "x"),
            json!({"pattern": "x"}),
            400,
            "M_BAD_JSON",
        ),
        (
            rule("content", "x"),
            json!({"pattern": "x", "actions": "notify"}),
            400,
            "M_BAD_JSON",
        ),
        (
            rule("room", "lobby"),
            notify.clone(),
            400,
            "M_INVALID_PARAM",
        ),
        (
            format!("{}/enabled", rule("content", "never")),
            json!({"enabled": true}),
            404,
            "M_NOT_FOUND",
        ),
        (
            format!("{}/enabled", rule("override", ".m.rule.master")),
            json!({"enabled": "yes"}),
            400,
            "M_BAD_JSON",
        ),
        (
            format!("{}/actions", rule("content", "never")),
            json!({"actions": []}),
            404,
            "M_NOT_FOUND",
        ),
    ] {
        alice.put(&path, body).await.err(status, errcode);
    }
    alice
        .delete(&rule("override", ".m.rule.master"), json!({}))
        .await
        .err(400, "M_INVALID_PARAM");
    alice
        .delete(&rule("content", "never"), json!({}))
        .await
        .err(404, "M_NOT_FOUND");
    alice
        .get(&rule("content", "never"))
        .await
        .err(404, "M_NOT_FOUND");
    assert_eq!(alice.get("/pushrules/").await.ok(), before);

    // The server keeps m.push_rules and m.fully_read: 405 M_BAD_JSON, as the spec says.
    let user = enc(&alice.user_id);
    for kind in ["m.push_rules", "m.fully_read"] {
        alice
            .put(&format!("/user/{user}/account_data/{kind}"), json!({}))
            .await
            .err(405, "M_BAD_JSON");
    }
    assert_eq!(alice.get("/pushrules/").await.ok(), before);
    // Without a token: 401.
    server
        .client()
        .get("/pushrules/")
        .await
        .err(401, "M_MISSING_TOKEN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_sent_at_once_are_all_kept() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..20 {
        let alice: Client = alice.clone();
        puts.spawn(async move {
            let body = json!({"pattern": format!("word{i}"), "actions": ["notify"]});
            alice
                .put(&rule("content", &format!("r{i}")), body)
                .await
                .ok();
        });
    }
    while let Some(done) = puts.join_next().await {
        done.expect("a put");
    }
    let all = alice.get("/pushrules/").await.ok();
    let mut got = ids(&all["global"], "content");
    got.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    want.sort();
    assert_eq!(got, want);
}
