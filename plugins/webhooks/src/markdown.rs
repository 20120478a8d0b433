//! A hook's Markdown `text` as Matrix HTML (`formatted_body`), with `pulldown-cmark`. Raw
//! HTML in the input is shown as text, links keep only safe schemes and images become
//! links, so a hook cannot inject markup into the room.

use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// The HTML of `text`, or `None` when it is plain text that needs none.
pub fn to_html(text: &str) -> Option<String> {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TABLES);
    let events: Vec<Event<'_>> = Parser::new_ext(text, options).map(safe).collect();
    if is_plain(&events) {
        return None;
    }
    let mut out = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    Some(out.trim_end().to_string())
}

/// One event with raw HTML turned into text, link targets checked, web images made links
/// (`formatted_body` images must be `mxc://`) and line breaks kept as chat users expect.
fn safe(event: Event<'_>) -> Event<'_> {
    match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::SoftBreak => Event::HardBreak,
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image { dest_url, .. }) => Event::Start(Tag::Link {
            link_type: LinkType::Inline,
            dest_url: safe_url(dest_url),
            title: CowStr::Borrowed(""),
            id: CowStr::Borrowed(""),
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    }
}

/// Whether the text was one paragraph of words and line breaks: its body says it all.
fn is_plain(events: &[Event<'_>]) -> bool {
    let paragraphs = events
        .iter()
        .filter(|e| matches!(e, Event::Start(Tag::Paragraph)))
        .count();
    paragraphs <= 1
        && events.iter().all(|e| {
            matches!(
                e,
                Event::Start(Tag::Paragraph)
                    | Event::End(TagEnd::Paragraph)
                    | Event::Text(_)
                    | Event::HardBreak
            )
        })
}

/// `url` when its scheme is one a chat client may follow, else an empty link.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim_start().to_ascii_lowercase();
    let scheme_ok = ["https://", "http://", "mailto:", "matrix:", "mxc://"]
        .iter()
        .any(|s| lower.starts_with(s));
    // A relative link has no scheme: nothing before a `:` that comes before any `/`.
    let relative = match lower.find(':') {
        None => true,
        Some(colon) => lower.find(['/', '?', '#']).is_some_and(|i| i < colon),
    };
    if scheme_ok || relative {
        url
    } else {
        CowStr::Borrowed("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_needs_no_html() {
        assert_eq!(to_html("build 42 passed"), None);
        assert_eq!(to_html("  trailing space  "), None);
        assert_eq!(to_html("two\nlines"), None);
    }

    #[test]
    fn line_breaks_stay_breaks() {
        assert_eq!(
            to_html("**a**\nb").unwrap(),
            "<p><strong>a</strong><br />\nb</p>"
        );
    }

    #[test]
    fn markdown_becomes_html_with_its_links() {
        let html = to_html("**Build** passed: [log](https://ci.example.org/42)").unwrap();
        assert_eq!(
            html,
            "<p><strong>Build</strong> passed: <a href=\"https://ci.example.org/42\">log</a></p>"
        );
    }

    #[test]
    fn raw_html_is_shown_as_text_not_markup() {
        assert_eq!(to_html("hi <script>alert(1)</script>"), None);
        let html = to_html("*hi* <script>alert(1)</script> <b onclick=x>b</b>").unwrap();
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b "), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        let block = to_html("<div>\n<img src=x onerror=alert(1)>\n</div>").unwrap();
        assert!(
            !block.contains("<div") && !block.contains("<img"),
            "{block}"
        );
    }

    #[test]
    fn dangerous_link_schemes_are_dropped() {
        let html = to_html("[click](javascript:alert(1)) [ok](/relative)").unwrap();
        assert!(!html.contains("javascript"), "{html}");
        assert!(html.contains("href=\"/relative\""), "{html}");
        let data = to_html("[x](DATA:text/html;base64,AAAA)").unwrap();
        assert!(!data.to_ascii_lowercase().contains("data:"), "{data}");
    }

    #[test]
    fn images_of_the_web_become_links() {
        let html = to_html("![logo](https://example.org/logo.png)").unwrap();
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("<a href=\"https://example.org/logo.png\">logo</a>"),
            "{html}"
        );
    }
}
