//! Registration, login, logout, whoami and devices.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as Reply;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::error::ApiResult;
use crate::api::extract::{AccessToken, Auth, ClientIp, Json, Path, Query};
use crate::api::fields::object;
use crate::api::AppState;
use crate::service::appservice::identity::NewLogin;
use crate::service::ratelimit::Action;
use crate::service::users::Login;
use crate::service::Error;

/// The registration and login type of an application service, which authenticates with its
/// `as_token` instead of a password.
const APPSERVICE_TYPE: &str = "m.login.application_service";

#[derive(Deserialize)]
pub(crate) struct RegisterBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    username: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
    #[serde(default, deserialize_with = "object")]
    auth: Option<Value>,
    #[serde(default)]
    refresh_token: bool,
}

/// `?kind=` of a registration: the spec's two kinds of account.
#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    User,
    Guest,
}

#[derive(Deserialize)]
pub(crate) struct KindQuery {
    kind: Option<Kind>,
}

fn login_body(s: &AppState, l: Login) -> Reply<Value> {
    let mut body = json!({ "user_id": l.user_id, "home_server": s.server_name() });
    if let Some(t) = l.access_token {
        body["access_token"] = json!(t);
    }
    if let Some(d) = l.device_id {
        body["device_id"] = json!(d);
    }
    if let (Some(t), Some(ms)) = (l.refresh_token, l.expires_in_ms) {
        body["refresh_token"] = json!(t);
        body["expires_in_ms"] = json!(ms);
    }
    Reply(body)
}

/// The login a client asked for: with a refresh token (and an expiring access token) when
/// its body said `refresh_token: true`.
async fn refreshable(s: &AppState, login: Login, refresh_token: bool) -> Result<Login, Error> {
    if refresh_token {
        s.users.with_refresh_token(login).await
    } else {
        Ok(login)
    }
}

#[derive(Deserialize)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

/// POST /refresh: no access token (it may have expired), the refresh token is the proof.
pub(crate) async fn refresh(
    State(s): State<AppState>,
    Json(body): Json<RefreshBody>,
) -> ApiResult<Reply<Value>> {
    let login = s.users.refresh(&body.refresh_token).await?;
    Ok(Reply(json!({
        "access_token": login.access_token,
        "refresh_token": login.refresh_token,
        "expires_in_ms": login.expires_in_ms,
    })))
}

/// POST /register
pub(crate) async fn register(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    AccessToken(token): AccessToken,
    Query(q): Query<KindQuery>,
    Json(body): Json<RegisterBody>,
) -> ApiResult<Reply<Value>> {
    if q.kind == Some(Kind::Guest) {
        return Err(Error::GuestAccessForbidden("guest access is disabled".into()).into());
    }
    let auth_type = body.auth.as_ref().and_then(|a| a["type"].as_str());
    if body.kind.as_deref() == Some(APPSERVICE_TYPE) || auth_type == Some(APPSERVICE_TYPE) {
        return register_appservice_user(&s, token.as_deref(), &ip, body).await;
    }
    if let Some(name) = &body.username {
        let localpart = name.to_lowercase();
        s.users.check_available(&localpart).await?;
        s.check_user_claim(&s.users.user_id(&localpart), None)?;
    }
    s.users.registration_auth(body.auth.as_ref())?;
    s.ratelimit.check(Action::Registration, &ip)?;
    let Some(password) = body.password.as_deref() else {
        return Err(Error::MissingParam("a password is required".into()).into());
    };
    if password.len() > 512 {
        return Err(Error::InvalidParam("the password is too long".into()).into());
    }
    let localpart = body
        .username
        .as_deref()
        .map(str::to_lowercase)
        .unwrap_or_else(|| s.users.generated_localpart());
    s.check_user_claim(&s.users.user_id(&localpart), None)?;
    let login = s
        .users
        .register(
            &localpart,
            Some(password),
            false,
            None,
            body.device_id.as_deref(),
            body.initial_device_display_name.as_deref(),
            body.inhibit_login,
            Some(&ip),
        )
        .await?;
    let login = refreshable(&s, login, body.refresh_token).await?;
    Ok(login_body(&s, login))
}

