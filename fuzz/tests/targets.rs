//! One test per fuzz target: the corpus replayed, then mutated and generated inputs for the
//! budget (see the crate's docs: `FUZZ_SECONDS`, `FUZZ_CASES`).

use plugboard_fuzz::run;

#[test]
fn canonical_json_is_a_sorted_fixed_point_for_every_json_text() {
    run(&plugboard_fuzz::canonical_json::TARGET);
}

#[test]
fn events_are_read_served_redacted_and_checked_without_a_panic() {
    run(&plugboard_fuzz::event::TARGET);
}

#[test]
fn registration_yaml_is_read_or_refused_with_the_file_named() {
    run(&plugboard_fuzz::registration::TARGET);
}

#[test]
fn plugin_manifests_are_read_or_refused_with_the_field_named() {
    run(&plugboard_fuzz::manifest::TARGET);
}

#[test]
fn filters_are_read_within_bounds_or_refused_as_bad_json() {
    run(&plugboard_fuzz::filter::TARGET);
}

#[test]
fn sync_tokens_that_parse_print_back_to_themselves() {
    run(&plugboard_fuzz::sync_token::TARGET);
}
