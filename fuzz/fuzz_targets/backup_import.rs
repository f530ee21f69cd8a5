//! Arbitrary bytes imported as a keyring and as an identity: never panics, and whatever is
//! accepted is canonical (exporting it again gives the same bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use splitsafe::crypto::{Keyring, KeyringConfig};
use splitsafe::keys::Identity;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(keyring) = Keyring::import(bytes, KeyringConfig::default()) {
        assert_eq!(&*keyring.export(), bytes, "a keyring export is canonical");
    }
    if let Ok(identity) = Identity::import(bytes) {
        assert_eq!(
            &*identity.export(),
            bytes,
            "an identity export is canonical"
        );
    }
});
