//! The plugin author's SDK for Plugboard. It mirrors the WIT package in `wit/`; the plugin
//! runtime and the SDK's API arrive with the issue "WASM plugin runtime".
