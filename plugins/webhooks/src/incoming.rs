//! The incoming hook endpoint, `POST /_plugboard/plugins/webhooks/hooks/{token}`: a
//! Slack-compatible body (`text`, optional `username` and `icon_url`; as JSON, or as the
//! `payload` field of a form) posted into the hook's room by its virtual user, with the
//! Markdown of `text` as `formatted_body`. What is wrong gets a Matrix error body and is
//! counted; a token that is not a live hook's gets 404 and nothing is posted.

use plugboard_sdk::message::Content;
use plugboard_sdk::{homeserver, log, Error, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::hooks::{self, Hook};
use crate::markdown;
use crate::puppet::{self, Look};
use crate::settings::Settings;

/// The longest `username` taken (a display name).
const MAX_USERNAME: usize = 128;
/// The longest `icon_url` taken.
const MAX_ICON_URL: usize = 2048;

/// One post, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    pub text: String,
    pub username: Option<String>,
    pub icon_url: Option<String>,
}

/// Why a request was refused: its status, errcode, message, and the counter it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub errcode: &'static str,
    pub message: String,
    pub counter: &'static str,
}

impl Refusal {
    fn new(status: u16, errcode: &'static str, counter: &'static str, message: &str) -> Self {
        Refusal {
            status,
            errcode,
            message: message.to_string(),
            counter,
        }
    }

    fn response(&self) -> HttpResponse {
        crate::count(self.counter);
        HttpResponse::error(self.status, self.errcode, &self.message)
    }
}

/// Answers a request to the plugin's web endpoints.
pub fn handle(settings: &Settings, request: &HttpRequest) -> HttpResponse {
    let Some(token) = request.path.strip_prefix("/hooks/") else {
        return Refusal::new(
            404,
            "M_UNRECOGNIZED",
            "http_unknown_path",
            "no such endpoint",
        )
        .response();
    };
    let hook = match hooks::find(token) {
        Ok(Some(hook)) => hook,
        Ok(None) => {
            return Refusal::new(404, "M_NOT_FOUND", "http_bad_token", "no such webhook").response()
        }
        Err(e) => return internal("finding the hook", &e),
    };
    if !request.method.eq_ignore_ascii_case("POST") {
        let mut r = Refusal::new(
            405,
            "M_UNRECOGNIZED",
            "http_method",
            "a webhook takes POST only",
        )
        .response();
        r.headers.push(("allow".into(), "POST".into()));
        return r;
    }
    let post = match parse(settings, request) {
        Ok(p) => p,
        Err(refusal) => return refusal.response(),
    };
    match publish(&hook, &post) {
        Ok(event_id) => {
            crate::count_done("posted");
            HttpResponse::json(200, &json!({"ok": true, "event_id": event_id}))
        }
        Err(e) if e.is("M_FORBIDDEN") => {
            crate::count("post_forbidden");
            HttpResponse::error(
                403,
                "M_FORBIDDEN",
                &format!("the webhook's user cannot post in its room: {}", e.message),
            )
        }
        Err(e) if e.is("M_TOO_LARGE") => {
            crate::count("http_too_large");
            HttpResponse::error(413, "M_TOO_LARGE", "the message is too large for one event")
        }
        Err(e) => internal("posting", &e),
    }
}

fn internal(what: &str, e: &Error) -> HttpResponse {
    log::warn(&format!("webhook request failed {what}: {e:?}"));
    HttpResponse::error(500, "M_UNKNOWN", "the webhook could not post; try again")
}

/// The post in a request body, or why it is refused.
pub fn parse(settings: &Settings, request: &HttpRequest) -> Result<Post, Refusal> {
    let form = request.header("content-type").is_some_and(|t| {
        t.trim_start()
            .starts_with("application/x-www-form-urlencoded")
    });
    // Slack's form body has the JSON in `payload`; `curl -d '{…}'` sends plain JSON with a
    // form content type, which is taken as it is.
    let payload = form
        .then(|| {
            form_urlencoded::parse(&request.body)
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| v.into_owned())
        })
        .flatten();
    let parsed = match &payload {
        Some(p) => serde_json::from_str::<Value>(p),
        None => serde_json::from_slice::<Value>(&request.body),
    };
    let value = parsed
        .map_err(|_| Refusal::new(400, "M_NOT_JSON", "http_not_json", "the body is not JSON"))?;
    let Value::Object(body) = value else {
        return Err(bad("the body must be a JSON object"));
    };
    let text = match body.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => t,
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(bad("`text` is required: the message to post"))
        }
        Some(_) => return Err(bad("`text` must be a string")),
    };
    if text.len() > settings.max_text_bytes {
        return Err(Refusal::new(
            413,
            "M_TOO_LARGE",
            "http_too_large",
            &format!("`text` is longer than {} bytes", settings.max_text_bytes),
        ));
    }
    let username = optional(&body, "username", MAX_USERNAME)?
        .map(|u| u.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    let icon_url = optional(&body, "icon_url", MAX_ICON_URL)?;
    Ok(Post {
        text: text.clone(),
        username,
        icon_url,
    })
}

fn bad(message: &str) -> Refusal {
    Refusal::new(400, "M_BAD_JSON", "http_bad_json", message)
}

/// An optional string field of at most `max` characters.
fn optional(
    body: &serde_json::Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, Refusal> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= max => {
            Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty()))
        }
        Some(Value::String(_)) => Err(bad(&format!("`{key}` is longer than {max} characters"))),
        Some(_) => Err(bad(&format!("`{key}` must be a string"))),
    }
}

/// Posts into the hook's room as its virtual user; answers the event id.
fn publish(hook: &Hook, post: &Post) -> Result<String, Error> {
    let user = puppet::user(&hook.name)?;
    let avatar_url = puppet::avatar(&hook.room, &hook.name, &user, post.icon_url.as_deref());
    let look = Look {
        displayname: post.username.clone().unwrap_or_else(|| hook.name.clone()),
        avatar_url,
    };
    // No one is notified by what a hook's text happens to contain (`@room`, names).
    let mut content = Content::text(&post.text).with("m.mentions", json!({}));
    if let Some(html) = markdown::to_html(&post.text) {
        content = content.html(html);
    }
    let mut last = None;
    for _ in 0..2 {
        puppet::ready(&hook.room, &hook.name, &user, &look)?;
        match homeserver::send_message(Some(&user), &hook.room, content.clone()) {
            Ok(id) => return Ok(id),
            // Kicked or left since it last posted: join again, once.
            Err(e) if e.is("M_FORBIDDEN") => {
                puppet::rejoin_next_time(&hook.room, &hook.name)?;
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::unknown("the post was not sent")))
}