/// POST /register with `m.login.application_service` and the service's `as_token`: no
/// interactive auth, no registration mode, no rate limit, but only inside its namespace.
async fn register_appservice_user(
    s: &AppState,
    token: Option<&str>,
    ip: &str,
    body: RegisterBody,
) -> ApiResult<Reply<Value>> {
    let service = s.appservice_by_token(token)?;
    let Some(localpart) = body.username.as_deref() else {
        return Err(Error::MissingParam("username is required".into()).into());
    };
    if body.password.as_ref().is_some_and(|p| p.len() > 512) {
        return Err(Error::InvalidParam("the password is too long".into()).into());
    }
    let login = s
        .register_for_appservice(
            &service.id,
            localpart,
            body.password.as_deref(),
            NewLogin {
                device_id: body.device_id.as_deref(),
                device_name: body.initial_device_display_name.as_deref(),
                inhibit_login: body.inhibit_login,
                ip: Some(ip),
            },
        )
        .await?;
    Ok(login_body(s, login))
}

#[derive(Deserialize)]
pub(crate) struct AvailableQuery {
    username: String,
}

/// GET /register/available
pub(crate) async fn available(
    State(s): State<AppState>,
    Query(q): Query<AvailableQuery>,
) -> ApiResult<Reply<Value>> {
    // Registration lowercases the username, so availability does too.
    let localpart = q.username.to_lowercase();
    s.users.check_available(&localpart).await?;
    s.check_user_claim(&s.users.user_id(&localpart), None)?;
    Ok(Reply(json!({ "available": true })))
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

/// GET /_matrix/client/v1/register/m.login.registration_token/validity, rate limited as
/// registration is, so that tokens cannot be guessed by asking.
pub(crate) async fn registration_token_validity(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Query(q): Query<TokenQuery>,
) -> ApiResult<Reply<Value>> {
    s.ratelimit.check(Action::Registration, &ip)?;
    let token = q
        .token
        .ok_or_else(|| Error::MissingParam("the 'token' query parameter is required".into()))?;
    let valid = s.users.registration_token_valid(&token)?;
    Ok(Reply(json!({ "valid": valid })))
}

/// GET /login
pub(crate) async fn login_flows() -> Reply<Value> {
    Reply(json!({ "flows": [{ "type": "m.login.password" }, { "type": APPSERVICE_TYPE }] }))
}

#[derive(Deserialize)]
pub(crate) struct LoginBody {
    #[serde(rename = "type")]
    kind: String,
    identifier: Option<Identifier>,
    user: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: bool,
}

/// A login's `identifier`; only `m.id.user` is supported, but any type parses so that the
/// others get their own error.
#[derive(Deserialize)]
pub(crate) struct Identifier {
    #[serde(rename = "type")]
    kind: String,
    user: Option<String>,
}

/// POST /login
pub(crate) async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    AccessToken(token): AccessToken,
    Json(body): Json<LoginBody>,
) -> ApiResult<Reply<Value>> {
    if body.kind == APPSERVICE_TYPE {
        // The service proves itself with its as_token, so no rate limit by address.
        let service = s.appservice_by_token(token.as_deref())?;
        let Some(user) = login_user(&body)? else {
            return Err(Error::MissingParam("identifier.user is required".into()).into());
        };
        let login = s
            .login_for_appservice(
                &service,
                &user,
                NewLogin {
                    device_id: body.device_id.as_deref(),
                    device_name: body.initial_device_display_name.as_deref(),
                    inhibit_login: false,
                    ip: Some(&ip),
                },
            )
            .await?;
        return Ok(login_body(&s, login));
    }
    if body.kind != "m.login.password" {
        return Err(crate::api::error::MatrixError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "M_UNKNOWN",
            format!("unsupported login type {}", body.kind),
        ));
    }
    s.ratelimit.check(Action::Login, &ip)?;
    let (Some(user), Some(password)) = (login_user(&body)?, body.password.as_deref()) else {
        return Err(Error::MissingParam("user and password are required".into()).into());
    };
    let login = s
        .users
        .login_password(
            &user,
            password,
            body.device_id.as_deref(),
            body.initial_device_display_name.as_deref(),
            Some(&ip),
        )
        .await?;
    let login = refreshable(&s, login, body.refresh_token).await?;
    Ok(login_body(&s, login))
}

/// The user a login names: `identifier` of type `m.id.user`, or the legacy `user`.
fn login_user(body: &LoginBody) -> Result<Option<String>, Error> {
    match &body.identifier {
        Some(id) => {
            if id.kind != "m.id.user" {
                return Err(Error::InvalidParam(
                    "only m.id.user identifiers are supported".into(),
                ));
            }
            Ok(id.user.clone())
        }
        None => Ok(body.user.clone()),
    }
}

