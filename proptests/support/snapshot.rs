//! The outer layer of a snapshot file (spec/membership.md, "Snapshots"), for tests and fuzz
//! targets that forge or rewrite snapshots (the fuzz targets include this file by path; it
//! depends on serde, serde_bytes, blake3 and the library alone).

use serde::{Deserialize, Serialize};

/// `{version, body, checksum}`.
#[derive(Serialize, Deserialize)]
pub struct File {
    pub version: u32,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub checksum: [u8; 32],
}

impl File {
    /// A file of `version` holding `body`, with the checksum a loader expects.
    pub fn new(version: u32, body: Vec<u8>) -> Self {
        Self {
            version,
            checksum: blake3::derive_key("splitsafe v1 snapshot", &body),
            body,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        splitsafe::codec::encode(self)
    }
}

/// The bytes of a snapshot file of `version` whose body is `body`'s CBOR.
pub fn file(version: u32, body: &impl Serialize) -> Vec<u8> {
    File::new(version, splitsafe::codec::encode(body)).to_bytes()
}
