//! A hook's virtual user, `@_webhook_{name}`: registered the first time it posts, joined to
//! its room then, and shown in that room with the `username` and `icon_url` of what it
//! posts (a room's own member event, so one hook's look never leaks into another room).

use plugboard_sdk::{homeserver, http, kv, log, Error};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::hooks::localpart;

/// How the virtual user should look in the room for one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub displayname: String,
    pub avatar_url: Option<String>,
}

/// What the plugin last made of the virtual user in one room.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Presence {
    joined: bool,
    displayname: Option<String>,
    avatar_url: Option<String>,
}

/// The last web icon a hook used and its copy in the media repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Icon {
    url: String,
    mxc: String,
}

/// The biggest icon fetched from the web.
const MAX_ICON_BYTES: usize = 1 << 20;
/// The longest `mxc://` URI taken as it is.
const MAX_MXC: usize = 255;

fn presence_key(room: &str, name: &str) -> String {
    format!("member/{room}/{name}")
}

fn icon_key(room: &str, name: &str) -> String {
    format!("icon/{room}/{name}")
}

/// The virtual user of hook `name`, registered if it is not yet.
pub fn user(name: &str) -> Result<String, Error> {
    let flag = format!("user/{name}");
    let local = localpart(name);
    if kv::get(&flag)?.is_some() {
        return Ok(format!("@{local}:{}", homeserver::server_name()));
    }
    let user = homeserver::ensure_user(&local)?;
    if let Err(e) = homeserver::set_displayname(Some(&user), Some(name)) {
        log::warn(&format!("cannot name {user}: {e:?}"));
    }
    kv::set(&flag, b"1")?;
    Ok(user)
}

/// Makes `user` (hook `name`'s) a member of `room` looking like `look`.
pub fn ready(room: &str, name: &str, user: &str, look: &Look) -> Result<(), Error> {
    let key = presence_key(room, name);
    let mut p: Presence = kv::get_json(&key)?.unwrap_or_default();
    if !p.joined {
        join(room, user)?;
        p = Presence {
            joined: true,
            ..Presence::default()
        };
    }
    if p.displayname.as_deref() != Some(look.displayname.as_str())
        || p.avatar_url != look.avatar_url
    {
        let mut content = json!({"membership": "join", "displayname": look.displayname});
        if let Some(a) = &look.avatar_url {
            content["avatar_url"] = json!(a);
        }
        homeserver::send_state(Some(user), room, "m.room.member", user, &content)?;
        p.displayname = Some(look.displayname.clone());
        p.avatar_url = look.avatar_url.clone();
    }
    kv::set_json(&key, &p)
}

/// The virtual user is not in the room after all (kicked, left): join again next time.
pub fn rejoin_next_time(room: &str, name: &str) -> Result<(), Error> {
    kv::delete(&presence_key(room, name)).map(drop)
}

/// Forgets what the plugin knew of hook `name` in `room` (it was revoked).
pub fn forget(room: &str, name: &str) -> Result<(), Error> {
    kv::delete(&presence_key(room, name))?;
    kv::delete(&icon_key(room, name))?;
    Ok(())
}

/// Joins directly when the room lets anyone in, else after an invite from the plugin's
/// sender (which must be in the room).
fn join(room: &str, user: &str) -> Result<(), Error> {
    match homeserver::join(Some(user), room) {
        Ok(_) => Ok(()),
        Err(e) if e.is("M_FORBIDDEN") => {
            homeserver::invite(None, room, user)?;
            homeserver::join(Some(user), room).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// The avatar for a post's `icon_url`: an `mxc://` URI as it is; a web image fetched
/// through the allow-list and uploaded (once per hook and URL); anything else, or a fetch
/// that fails, no avatar (counted), since the message matters more than its icon.
pub fn avatar(room: &str, name: &str, user: &str, icon_url: Option<&str>) -> Option<String> {
    let url = icon_url?.trim();
    if let Some(rest) = url.strip_prefix("mxc://") {
        if url.len() <= MAX_MXC && rest.contains('/') {
            return Some(url.to_string());
        }
        crate::count("icon_bad");
        return None;
    }
    if http::split_url(url).is_err() {
        crate::count("icon_bad");
        return None;
    }
    let key = icon_key(room, name);
    if let Ok(Some(cached)) = kv::get_json::<Icon>(&key) {
        if cached.url == url {
            return Some(cached.mxc);
        }
    }
    match fetch_icon(url, user) {
        Ok(mxc) => {
            let icon = Icon {
                url: url.to_string(),
                mxc: mxc.clone(),
            };
            if let Err(e) = kv::set_json(&key, &icon) {
                log::warn(&format!("cannot keep the icon of {name}: {e:?}"));
            }
            Some(mxc)
        }
        Err(e) => {
            log::info(&format!("icon_url of hook {name} ignored: {}", e.message));
            crate::count("icon_unfetched");
            None
        }
    }
}

fn fetch_icon(url: &str, user: &str) -> Result<String, Error> {
    let r = http::fetch(&http::Request::get(url))?;
    if r.status != 200 {
        return Err(Error::unknown(format!("{url} answered {}", r.status)));
    }
    let content_type = r
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    if !content_type.starts_with("image/") {
        return Err(Error::unknown(format!(
            "{url} is not an image ({content_type})"
        )));
    }
    if r.body.is_empty() || r.body.len() > MAX_ICON_BYTES {
        return Err(Error::unknown(format!(
            "{url} is empty or larger than {MAX_ICON_BYTES} bytes"
        )));
    }
    homeserver::upload_media(Some(user), &content_type, None, &r.body)
}
