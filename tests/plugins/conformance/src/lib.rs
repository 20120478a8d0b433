//! The conformance cases of `plugboard_sdk::testing::conformance`, exported as a plugin so
//! that they run against the real host: `GET /_plugboard/plugins/conformance/case/N` runs
//! case `N` inside the server and answers whether it agreed with the table.

plugboard_sdk::export_plugin!(plugboard_sdk::testing::conformance::Conformance);
