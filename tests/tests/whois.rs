//! `GET /admin/whois/{userId}` end to end: a user's devices and where each was last seen, for
//! a server admin and for the user themself, and no one else.

use plugboard_tests::{enc, TestServer};

const BINARY: &str = env!("CARGO_BIN_EXE_plugboard-test-server");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whois_lists_a_users_devices_for_an_admin_or_themself_only() {
    let server = TestServer::start().await;
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    let path = format!("/admin/whois/{}", enc(&alice.user_id));

    let own = alice.get(&path).await.ok();
    assert_eq!(own["user_id"], alice.user_id.as_str());
    let device = &own["devices"][&alice.device_id];
    let connections = device["sessions"][0]["connections"]
        .as_array()
        .unwrap_or_else(|| panic!("{own}"));
    assert_eq!(connections.len(), 1, "{own}");
    assert_eq!(own["devices"].as_object().unwrap().len(), 1);

    bob.get(&path).await.err(403, "M_FORBIDDEN");
    let root = server.server_admin(BINARY, "root").await;
    let seen_by_admin = root.get(&path).await.ok();
    assert_eq!(seen_by_admin["devices"], own["devices"]);
    root.get("/admin/whois/%40nobody%3Alocalhost")
        .await
        .err(404, "M_NOT_FOUND");
}
