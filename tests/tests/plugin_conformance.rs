//! The SDK's conformance cases (`plugboard_sdk::testing::conformance`) against the real
//! host: the same table the SDK's unit test runs against the harness's fake host, run here
//! inside a server by the conformance plugin, one case per call. A case that answers
//! otherwise here than in the fake is a drift between the two hosts.

use plugboard_tests::plugins::{self, admin, install};
use plugboard_tests::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_host_answers_every_conformance_case_as_the_table_says() {
    let server = TestServer::start().await;
    let admin = admin(&server.base, server.data_dir.path());
    install(&admin, &plugins::conformance()).await;
    let client = server.client();
    let cases = client
        .get("/_plugboard/plugins/conformance/cases")
        .await
        .ok()["cases"]
        .as_u64()
        .expect("the number of cases");
    assert!(cases >= 17, "the table has its cases: {cases}");
    let mut drifts = Vec::new();
    for i in 0..cases {
        let report = client
            .get(&format!("/_plugboard/plugins/conformance/case/{i}"))
            .await
            .ok();
        if report["agrees"] != true {
            drifts.push(report);
        }
    }
    assert!(drifts.is_empty(), "{drifts:#?}");
    let view = plugins::show(&admin, "conformance").await;
    assert_eq!(
        view["kv_bytes"], 0,
        "the cases leave the store empty: {view}"
    );
}
