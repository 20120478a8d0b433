//! Speaking to a server's federation listener as another server would: a client that takes
//! the self-signed certificate, and the identity of a server (its name and signing key) that
//! signs requests with `X-Matrix`, honestly or not.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use plugboard::service::keys::redaction::redact;
use plugboard::service::keys::signing::{content_hash, reference_event_id};
use plugboard::service::keys::to_canonical;
use plugboard::service::room_version::RoomVersion;
use reqwest::Method;
use serde_json::{json, Value};

use crate::{Reply, TestServer, WAIT};

/// A server's name and signing key: read from a test server's data dir, or made up.
pub struct Identity {
    pub name: String,
    pub key_id: String,
    key: SigningKey,
}

impl Identity {
    /// The identity of `server`, from the `signing.key` in its data dir.
    pub fn of(server: &TestServer) -> Identity {
        let text = std::fs::read_to_string(server.data_dir.path().join("signing.key"))
            .expect("signing key");
        let parts: Vec<&str> = text.split_whitespace().collect();
        let seed: [u8; 32] = STANDARD_NO_PAD
            .decode(parts[2])
            .expect("base64 seed")
            .try_into()
            .expect("32 bytes");
        Identity {
            name: server.server_name.clone(),
            key_id: format!("ed25519:{}", parts[1]),
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// A server named `name` with a new key nobody knows.
    pub fn made_up(name: &str) -> Identity {
        Identity {
            name: name.to_string(),
            key_id: "ed25519:madeup".into(),
            key: SigningKey::from_bytes(&rand_seed()),
        }
    }

    /// Hashes and signs a PDU of `version` as this server (the content hash, then the
    /// signature over the redacted event); answers its event id.
    pub fn sign_event(&self, pdu: &mut Value, version: &RoomVersion) -> String {
        pdu["hashes"] = json!({ "sha256": content_hash(pdu) });
        let mut reference = redact(pdu, &version.redaction);
        if let Some(o) = reference.as_object_mut() {
            o.remove("signatures");
            o.remove("unsigned");
        }
        let sig = STANDARD_NO_PAD.encode(
            self.key
                .sign(to_canonical(&reference).as_bytes())
                .to_bytes(),
        );
        pdu["signatures"] = json!({ &self.name: { &self.key_id: sig } });
        reference_event_id(pdu, version)
    }

    /// The `Authorization` header of a request, signed as the spec says.
    pub fn authorization(
        &self,
        method: &str,
        uri: &str,
        destination: &str,
        content: Option<&Value>,
    ) -> String {
        let mut signed = json!({
            "method": method, "uri": uri, "origin": self.name, "destination": destination,
        });
        if let Some(c) = content {
            signed["content"] = c.clone();
        }
        let sig =
            STANDARD_NO_PAD.encode(self.key.sign(to_canonical(&signed).as_bytes()).to_bytes());
        format!(
            r#"X-Matrix origin="{}",destination="{destination}",key="{}",sig="{sig}""#,
            self.name, self.key_id
        )
    }
}

fn rand_seed() -> [u8; 32] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut seed = [7u8; 32];
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    seed
}

/// A request to a federation listener at `base` (`https://…`), with `authorization` if given.
pub async fn request(
    base: &str,
    method: Method,
    uri: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> Reply {
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .timeout(WAIT)
        .build()
        .expect("client");
    let mut req = http.request(method, format!("{base}{uri}"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("body read");
    Reply {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// An unsigned GET on a federation listener (the key server, the notary, `/version`).
pub async fn unsigned_get(base: &str, uri: &str) -> Reply {
    request(base, Method::GET, uri, None, None).await
}

impl TestServer {
    /// The federation listener's base URL.
    pub fn federation(&self) -> &str {
        self.federation_base
            .as_deref()
            .expect("a server started with start_federating")
    }

    /// A PUT of `body` on the federation listener signed by `as_server`.
    pub async fn signed_put(&self, as_server: &Identity, uri: &str, body: &Value) -> Reply {
        let auth = as_server.authorization("PUT", uri, &self.server_name, Some(body));
        request(self.federation(), Method::PUT, uri, Some(&auth), Some(body)).await
    }

    /// A GET on the federation listener signed by `as_server`.
    pub async fn signed_get(&self, as_server: &Identity, uri: &str) -> Reply {
        let auth = as_server.authorization("GET", uri, &self.server_name, None);
        request(self.federation(), Method::GET, uri, Some(&auth), None).await
    }
}

/// The other server of a federation test: the shared Synapse, or a second Plugboard. The
/// room tests run against each, so that two Plugboards pass the cases Synapse does.
pub enum Peer {
    Synapse(&'static crate::synapse::Synapse),
    Plugboard(TestServer),
}

/// Runs each case (an `async fn(Peer)` in scope) against both peers, as the tests
/// `<case>::with_synapse` and `<case>::with_plugboard`.
#[macro_export]
macro_rules! against_both {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn with_synapse() {
                    super::$case($crate::federation::Peer::synapse().await).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn with_plugboard() {
                    super::$case($crate::federation::Peer::plugboard().await).await
                }
            }
        )*
    };
}

impl Peer {
    /// The shared Synapse.
    pub async fn synapse() -> Peer {
        Peer::Synapse(crate::synapse::peer().await)
    }

    /// A second Plugboard, federating.
    pub async fn plugboard() -> Peer {
        Peer::Plugboard(TestServer::start_federating().await)
    }

    /// A new user on the peer.
    pub async fn user(&self, name: &str) -> crate::Client {
        match self {
            Peer::Synapse(s) => s.user(name).await,
            Peer::Plugboard(p) => p.register(name).await,
        }
    }

    pub fn server_name(&self) -> &str {
        match self {
            Peer::Synapse(s) => &s.server_name,
            Peer::Plugboard(p) => &p.server_name,
        }
    }

    /// What to print when a test fails: Synapse's log tail (a Plugboard peer logs nothing
    /// of its own here).
    pub fn log_tail(&self) -> String {
        match self {
            Peer::Synapse(s) => s.log_tail(),
            Peer::Plugboard(p) => format!("(the peer is Plugboard {})", p.server_name),
        }
    }
}

/// A public room of `owner`'s, on the server named `server_name`, with the alias
/// `#{alias}:{server_name}`, which `guest` (a user of another server) joined by that alias:
/// its id, once `owner`'s server has the join. `log` is what to print if the join fails (the
/// other server's log).
pub async fn room_joined_by_alias(
    owner: &crate::Client,
    server_name: &str,
    alias: &str,
    guest: &crate::Client,
    log: impl Fn() -> String,
) -> String {
    let room_id = owner
        .create_room(json!({"preset": "public_chat", "room_alias_name": alias}))
        .await;
    let joined = guest.join(&format!("#{alias}:{server_name}")).await;
    assert_eq!(joined.status, 200, "{}\n{}", joined.body, log());
    crate::reading::wait_member(owner, &room_id, &guest.user_id).await;
    room_id
}
