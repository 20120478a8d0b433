//! End-to-end encryption, served: the server stores and hands out what clients encrypt with,
//! and never sees a plaintext. `backup`: server-side key backups (`/room_keys`).

pub(crate) mod backup;
