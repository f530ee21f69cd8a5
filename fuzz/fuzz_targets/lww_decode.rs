//! Arbitrary bytes decoded as an `LwwSet` never panic; whatever decodes is consistent and
//! is exactly the set's deterministic encoding (one set, one accepted encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use splitsafe::lww::LwwSet;

const MAX_LEN: usize = 1 << 16;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(set) = LwwSet::<Vec<u8>, u64>::from_cbor(bytes, MAX_LEN) {
        assert_eq!(set.len() + set.tombstone_count(), set.entries().count());
        assert_eq!(set.len(), set.iter().count());
        assert_eq!(
            set.to_cbor(),
            bytes,
            "accepted bytes are the deterministic encoding"
        );
    }
});
