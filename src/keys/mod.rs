//! Identities and the key bundles members publish.
//!
//! A member is its Ed25519 public key, a [`MemberId`]. To be reachable by encryption it
//! publishes a [`KeyBundle`]: an X25519 public key and a timestamp, signed by its own identity
//! key. Because the member signs its bundle, whoever adds the member to a group cannot
//! substitute a key of their own choosing.
//!
//! Secret keys live only in [`Identity`], which zeroizes them on drop and never prints them.

use crate::clock::Timestamp;
use crate::codec::DecodeError;
use ed25519_dalek::{Signer, SigningKey};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use std::fmt;

pub(crate) mod backup;
mod signature;
pub use backup::BackupError;

const IDENTITY_MAGIC: &[u8] = b"splitsafe identity\0";
pub use signature::SignedMessage;

/// `a` and `b` in the order of their bytes (lexicographic), compared eight bytes at a time
/// as big-endian words: ids key the engine's B-trees, and the call to `memcmp` a derived
/// order makes for each comparison was an eighth of reopening a device.
#[inline]
pub(crate) fn compare_bytes<const N: usize>(a: &[u8; N], b: &[u8; N]) -> std::cmp::Ordering {
    let word = |bytes: &[u8; N], at: usize| {
        u64::from_be_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
    };
    let mut at = 0;
    while at + 8 <= N {
        let (x, y) = (word(a, at), word(b, at));
        if x != y {
            return x.cmp(&y);
        }
        at += 8;
    }
    a[at..].cmp(&b[at..])
}

/// Defines a public, fixed-size byte-string type: encoded as a CBOR byte string, shown as
/// hex.
macro_rules! byte_array {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize,
        )]
        pub struct $name(#[serde(with = "serde_bytes")] pub [u8; $len]);

        impl ::std::cmp::Ord for $name {
            /// The order of the bytes (lexicographic).
            fn cmp(&self, other: &Self) -> ::std::cmp::Ordering {
                $crate::keys::compare_bytes(&self.0, &other.0)
            }
        }

        impl ::std::cmp::PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<::std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            /// The first 8 bytes in hex: enough to tell values apart in logs.
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}(", stringify!($name))?;
                for byte in &self.0[..8] {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str("…)")
            }
        }

        impl ::std::fmt::Display for $name {
            /// All bytes in lowercase hex.
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::keys::ParseHexError;

            /// Reads what `Display` writes: all bytes in hex (either case), surrounding
            /// whitespace ignored.
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $crate::keys::parse_hex(text).map(Self)
            }
        }
    };
}

/// Why text is not a fixed-size id in hex (as [`MemberId`], `GroupId` and the other ids
/// print with `Display`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseHexError {
    /// The text has the wrong number of hex digits.
    WrongLength {
        /// Hex digits expected (two per byte).
        expected: usize,
        /// Characters found (surrounding whitespace not counted).
        found: usize,
    },
    /// A character is not a hex digit.
    NotHex {
        /// Its position, counting from 1 (surrounding whitespace not counted).
        at: usize,
    },
}

impl fmt::Display for ParseHexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongLength { expected, found } => write!(
                f,
                "an id is {expected} hex digits, this is {found} characters: copy the whole id"
            ),
            Self::NotHex { at } => write!(f, "character {at} of the id is not a hex digit"),
        }
    }
}

impl std::error::Error for ParseHexError {}

/// `N` bytes from `2 * N` hex digits.
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], ParseHexError> {
    let text = text.trim();
    if text.len() != 2 * N {
        return Err(ParseHexError::WrongLength {
            expected: 2 * N,
            found: text.chars().count(),
        });
    }
    let digit = |i: usize| {
        char::from(text.as_bytes()[i])
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or(ParseHexError::NotHex { at: i + 1 })
    };
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = digit(2 * i)? << 4 | digit(2 * i + 1)?;
    }
    Ok(out)
}
pub(crate) use byte_array;

byte_array!(
    /// A member's identity: its Ed25519 public key.
    MemberId,
    32
);
byte_array!(
    /// A member's X25519 public encryption key.
    EncryptionKey,
    32
);
byte_array!(
    /// An Ed25519 signature.
    SignatureBytes,
    64
);

/// Why a public key or signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The bytes are not the canonical encoding of an Ed25519 public key, or the key has
    /// small order (anyone could forge signatures that verify under it).
    InvalidPublicKey(MemberId),
    /// The signature does not verify under the claimed key.
    BadSignature(MemberId),
    /// The bundle's X25519 key has small order: every exchange with it gives a public
    /// result, so anything wrapped for it could be read by anyone.
    WeakEncryptionKey(MemberId),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPublicKey(id) => write!(f, "{id} is not a usable Ed25519 public key"),
            Self::BadSignature(id) => write!(f, "signature does not verify under {id}"),
            Self::WeakEncryptionKey(id) => {
                write!(f, "the encryption key of {id} has small order")
            }
        }
    }
}

