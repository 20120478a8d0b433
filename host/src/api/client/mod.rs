//! The client-server API: every endpoint group in its own file, mounted under `v3` and `r0`,
//! the 2015 `api/v1` paths, and the media paths (v3 and authenticated v1).

mod account;
mod account_data;
mod account_lifecycle;
mod appservice;
mod directory;
mod ephemeral;
mod key_backup;
mod keys;
mod legacy;
mod media;
mod membership;
mod message;
mod mutual_rooms;
mod not_offered;
mod notifications;
mod openid;
mod presence;
mod profile;
mod push_rules;
mod pushers;
mod relations;
mod report;
mod room_upgrade;
mod search;
mod summary;
mod sync;
mod tags;
mod thirdparty;
mod threepid;
mod user_directory;
mod versions;
mod voip;

// The federation routes parse `dir` as the client routes do.
pub(crate) use message::direction;

use axum::routing::{get, post, put};
use axum::Router;

use super::AppState;

/// The endpoints that live under `/_matrix/client/{v3,r0,api/v1}`.
fn versioned() -> Router<AppState> {
    Router::new()
        .route("/capabilities", get(versions::capabilities))
        .route("/register", post(account::register))
        .route("/register/available", get(account::available))
        .route("/login", get(account::login_flows).post(account::login))
        .route("/refresh", post(account::refresh))
        .route("/logout", post(account::logout))
        .route("/logout/all", post(account::logout_all))
        .route(
            "/account/password",
            post(account_lifecycle::change_password),
        )
        .route("/account/deactivate", post(account_lifecycle::deactivate))
        .route("/account/whoami", get(account::whoami))
        .route("/devices", get(account::devices))
        .route(
            "/devices/{device_id}",
            get(account::device)
                .put(account::rename_device)
                .delete(account::delete_device),
        )
        .route("/delete_devices", post(account::delete_devices))
        .route("/createRoom", post(membership::create_room))
        .route("/join/{room}", post(membership::join))
        .route("/knock/{room}", post(membership::knock))
        .route("/rooms/{room_id}/join", post(membership::join_by_id))
        .route("/rooms/{room_id}/upgrade", post(room_upgrade::upgrade))
        .route("/rooms/{room_id}/invite", post(membership::invite))
        .route("/rooms/{room_id}/leave", post(membership::leave))
        .route("/rooms/{room_id}/forget", post(membership::forget))
        .route("/rooms/{room_id}/kick", post(membership::kick))
        .route("/rooms/{room_id}/ban", post(membership::ban))
        .route("/rooms/{room_id}/unban", post(membership::unban))
        .route("/joined_rooms", get(membership::joined_rooms))
        .route(
            "/rooms/{room_id}/joined_members",
            get(membership::joined_members),
        )
        .route("/rooms/{room_id}/members", get(membership::members))
        .route(
            "/rooms/{room_id}/send/{event_type}/{txn_id}",
            put(message::send),
        )
        .route(
            "/rooms/{room_id}/state/{event_type}",
            get(message::get_state_empty_key).put(message::put_state_empty_key),
        )
        // Clients write the empty state key as a trailing slash.
        .route(
            "/rooms/{room_id}/state/{event_type}/",
            get(message::get_state_empty_key).put(message::put_state_empty_key),
        )
        .route(
            "/rooms/{room_id}/state/{event_type}/{*state_key}",
            get(message::get_state).put(message::put_state),
        )
        .route("/rooms/{room_id}/state", get(message::all_state))
        .route(
            "/rooms/{room_id}/redact/{event_id}/{txn_id}",
            put(message::redact),
        )
        .route("/rooms/{room_id}/event/{event_id}", get(message::get_event))
        .route("/rooms/{room_id}/messages", get(message::messages))
        .route(
            "/rooms/{room_id}/initialSync",
            get(message::room_initial_sync),
        )
        .route("/rooms/{room_id}/context/{event_id}", get(message::context))
        .route("/rooms/{room_id}/report", post(report::report_room))
        .route(
            "/rooms/{room_id}/report/{event_id}",
            post(report::report_event),
        )
        .route("/users/{user_id}/report", post(report::report_user))
        .route("/sync", get(sync::sync))
        .route("/user_directory/search", post(user_directory::search))
        .route("/search", post(search::search))
        .route("/thirdparty/protocols", get(thirdparty::protocols))
        .route("/thirdparty/protocol/{protocol}", get(thirdparty::protocol))
        .route(
            "/thirdparty/location/{protocol}",
            get(thirdparty::locations),
        )
        .route("/thirdparty/user/{protocol}", get(thirdparty::users))
        .route("/thirdparty/location", get(thirdparty::location_by_alias))
        .route("/thirdparty/user", get(thirdparty::user_by_id))
        .route(
            "/presence/{user_id}/status",
            get(presence::status).put(presence::set_status),
        )
        .route("/keys/upload", post(keys::upload))
        .route("/keys/query", post(keys::query))
        .route("/keys/claim", post(keys::claim))
        .route("/keys/changes", get(keys::changes))
        .route(
            "/keys/device_signing/upload",
            post(keys::device_signing_upload),
        )
        .route("/keys/signatures/upload", post(keys::signatures_upload))
        .route(
            "/sendToDevice/{event_type}/{txn_id}",
            put(keys::send_to_device),
        )
        .route("/user/{user_id}/filter", post(sync::create_filter))
        .route("/user/{user_id}/filter/{filter_id}", get(sync::get_filter))
        .route(
            "/directory/room/{alias}",
            get(directory::get_alias)
                .put(directory::put_alias)
                .delete(directory::delete_alias),
        )
        .route("/rooms/{room_id}/aliases", get(directory::room_aliases))
        .route(
            "/directory/list/room/{room_id}",
            get(directory::get_visibility).put(directory::put_visibility),
        )
        .route(
            "/publicRooms",
            get(directory::public_rooms).post(directory::public_rooms_post),
        )
        .route("/profile/{user_id}", get(profile::profile))
        .route(
            "/profile/{user_id}/{key_name}",
            get(not_offered::profile_field)
                .put(not_offered::profile_field)
                .delete(not_offered::profile_field),
        )
        .route(
            "/directory/list/appservice/{network_id}/{room_id}",
            put(not_offered::appservice_room_list),
        )
        .route("/events", get(not_offered::peek_events))
        .route("/admin/whois/{user_id}", get(account::whois))
        .route(
            "/profile/{user_id}/displayname",
            get(profile::get_displayname).put(profile::put_displayname),
        )
        .route(
            "/profile/{user_id}/avatar_url",
            get(profile::get_avatar_url).put(profile::put_avatar_url),
        )
        .route("/rooms/{room_id}/typing/{user_id}", put(ephemeral::typing))
        .route(
            "/rooms/{room_id}/receipt/{receipt_type}/{event_id}",
            post(ephemeral::receipt),
        )
        .route(
            "/rooms/{room_id}/read_markers",
            post(ephemeral::read_markers),
        )
        .route(
            "/user/{user_id}/account_data/{event_type}",
            get(account_data::get_global).put(account_data::put_global),
        )
        .route(
            "/user/{user_id}/rooms/{room_id}/account_data/{event_type}",
            get(account_data::get_room).put(account_data::put_room),
        )
        .route("/user/{user_id}/rooms/{room_id}/tags", get(tags::list))
        .route(
            "/user/{user_id}/rooms/{room_id}/tags/{tag}",
            put(tags::put).delete(tags::delete),
        )
        .route(
            "/room_keys/version",
            get(key_backup::current_version).post(key_backup::create_version),
        )
        .route(
            "/room_keys/version/{version}",
            get(key_backup::get_version)
                .put(key_backup::put_version)
                .delete(key_backup::delete_version),
        )
        .route(
            "/room_keys/keys",
            get(key_backup::all)
                .put(key_backup::put_all)
                .delete(key_backup::all),
        )
        .route(
            "/room_keys/keys/{room_id}",
            get(key_backup::room)
                .put(key_backup::put_room)
                .delete(key_backup::room),
        )
        .route(
            "/room_keys/keys/{room_id}/{session_id}",
            get(key_backup::session)
                .put(key_backup::put_session)
                .delete(key_backup::session),
        )
        .route("/voip/turnServer", get(voip::turn_server))
        .route("/login/sso/redirect", get(not_offered::sso_redirect))
        .route(
            "/login/sso/redirect/{idp_id}",
            get(not_offered::sso_redirect),
        )
        .route(
            "/user/{user_id}/openid/request_token",
            post(openid::request_token),
        )
        .route("/account/3pid", get(threepid::list))
        .route("/account/3pid/add", post(threepid::add_or_bind))
        .route("/account/3pid/bind", post(threepid::add_or_bind))
        .route("/account/3pid/delete", post(threepid::remove))
        .route("/account/3pid/unbind", post(threepid::remove))
        .route(
            "/account/3pid/email/requestToken",
            post(threepid::request_token),
        )
        .route(
            "/account/3pid/msisdn/requestToken",
            post(threepid::request_token),
        )
        .route(
            "/register/email/requestToken",
            post(threepid::request_token),
        )
        .route(
            "/register/msisdn/requestToken",
            post(threepid::request_token),
        )
        .route(
            "/account/password/email/requestToken",
            post(threepid::request_token),
        )
        .route(
            "/account/password/msisdn/requestToken",
            post(threepid::request_token),
        )
        .route("/notifications", get(notifications::list))
        .route("/pushers", get(pushers::list))
        .route("/pushers/set", post(pushers::set))
        .route("/pushrules/", get(push_rules::all))
        .route("/pushrules", get(push_rules::all))
        .route("/pushrules/global/", get(push_rules::global))
        .route(
            "/pushrules/global/{kind}/{rule_id}",
            get(push_rules::get_rule)
                .put(push_rules::put_rule)
                .delete(push_rules::delete_rule),
        )
        .route(
            "/pushrules/global/{kind}/{rule_id}/{attribute}",
            get(push_rules::get_attribute).put(push_rules::put_attribute),
        )
}

