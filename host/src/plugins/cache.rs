//! Compiled components, cached on disk by the component's content hash and the engine's
//! compatibility hash: a server that starts again with the same plugins loads each one with
//! `deserialize_file` (well under a millisecond) instead of compiling it (tens of
//! milliseconds for a Rust plugin, seconds for Python or JS).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) struct ComponentCache {
    dir: PathBuf,
    /// The engine's settings and version, as a hex string: an artifact compiled by another
    /// wasmtime or with other settings is never loaded.
    engine_hash: String,
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> ComponentCache {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
        }
    }

    /// The hex SHA-256 of a component's bytes: its identity in the cache and in `show`.
    pub(crate) fn content_hash(bytes: &[u8]) -> String {
        let digest = Sha256::digest(bytes);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn path_for(&self, content_hash: &str) -> PathBuf {
        self.dir
            .join(format!("{content_hash}-{}.cwasm", self.engine_hash))
    }

    /// The compiled component for `bytes`, whose [`ComponentCache::content_hash`] is
    /// `content_hash`: from the cache, or compiled and then cached. A cache that cannot be
    /// written only costs the next start a compile.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
        content_hash: &str,
    ) -> wasmtime::Result<Component> {
        let path = self.path_for(content_hash);
        if path.exists() {
            // SAFETY: the file is one this cache wrote with `serialize` for an engine with
            // the same compatibility hash (it is in the name), in a directory of the server's
            // own data dir.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cached component unusable; compiling again");
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache the compiled component");
        }
        Ok(component)
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize()?;
        // Written aside and renamed, so a reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
