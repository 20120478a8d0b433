//! Plugboard and Synapse 1.163 (from PyPI, started by the harness) federating on loopback.
//! One Synapse serves the whole test binary; each test makes its own users and rooms.

use plugboard_tests::{synapse, Client};

#[tokio::test]
async fn the_synapse_peer_runs_on_loopback_under_an_ip_literal_server_name() {
    let synapse = tokio::task::spawn_blocking(synapse::shared)
        .await
        .expect("Synapse starts");
    let alice = Client::new(&synapse.client_base)
        .register("alice", "password")
        .await;
    assert_eq!(alice.user_id, format!("@alice:{}", synapse.server_name));
    assert!(synapse.server_name.starts_with("127.0.0.1:"));
}
