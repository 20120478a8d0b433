//! End-to-end encryption, served: the server stores and hands out what clients encrypt with,
//! and never sees a plaintext. `backup`: server-side key backups (`/room_keys`); `keys`:
//! device, one-time and fallback keys; `cross_signing`: cross-signing keys and signatures;
//! `device_lists`: whose keys changed, for /sync and /keys/changes; `to_device`: messages
//! between devices; `signed`: checking a client's signature.

pub(crate) mod backup;
pub(crate) mod cross_signing;
pub(crate) mod device_lists;
pub(crate) mod keys;
pub(crate) mod signed;
pub(crate) mod to_device;
