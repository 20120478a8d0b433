//! The WASM plugin runtime: application services that run inside the server as WebAssembly
//! components. A plugin's transactions come through the same durable queue as an HTTP
//! service's (its [`transport::WasmTransport`] sits behind the same trait); it acts back
//! through the host imports of the WIT package in `wit/`, which call the same services as the
//! client API.

pub mod bindings;