/// The endpoints the spec has only under `/_matrix/client/v1`.
fn v1_only() -> Router<AppState> {
    let relations = get(relations::relations);
    Router::new()
        .route("/rooms/{room_id}/relations/{event_id}", relations.clone())
        .route(
            "/rooms/{room_id}/relations/{event_id}/{rel_type}",
            relations.clone(),
        )
        .route(
            "/rooms/{room_id}/relations/{event_id}/{rel_type}/{event_type}",
            relations,
        )
        .route("/rooms/{room_id}/threads", get(relations::threads))
        .route(
            "/admin/suspend/{user_id}",
            get(not_offered::suspend_or_lock).put(not_offered::suspend_or_lock),
        )
        .route(
            "/admin/lock/{user_id}",
            get(not_offered::suspend_or_lock).put(not_offered::suspend_or_lock),
        )
        .route("/login/get_token", post(not_offered::login_token))
        .route("/rooms/{room_id}/hierarchy", get(summary::hierarchy))
        .route(
            "/rooms/{room_id}/timestamp_to_event",
            get(message::timestamp_to_event),
        )
        .route(
            "/room_summary/{room_id_or_alias}",
            get(summary::room_summary),
        )
}

/// The media endpoints under `/_matrix/media/{v3,r0}` and `/_matrix/client/v1/media`.
fn media_routes() -> Router<AppState> {
    Router::new()
        .route("/upload", post(media::upload))
        .route("/config", get(media::config))
        .route("/download/{server}/{media_id}", get(media::download))
        .route(
            "/download/{server}/{media_id}/{filename}",
            get(media::download_named),
        )
        .route("/thumbnail/{server}/{media_id}", get(media::thumbnail))
        .route("/preview_url", get(not_offered::preview_url))
        .route(
            "/upload/{server}/{media_id}",
            put(not_offered::async_upload),
        )
}