/// POST /logout
pub(crate) async fn logout(
    State(s): State<AppState>,
    Auth(session): Auth,
) -> ApiResult<Reply<Value>> {
    s.remove_devices(
        &session.user_id,
        Some(std::slice::from_ref(&session.device_id)),
    )
    .await?;
    Ok(Reply(json!({})))
}

/// POST /logout/all
pub(crate) async fn logout_all(
    State(s): State<AppState>,
    Auth(session): Auth,
) -> ApiResult<Reply<Value>> {
    s.remove_devices(&session.user_id, None).await?;
    Ok(Reply(json!({})))
}

/// GET /account/whoami
pub(crate) async fn whoami(Auth(session): Auth) -> Reply<Value> {
    let mut body = json!({ "user_id": session.user_id, "is_guest": false });
    // An application service acting without `?device_id=` has no device to name.
    if !session.device_id.is_empty() {
        body["device_id"] = json!(session.device_id);
    }
    Reply(body)
}

fn device_json(d: crate::service::users::Device) -> Value {
    json!({
        "device_id": d.device_id,
        "display_name": d.display_name,
        "last_seen_ts": d.last_seen_ts,
        "last_seen_ip": d.last_seen_ip,
    })
}

/// GET /devices
pub(crate) async fn devices(
    State(s): State<AppState>,
    Auth(session): Auth,
) -> ApiResult<Reply<Value>> {
    let list: Vec<Value> = s
        .users
        .devices(&session.user_id)
        .await?
        .into_iter()
        .map(device_json)
        .collect();
    Ok(Reply(json!({ "devices": list })))
}

/// GET /devices/{deviceId}
pub(crate) async fn device(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(device_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let d = s.users.device(&session.user_id, &device_id).await?;
    Ok(Reply(device_json(d)))
}

#[derive(Deserialize)]
pub(crate) struct RenameBody {
    display_name: Option<String>,
}

/// PUT /devices/{deviceId}. An application service acting as one of its users makes the
/// device when it does not exist (MSC4190), answering 201.
pub(crate) async fn rename_device(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(device_id): Path<String>,
    Json(body): Json<RenameBody>,
) -> ApiResult<Response> {
    if session.appservice.is_some()
        && s.users
            .create_device(&session.user_id, &device_id, body.display_name.as_deref())
            .await?
    {
        return Ok((StatusCode::CREATED, Reply(json!({}))).into_response());
    }
    match body.display_name {
        Some(name) => {
            s.users
                .rename_device(&session.user_id, &device_id, &name)
                .await?
        }
        None => {
            s.users.device(&session.user_id, &device_id).await?;
        }
    }
    Ok(Reply(json!({})).into_response())
}

#[derive(Deserialize)]
pub(crate) struct AuthBody {
    #[serde(default, deserialize_with = "object")]
    auth: Option<Value>,
}

/// DELETE /devices/{deviceId}: needs the user's password through user-interactive auth, but
/// from an application service for its users (MSC4190).
pub(crate) async fn delete_device(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(device_id): Path<String>,
    Json(body): Json<AuthBody>,
) -> ApiResult<Reply<Value>> {
    s.users.device(&session.user_id, &device_id).await?;
    if session.appservice.is_none() {
        s.users
            .password_auth(&session.user_id, body.auth.as_ref())
            .await?;
    }
    s.remove_devices(&session.user_id, Some(&[device_id]))
        .await?;
    Ok(Reply(json!({})))
}

#[derive(Deserialize)]
pub(crate) struct DeleteDevicesBody {
    devices: Vec<String>,
    #[serde(default, deserialize_with = "object")]
    auth: Option<Value>,
}

/// POST /delete_devices
pub(crate) async fn delete_devices(
    State(s): State<AppState>,
    Auth(session): Auth,
    Json(body): Json<DeleteDevicesBody>,
) -> ApiResult<Reply<Value>> {
    if session.appservice.is_none() {
        s.users
            .password_auth(&session.user_id, body.auth.as_ref())
            .await?;
    }
    s.remove_devices(&session.user_id, Some(&body.devices))
        .await?;
    Ok(Reply(json!({})))
}

/// GET /admin/whois/{userId}
pub(crate) async fn whois(
    State(s): State<AppState>,
    Auth(session): Auth,
    Path(user_id): Path<String>,
) -> ApiResult<Reply<Value>> {
    let user = crate::service::identifiers::UserId::parse(user_id)?;
    Ok(Reply(s.whois(&session, &user).await?))
}
