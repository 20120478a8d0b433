//! Query parameters: malformed ones are `M_INVALID_PARAM`.

use super::*;

#[tokio::test]
async fn rejects_bad_query_parameters_with_invalid_param() {
    let w = world().await;
    let r = enc(&w.room);
    for path in [
        format!("/rooms/{r}/messages?limit=-1"),
        format!("/rooms/{r}/messages?limit=ten"),
        format!("/rooms/{r}/messages?dir=sideways"),
        format!("/rooms/{r}/messages?from=nonsense"),
        // t-N names backfilled history; these are no token.
        format!("/rooms/{r}/messages?from=t-0"),
        format!("/rooms/{r}/messages?from=t--5"),
        // No sync position is negative: the server never writes such a token.
        format!("/rooms/{r}/messages?from=s-9223372036854775808_0&dir=b"),
        format!("/rooms/{r}/messages?to=s1"),
        "/sync?timeout=-5".to_string(),
        "/sync?timeout=soon".into(),
        "/sync?since=garbage".into(),
        "/sync?since=s1".into(),
        "/sync?since=s_".into(),
        "/sync?since=s-9223372036854775808_0&timeout=0".into(),
        "/sync?full_state=yes".into(),
        "/publicRooms?limit=-3".into(),
        "/publicRooms?since=abc".into(),
        "/_matrix/media/v3/thumbnail/localhost/abc?width=a&height=1".into(),
        "/_matrix/media/v3/thumbnail/localhost/abc".into(),
        "/_matrix/media/v3/thumbnail/localhost/abc?width=1&height=1&method=stretch".into(),
    ] {
        let reply = w.alice.get(&path).await;
        expect_error(&reply, 400, "M_INVALID_PARAM", &format!("GET {path}"));
    }
    // Extreme but well-formed values are clamped, not errors.
    for path in [
        format!("/rooms/{r}/messages?limit=18446744073709551615"),
        format!("/rooms/{r}/messages?limit=0"),
        format!("/rooms/{r}/messages?from=t9223372036854775807&dir=b"),
        format!("/rooms/{r}/messages?from=s9223372036854775807_0&dir=f"),
        "/publicRooms?limit=18446744073709551615".into(),
        "/publicRooms?since=18446744073709551615".into(),
        "/publicRooms?since=18446744073709551615&limit=18446744073709551615".into(),
        "/sync?since=s9223372036854775807_18446744073709551615&timeout=0".into(),
        "/sync?timeout=18446744073709551615&since=s0_0&filter=%7B%7D&full_state=true".into(),
    ] {
        let reply = tokio::time::timeout(WAIT, w.alice.get(&path))
            .await
            .unwrap_or_else(|_| panic!("GET {path} did not answer in time"));
        assert_eq!(reply.status.as_u16(), 200, "GET {path}: {}", reply.body);
    }
    let reply = w
        .server
        .client()
        .post(
            "/publicRooms",
            json!({"since": "18446744073709551615", "limit": 5}),
        )
        .await;
    expect_error(
        &reply,
        401,
        "M_MISSING_TOKEN",
        "POST publicRooms without a token",
    );
    let reply = w
        .alice
        .post(
            "/publicRooms",
            json!({"since": "18446744073709551615", "limit": 18446744073709551615u64}),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    // A typing time-out past the spec's integers is refused, not an overflow (a large one
    // within them is capped: spec_input.rs).
    let reply = w
        .alice
        .put(
            &format!("/rooms/{r}/typing/{}", enc(&w.alice.user_id)),
            json!({"typing": true, "timeout": 18446744073709551615u64}),
        )
        .await;
    expect_error(&reply, 400, "M_BAD_JSON", "a typing time-out of 2^64 - 1");
    assert_alive(&w.server, &w.alice).await;
}