pub(crate) fn router() -> Router<AppState> {
    let v = versioned();
    Router::new()
        .route("/_matrix/client/versions", get(versions::versions))
        .route("/.well-known/matrix/client", get(versions::well_known))
        .route("/.well-known/matrix/support", get(versions::support))
        .route(
            "/.well-known/matrix/policy_server",
            get(versions::policy_server),
        )
        .route(
            "/_matrix/client/v1/auth_metadata",
            get(not_offered::auth_metadata),
        )
        .route(
            "/_matrix/client/v1/mutual_rooms",
            get(mutual_rooms::mutual_rooms),
        )
        .route(
            "/_matrix/client/v1/register/m.login.registration_token/validity",
            get(account::registration_token_validity),
        )
        .route(
            "/_matrix/client/v1/appservice/{appservice_id}/ping",
            post(appservice::ping),
        )
        .nest("/_matrix/client/v1", v1_only())
        .nest("/_matrix/client/v3", v.clone())
        .nest("/_matrix/client/r0", v.clone())
        .nest(
            "/_matrix/client/api/v1",
            v.route(
                "/rooms/{room_id}/send/{event_type}",
                post(legacy::send_without_txn),
            ),
        )
        .route("/_matrix/media/v1/create", post(not_offered::async_upload))
        .nest("/_matrix/media/v3", media_routes())
        .nest("/_matrix/media/r0", media_routes())
}

/// The authenticated media paths need the state for their token check.
pub(crate) fn authenticated_media(state: AppState) -> Router<AppState> {
    Router::new().nest(
        "/_matrix/client/v1/media",
        media_routes().route_layer(axum::middleware::from_fn_with_state(
            state,
            media::require_auth,
        )),
    )
}
