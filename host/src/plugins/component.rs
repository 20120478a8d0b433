//! Loading a component: compiled once (or read from the cache) and checked against the
//! plugin world with the linker that holds every interface the host provides, ready to
//! instantiate.

use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::bindings::PluginPre;
use super::cache::ComponentCache;
use super::state::PluginState;
use crate::config::Config;

/// Why a component cannot be a plugin here; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("the file is not WebAssembly")]
    NotWasm,
    #[error(
        "the file is a core WebAssembly module, not a component: build it for \
         wasm32-wasip2 (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("the component does not compile: {0}")]
    Invalid(String),
    /// An import the host does not provide, or an export of the wrong type.
    #[error("the component does not fit the plugin world: {0}")]
    Mismatch(String),
}

/// A component checked against the plugin world, ready to instantiate.
pub struct Prepared {
    pub pre: PluginPre<PluginState>,
    /// The SHA-256 of its bytes.
    pub(crate) content_hash: String,
}

/// The engine, the linker and the component cache: what turns bytes into a [`Prepared`].
pub(crate) struct Loader {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: ComponentCache,
}

impl Loader {
    pub(crate) fn new(config: &Config) -> wasmtime::Result<Loader> {
        let engine = super::engine::build(&config.plugins)?;
        let mut linker = Linker::new(&engine);
        PluginState::link(&mut linker)?;
        let cache = ComponentCache::new(config.plugin_cache_dir(), &engine);
        Ok(Loader {
            engine,
            linker,
            cache,
        })
    }

    /// Compiles (or loads from the cache) `bytes` and checks it against the plugin world:
    /// every import provided, every export there with its type.
    pub(crate) fn prepare(&self, bytes: &[u8]) -> Result<Prepared, ComponentError> {
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(ComponentError::NotWasm);
        }
        // A core module has version 1 and layer 0; a component a different version, layer 1.
        if bytes[4..8] == [1, 0, 0, 0] {
            return Err(ComponentError::CoreModule);
        }
        let content_hash = ComponentCache::content_hash(bytes);
        let component: Component = self
            .cache
            .load(&self.engine, bytes, &content_hash)
            .map_err(|e| ComponentError::Invalid(format!("{e:#}")))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| ComponentError::Mismatch(format!("{e:#}")))?;
        let pre = PluginPre::new(pre).map_err(|e| ComponentError::Mismatch(format!("{e:#}")))?;
        Ok(Prepared { pre, content_hash })
    }
}