impl std::error::Error for KeyError {}

impl MemberId {
    /// Checks that this is a usable identity key: the canonical encoding of a curve point
    /// that does not have small order. Such keys are refused wherever they sign, alone or in
    /// a batch (the rule is stated in `spec/membership.md`, "Signatures").
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPublicKey`].
    pub fn check(&self) -> Result<(), KeyError> {
        signature::check_key_encoding(self)?;
        ed25519_zebra::VerificationKey::try_from(self.0)
            .map(drop)
            .map_err(|_| KeyError::InvalidPublicKey(*self))
    }
}

/// A member's secret identity: its Ed25519 signing key.
///
/// The key is zeroized when the identity is dropped, and `Debug` shows only the public
/// [`MemberId`].
///
/// ```
/// use splitsafe::keys::Identity;
///
/// let identity = Identity::from_secret_bytes([7; 32]);
/// assert!(!format!("{identity:?}").contains("0707"));
/// ```
pub struct Identity {
    /// Boxed, so that moving an identity (or a keyring, or a device holding one) moves a
    /// pointer and the secret is zeroized where it lives, never left behind in a freed
    /// buffer.
    signing: Box<SigningKey>,
}

impl Identity {
    /// A fresh identity from a cryptographically secure random source.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self {
            signing: Box::new(SigningKey::generate(rng)),
        }
    }

    /// The identity whose Ed25519 secret key is `secret`.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        let secret = zeroize::Zeroizing::new(secret);
        Self {
            signing: Box::new(SigningKey::from_bytes(&secret)),
        }
    }

    /// The Ed25519 secret key, for exports; zeroized when dropped.
    pub(crate) fn secret_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.signing.to_bytes())
    }

    /// The identity's secret key, versioned and checksummed (magic `"splitsafe identity\0"`,
    /// version 1, the 32-byte Ed25519 secret, a 16-byte checksum), in a buffer zeroized when
    /// dropped. **It is the identity in clear**: whoever holds it signs as this member.
    ///
    /// ```
    /// use splitsafe::keys::Identity;
    ///
    /// let identity = Identity::generate(&mut splitsafe::rng::os_rng());
    /// let restored = Identity::import(&identity.export()).unwrap();
    /// assert_eq!(restored.id(), identity.id());
    /// ```
    pub fn export(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = backup::FrameWriter::new(IDENTITY_MAGIC, 32);
        out.put(self.secret_bytes().as_ref());
        out.finish()
    }

    /// The identity [`export`](Self::export) saved.
    ///
    /// # Errors
    ///
    /// [`BackupError`] saying what is wrong with the bytes.
    pub fn import(bytes: &[u8]) -> Result<Self, BackupError> {
        let mut body = backup::FrameReader::open(IDENTITY_MAGIC, bytes)?;
        let secret = body.secret()?;
        body.end()?;
        Ok(Self::from_secret_bytes(*secret))
    }

    /// The public identity.
    pub fn id(&self) -> MemberId {
        MemberId(self.signing.verifying_key().to_bytes())
    }

    /// Signs `bytes` (which must already carry a domain-separation prefix). Not public: an
    /// identity signs only the protocol's own structures.
    pub(crate) fn sign(&self, bytes: Vec<u8>) -> SignedMessage {
        let signature = SignatureBytes(self.signing.sign(&bytes).to_bytes());
        SignedMessage {
            signer: self.id(),
            bytes,
            signature,
        }
    }

    /// A bundle publishing `encryption_key` as this member's key as of `created`.
    pub fn bundle(&self, encryption_key: EncryptionKey, created: Timestamp) -> KeyBundle {
        let member = self.id();
        let signed = self.sign(KeyBundle::message(member, encryption_key, created));
        KeyBundle {
            member,
            encryption_key,
            created,
            signature: signed.signature,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// The X25519 u-coordinates (top bit clear) that have small order on the curve or its twist,
/// with the non-canonical aliases that reduce to them; see [`KeyBundle::check_encryption_key`].
const SMALL_ORDER_X25519: [[u8; 32]; 7] = {
    let mut table = [[0u8; 32]; 7];
    table[1][0] = 1; // u = 1
    const fn near_p(low: u8) -> [u8; 32] {
        let mut u = [0xff; 32];
        u[0] = low;
        u[31] = 0x7f;
        u
    }
    table[2] = near_p(0xec); // p - 1
    table[3] = near_p(0xed); // p, an alias of 0
    table[4] = near_p(0xee); // p + 1, an alias of 1
    table[5] = signature::hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
    table[6] = signature::hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157");
    table
};

/// A member's published encryption key, signed by the member.
///
/// Of several bundles of one member, the one with the latest `created` wins (ties: the
/// larger key bytes), whoever delivered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyBundle {
    /// Whose key this is; the signer.
    pub member: MemberId,
    /// The X25519 public key.
    pub encryption_key: EncryptionKey,
    /// When the member made the bundle (its own clock).
    pub created: Timestamp,
    /// The member's signature over the bundle's fields.
    pub signature: SignatureBytes,
}

impl KeyBundle {
    /// Domain string of a bundle signature.
    pub const DOMAIN: &'static [u8; 20] = b"splitsafe/v1/bundle\0";
    /// Length of [`KeyBundle::to_bytes`].
    pub const LEN: usize = 32 + 32 + 8 + 64;

    fn message(member: MemberId, key: EncryptionKey, created: Timestamp) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(Self::DOMAIN.len() + 72);
        bytes.extend_from_slice(Self::DOMAIN);
        bytes.extend_from_slice(&member.0);
        bytes.extend_from_slice(&key.0);
        bytes.extend_from_slice(&created.as_raw().to_be_bytes());
        bytes
    }

    /// The bytes the member signed: [`KeyBundle::DOMAIN`], member, key, created
    /// (big-endian).
    pub fn signed_bytes(&self) -> Vec<u8> {
        Self::message(self.member, self.encryption_key, self.created)
    }

    /// The signed message this bundle carries a signature over.
    pub(crate) fn signed_message(&self) -> SignedMessage {
        SignedMessage {
            signer: self.member,
            bytes: self.signed_bytes(),
            signature: self.signature,
        }
    }

    /// Checks the member's signature and that the encryption key does not have small order.
    ///
    /// # Errors
    ///
    /// [`KeyError`] if the member id is not a usable key, the signature does not verify, or
    /// the encryption key is weak.
    pub fn verify(&self) -> Result<(), KeyError> {
        self.check_encryption_key()?;
        self.signed_message().verify()
    }

    /// Refuses an X25519 key of small order: every exchange with it gives a public result,
    /// whatever the other side's secret. Such keys are exactly the encodings whose low 255
    /// bits are u = 0, 1 or p - 1, the two u-coordinates of the points of order 8, or the
    /// non-canonical aliases p and p + 1 of 0 and 1 (X25519 ignores the top bit). A byte
    /// comparison, so every replica applies it to every bundle it ingests, at no real cost.
    pub fn check_encryption_key(&self) -> Result<(), KeyError> {
        let mut u = self.encryption_key.0;
        u[31] &= 0x7f;
        if SMALL_ORDER_X25519.contains(&u) {
            return Err(KeyError::WeakEncryptionKey(self.member));
        }
        Ok(())
    }

    /// The fixed layout used inside signed operations: member, key, created (big-endian),
    /// signature.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[..32].copy_from_slice(&self.member.0);
        out[32..64].copy_from_slice(&self.encryption_key.0);
        out[64..72].copy_from_slice(&self.created.as_raw().to_be_bytes());
        out[72..].copy_from_slice(&self.signature.0);
        out
    }

    /// Reads [`to_bytes`](Self::to_bytes)'s layout. The signature is not checked here:
    /// adding the bundle to a group checks it ([`verify`](Self::verify) checks it at once).
    /// For text, see [`armored`](Self::armored) and [`from_armored`](Self::from_armored).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Invalid`] unless `bytes` is exactly [`LEN`](Self::LEN) bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let bytes: &[u8; Self::LEN] = bytes.try_into().map_err(|_| DecodeError::Invalid {
            reason: format!("a key bundle is {} bytes, not {}", Self::LEN, bytes.len()),
        })?;
        let at = |from: usize| -> [u8; 32] { bytes[from..from + 32].try_into().expect("32") };
        Ok(Self {
            member: MemberId(at(0)),
            encryption_key: EncryptionKey(at(32)),
            created: Timestamp::from_raw(u64::from_be_bytes(bytes[64..72].try_into().expect("8"))),
            signature: SignatureBytes(bytes[72..].try_into().expect("64")),
        })
    }

    /// Whether this bundle supersedes `other` as its member's key.
    pub fn is_newer_than(&self, other: &KeyBundle) -> bool {
        (self.created, self.encryption_key) > (other.created, other.encryption_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Ids order as their bytes do.
        #[test]
        fn ids_order_as_their_bytes(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), cut in 0usize..32) {
            // Often equal up to some byte, so that every word decides in some case.
            let mut c = b;
            c[..cut].copy_from_slice(&a[..cut]);
            for other in [b, c, a] {
                prop_assert_eq!(MemberId(a).cmp(&MemberId(other)), a.cmp(&other));
            }
            let (long, short) = ([a, b].concat(), [a[0], b[0], a[1]]);
            prop_assert_eq!(
                compare_bytes::<64>(&long.clone().try_into().unwrap(), &[b, a].concat().try_into().unwrap()),
                long.as_slice().cmp([b, a].concat().as_slice())
            );
            prop_assert_eq!(compare_bytes(&short, &[a[0], b[0], b[1]]), short.cmp(&[a[0], b[0], b[1]]));
        }

        /// Every id reads back from what it prints, in either case, whitespace around it
        /// ignored; anything shorter, longer or not hex is refused saying which.
        #[test]
        fn ids_read_back_from_their_hex(bytes in any::<[u8; 32]>(), cut in 0usize..64) {
            let id = MemberId(bytes);
            let text = id.to_string();
            prop_assert_eq!(text.parse::<MemberId>(), Ok(id));
            prop_assert_eq!(format!(" {}\n", text.to_uppercase()).parse::<MemberId>(), Ok(id));
            prop_assert_eq!(
                text[..cut].parse::<MemberId>(),
                Err(ParseHexError::WrongLength { expected: 64, found: cut })
            );
            let mut bad = text.clone();
            bad.replace_range(cut..cut + 1, "g");
            prop_assert_eq!(bad.parse::<MemberId>(), Err(ParseHexError::NotHex { at: cut + 1 }));
        }
    }

    #[test]
    fn a_bundle_reads_back_from_its_bytes() {
        let bundle = Identity::from_secret_bytes([1; 32])
            .bundle(EncryptionKey([2; 32]), Timestamp::from_raw(5));
        assert_eq!(KeyBundle::from_bytes(&bundle.to_bytes()), Ok(bundle));
        let error = KeyBundle::from_bytes(&bundle.to_bytes()[1..]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid value: a key bundle is 136 bytes, not 135"
        );
    }

    #[test]
    fn a_short_id_says_to_copy_the_whole_id() {
        let error = "8a88e3dd7409f195".parse::<MemberId>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "an id is 64 hex digits, this is 16 characters: copy the whole id"
        );
    }

    #[test]
    fn bundle_signature_binds_every_field() {
        let alice = Identity::from_secret_bytes([1; 32]);
        let bundle = alice.bundle(EncryptionKey([2; 32]), Timestamp::from_raw(5));
        assert_eq!(bundle.verify(), Ok(()));
        let mut other_key = bundle;
        other_key.encryption_key.0[0] ^= 1;
        let mut other_time = bundle;
        other_time.created = Timestamp::from_raw(6);
        let mut other_member = bundle;
        other_member.member = Identity::from_secret_bytes([3; 32]).id();
        for forged in [other_key, other_time, other_member] {
            assert!(matches!(forged.verify(), Err(KeyError::BadSignature(_))));
        }
    }

    #[test]
    fn weak_encryption_keys_are_refused() {
        let alice = Identity::from_secret_bytes([1; 32]);
        // u = 0 and u = 1 have small order.
        for weak in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let bundle = alice.bundle(EncryptionKey(weak), Timestamp::from_raw(5));
            assert_eq!(
                bundle.verify(),
                Err(KeyError::WeakEncryptionKey(alice.id()))
            );
        }
    }

    /// The table agrees with the definition: a clamped scalar (a multiple of the cofactor)
    /// maps exactly the small-order points to zero. Checked on the table, its top-bit
    /// variants, every u below 64 and every u within 64 of p, and random keys.
    #[test]
    fn weak_encryption_key_table_matches_x25519() {
        let mut candidates: Vec<[u8; 32]> = SMALL_ORDER_X25519.to_vec();
        for low in 0u8..64 {
            let mut u = [0u8; 32];
            u[0] = low;
            candidates.push(u);
            let mut near_p = [0xffu8; 32];
            near_p[31] = 0x7f;
            near_p[0] = 0xc0 + low;
            candidates.push(near_p);
        }
        for i in 0u32..500 {
            candidates.push(*blake3::hash(&i.to_le_bytes()).as_bytes());
        }
        let alice = Identity::from_secret_bytes([1; 32]);
        for u in candidates {
            for top in [0u8, 0x80] {
                let mut key = u;
                key[31] = (key[31] & 0x7f) | top;
                let weak = x25519_dalek::x25519([1; 32], key) == [0; 32];
                let bundle = alice.bundle(EncryptionKey(key), Timestamp::from_raw(5));
                assert_eq!(bundle.check_encryption_key().is_err(), weak, "{key:02x?}");
            }
        }
    }

    #[test]
    fn small_order_keys_are_refused() {
        // The identity point: every signature would "verify" under it with a weak check.
        let mut identity_point = [0u8; 32];
        identity_point[0] = 1;
        let id = MemberId(identity_point);
        assert_eq!(id.check().unwrap_err(), KeyError::InvalidPublicKey(id));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let identity = Identity::from_secret_bytes([0xAB; 32]);
        let shown = format!("{identity:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains("MemberId("));
    }
}
