//! Every property, case and differential test of the crate but one, as one binary with a
//! module per file: each test binary links the whole dependency tree, so two dozen of them
//! took longer to build than all their tests take to run. (`zeroize_heap` stays apart: it
//! installs its own global allocator.) Run one file's tests with
//! `cargo test --test proptests <file>::`.

mod support;

mod authorization_attacks;
mod backup_laws;
mod chain_laws;
mod clock_laws;
mod device_cases;
mod device_crash;
mod device_delivery;
mod device_hostile;
mod device_keys;
mod device_laws;
mod device_store;
mod encoding_laws;
mod encryption_laws;
mod envelope_integrity;
mod lww_laws;
mod lww_oracle;
mod membership_cases;
mod membership_exhaustive;
mod membership_laws;
mod negative_vectors;
mod netsplit_laws;
mod reconcile_laws;
mod sender_keys_laws;
mod sender_standing;
mod signature_rule;
mod snapshot_laws;
mod vectors;
