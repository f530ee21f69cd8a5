//! Negative vectors (`spec/vectors/negative.txt`): bytes every implementation must refuse,
//! each made from a valid structure of `spec/vectors/v3.txt` by one change, with the refusal
//! this code gives. `cargo test` checks the committed file against the code, and that each
//! refusal is of the kind the case is about (so a case that started to fail for another reason
//! would be caught); `SPLITSAFE_WRITE_VECTORS=1` rewrites it.

use crate::support::group::T0;
use crate::vectors;
use ciborium::Value;
use splitsafe::codec;
use splitsafe::crypto::{ChainMessage, Envelope, Keyring, KeyringConfig, Limits};
use splitsafe::device::Message;
use splitsafe::group::{Replica, ReplicaConfig, SignedOp, Summary};
use splitsafe::keys::{Identity, KeyBundle};
use splitsafe::lww::LwwSet;
use splitsafe::wire::{self, ArmorKind};
use std::collections::BTreeMap;
use std::fmt::Write;

const PATH: &str = "spec/vectors/negative.txt";

/// The input a case feeds its decoder.
enum Input {
    Bytes(Vec<u8>),
    Text(String),
}

/// What reads a case's input, as the spec names it; each returns the refusal's `Debug`, or
/// `None` if the input was accepted.
fn refusal(decoder: &str, input: &Input) -> Option<String> {
    let bytes = || match input {
        Input::Bytes(b) => b.as_slice(),
        Input::Text(_) => panic!("{decoder} reads bytes"),
    };
    let text = || match input {
        Input::Text(t) => t.as_str(),
        Input::Bytes(_) => panic!("{decoder} reads text"),
    };
    let limits = Limits::default();
    let err = |e: &dyn std::fmt::Debug| Some(format!("{e:?}"));
    match decoder {
        "operation" => SignedOp::from_cbor(bytes()).err().and_then(|e| err(&e)),
        "ingest" => {
            let scene = vectors::values();
            let genesis = SignedOp::from_cbor(&scene["op.create.cbor"]).unwrap();
            let mut replica = Replica::join(&genesis, ReplicaConfig::default(), T0).unwrap();
            replica
                .ingest_bytes(bytes(), T0 + 1_000)
                .err()
                .and_then(|e| err(&e))
        }
        "bundle" => match codec::decode::<KeyBundle>(bytes(), 512) {
            Err(e) => err(&e),
            Ok(bundle) => bundle.verify().err().and_then(|e| err(&e)),
        },
        "envelope" => Envelope::from_cbor(bytes(), limits)
            .err()
            .and_then(|e| err(&e)),
        "chain-message" => ChainMessage::from_cbor(bytes(), limits.max_payload)
            .err()
            .and_then(|e| err(&e)),
        "message" => Message::from_bytes(bytes(), 32 << 20, limits)
            .err()
            .and_then(|e| err(&e)),
        "summary" => Summary::from_cbor(bytes()).err().and_then(|e| err(&e)),
        "lww-set" => LwwSet::<u32, u64>::from_cbor(bytes(), 1 << 16)
            .err()
            .and_then(|e| err(&e)),
        "snapshot" => Replica::load(bytes(), ReplicaConfig::default(), 1 << 20, T0 + 1_000)
            .err()
            .and_then(|e| err(&e)),
        "identity-export" => Identity::import(bytes()).err().and_then(|e| err(&e)),
        "keyring-export" => Keyring::import(bytes(), KeyringConfig::default())
            .err()
            .and_then(|e| err(&e)),
        "armor-envelope" => wire::dearmor(ArmorKind::Envelope, text(), 1 << 20)
            .err()
            .and_then(|e| err(&e)),
        other => panic!("no decoder {other}"),
    }
}

/// One case: its name, why the input must be refused, the decoder, the input, and the start
/// of the refusal's `Debug` that shows it is refused for that reason.
struct Case {
    name: String,
    why: String,
    decoder: &'static str,
    input: Input,
    expect: &'static str,
}

fn cbor(bytes: &[u8]) -> Value {
    ciborium::de::from_reader(bytes).unwrap()
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

/// The entry `key` of the map `value`.
fn field<'a>(value: &'a mut Value, key: &str) -> &'a mut Value {
    let Value::Map(entries) = value else {
        panic!("not a map")
    };
    &mut entries
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .unwrap_or_else(|| panic!("no {key}"))
        .1
}

/// `bytes`, decoded, changed by `change`, and encoded again deterministically.
fn edited(bytes: &[u8], change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value = cbor(bytes);
    change(&mut value);
    encode(&value)
}

/// The frame of an export (`spec/formats.md`, "Exports") around `body`, checksum and all.
fn frame(magic: &[u8], version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.push(version);
    out.extend_from_slice(body);
    let sum = blake3::derive_key("splitsafe v1 backup", &out);
    out.extend_from_slice(&sum[..16]);
    out
}

/// The X25519 public keys of small order, as `spec/membership.md` lists them (low 255 bits).
fn small_order_x25519() -> Vec<(&'static str, [u8; 32])> {
    let p_plus = |low: u8| {
        let mut key = [0xff; 32];
        key[0] = low;
        key[31] = 0x7f;
        key
    };
    let hex = |h: &str| -> [u8; 32] {
        let v: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        v.try_into().unwrap()
    };
    let mut one = [0; 32];
    one[0] = 1;
    vec![
        ("u = 0", [0; 32]),
        ("u = 1", one),
        ("u = p - 1", p_plus(0xec)),
        ("u = p (an alias of 0)", p_plus(0xed)),
        ("u = p + 1 (an alias of 1)", p_plus(0xee)),
        (
            "a point of order 8",
            hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        ),
        (
            "the other point of order 8",
            hex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
        ),
    ]
}

/// The smallest y (as a little-endian encoding with no sign bit) that is not on the curve:
/// an Ed25519 public key no signature can be checked against.
fn off_curve_key() -> [u8; 32] {
    (2u8..)
        .map(|y| {
            let mut key = [0u8; 32];
            key[0] = y;
            key
        })
        .find(|key| ed25519_dalek::VerifyingKey::from_bytes(key).is_err())
        .unwrap()
}

fn cases() -> Vec<Case> {
    let v = vectors::values();
    let mut cases = Vec::new();
    let mut case = |name: &str, why: &str, decoder, input: Vec<u8>, expect| {
        cases.push(Case {
            name: name.to_string(),
            why: why.to_string(),
            decoder,
            input: Input::Bytes(input),
            expect,
        })
    };

    // Encoding (spec/formats.md, "Encoding"), on an operation.
    let op = &v["op.add_bob.cbor"];
    let mut trailing = op.clone();
    trailing.push(0);
    case(
        "op.trailing_byte",
        "a byte after the value",
        "operation",
        trailing,
        "TrailingBytes",
    );
    case(
        "op.truncated",
        "the last byte missing",
        "operation",
        op[..op.len() - 1].to_vec(),
        "Truncated",
    );
    let at = op.windows(4).position(|w| w == b"\x63seq").unwrap() + 4;
    let mut widened = op[..at].to_vec();
    widened.extend([0x18, op[at]]);
    widened.extend(&op[at + 1..]);
    case(
        "op.seq_not_shortest",
        "seq written as 0x18 0x02, not 0x02",
        "operation",
        widened,
        "NotCanonical",
    );
    let sorted = edited(op, |v| {
        let Value::Map(entries) = field(v, "op") else {
            panic!()
        };
        entries.sort_by_key(|(k, _)| {
            let k = k.as_text().unwrap().to_string();
            (k.len(), k)
        });
    });
    case(
        "op.keys_sorted",
        "the op's keys in RFC 8949 sorted order (length first), not the order of the spec",
        "operation",
        sorted,
        "NotCanonical",
    );
    let extra = edited(op, |v| {
        let Value::Map(entries) = v else { panic!() };
        entries.push((Value::Text("extra".into()), Value::Integer(0.into())));
    });
    case(
        "op.unknown_key",
        "a key the record does not have",
        "operation",
        extra,
        "NotCanonical",
    );
    let twice = edited(op, |v| {
        let Value::Map(entries) = v else { panic!() };
        entries.push(entries[1].clone());
    });
    case(
        "op.key_twice",
        "the signature key twice",
        "operation",
        twice,
        "Invalid",
    );
    let missing = edited(op, |v| {
        let Value::Map(entries) = v else { panic!() };
        entries.pop();
    });
    case(
        "op.missing_signature",
        "no signature",
        "operation",
        missing,
        "Invalid",
    );
    let as_array = edited(op, |v| {
        let sig = field(v, "signature");
        let bytes = sig.as_bytes().unwrap().clone();
        *sig = Value::Array(
            bytes
                .into_iter()
                .map(|b| Value::Integer(b.into()))
                .collect(),
        );
    });
    case(
        "op.signature_as_array",
        "a fixed-size byte field written as an array of integers",
        "operation",
        as_array,
        "",
    );
    let short_sig = edited(op, |v| {
        let sig = field(v, "signature");
        let bytes = sig.as_bytes().unwrap()[..63].to_vec();
        *sig = Value::Bytes(bytes);
    });
    case(
        "op.signature_63_bytes",
        "a signature one byte short",
        "operation",
        short_sig,
        "Invalid",
    );
    let rank_int = edited(&v["op.promote_bob.cbor"], |v| {
        let body = field(field(v, "op"), "body");
        *field(field(body, "rank"), "rank") = Value::Integer(1.into());
    });
    case(
        "op.rank_as_integer",
        "a rank as its tag byte, not its name",
        "operation",
        rank_int,
        "Invalid",
    );
    let tagged = {
        let mut out = vec![0xd8, 0x18];
        out.extend(op);
        out
    };
    case(
        "op.tagged",
        "the operation inside a CBOR tag",
        "operation",
        tagged,
        "",
    );
    let mut indefinite = vec![0xbf];
    indefinite.extend(&op[1..]);
    indefinite.push(0xff);
    case(
        "op.indefinite_map",
        "the outer map of indefinite length",
        "operation",
        indefinite,
        "",
    );
    case(
        "op.too_large",
        "1,025 bytes: over the 1,024-byte limit, refused before parsing",
        "operation",
        vec![0; 1025],
        "TooLarge",
    );
    let deep = edited(op, |v| {
        let Value::Map(entries) = v else { panic!() };
        let nested = (0..33).fold(Value::Integer(0.into()), |inner, _| {
            Value::Array(vec![inner])
        });
        entries.push((Value::Text("extra".into()), nested));
    });
    case(
        "op.too_deep",
        "an extra key holding 33 nested arrays: refused for its depth before anything else",
        "operation",
        deep,
        "TooDeep",
    );

    // Structural rules (spec/membership.md, "Operations"): checked before signatures.
    let remove = &v["op.remove_carol.cbor"];
    let self_subject = edited(&v["op.add_bob.cbor"], |v| {
        let author = field(field(v, "op"), "author").clone();
        let body = field(field(v, "op"), "body");
        *field(field(field(body, "add"), "bundle"), "member") = author;
    });
    case(
        "ingest.self_subject",
        "an add naming its own author",
        "ingest",
        self_subject,
        "Invalid(SelfSubject",
    );
    let owner = edited(&v["op.promote_bob.cbor"], |v| {
        let body = field(field(v, "op"), "body");
        *field(field(body, "rank"), "rank") = Value::Text("owner".into());
    });
    case(
        "ingest.grant_owner",
        "a rank change granting owner",
        "ingest",
        owner,
        "Invalid(RankValue",
    );
    let watermark = edited(remove, |v| {
        let body = field(field(v, "op"), "body");
        *field(field(field(body, "remove"), "watermark"), "seq") = Value::Integer(0.into());
    });
    case(
        "ingest.watermark_zero_seq",
        "a watermark with seq 0 naming an operation",
        "ingest",
        watermark,
        "Invalid(Watermark",
    );
    let prev = edited(remove, |v| {
        *field(field(v, "op"), "seq") = Value::Integer(1.into());
    });
    case(
        "ingest.prev_at_seq_1",
        "seq 1 with a non-zero prev",
        "ingest",
        prev,
        "Invalid(Chain",
    );
    let seq0 = edited(remove, |v| {
        *field(field(v, "op"), "seq") = Value::Integer(0.into());
    });
    case("ingest.seq_0", "seq 0", "ingest", seq0, "Invalid(Chain");
    let zero_group = edited(remove, |v| {
        *field(field(v, "op"), "group") = Value::Bytes(vec![0; 32]);
    });
    case(
        "ingest.zero_group",
        "the zero group on an operation that is not a Create",
        "ingest",
        zero_group,
        "Invalid(GroupField",
    );
    let off_curve = off_curve_key();
    let forged = edited(remove, |v| {
        *field(field(v, "op"), "author") = Value::Bytes(off_curve.to_vec());
    });
    case(
        "ingest.off_curve_author",
        "an author whose key is not a curve point",
        "ingest",
        forged,
        "Signature(InvalidPublicKey",
    );
    let bad_signature = edited(remove, |v| {
        let sig = field(v, "signature");
        let mut bytes = sig.as_bytes().unwrap().clone();
        bytes[0] ^= 1;
        *sig = Value::Bytes(bytes);
    });
    case(
        "ingest.bad_signature",
        "one bit of the signature flipped",
        "ingest",
        bad_signature,
        "Signature(BadSignature",
    );

    // Bundles (spec/membership.md, "Identities and bundles").
    let bundle = &v["bob.bundle.cbor"];
    for (i, (what, key)) in small_order_x25519().into_iter().enumerate() {
        for high in [false, true] {
            let mut key = key;
            key[31] |= u8::from(high) << 7;
            let weak = edited(bundle, |v| {
                *field(v, "encryption_key") = Value::Bytes(key.to_vec())
            });
            let name = format!(
                "bundle.weak_x25519.{i}{}",
                if high { ".high_bit" } else { "" }
            );
            let why = format!(
                "an X25519 key of small order: {what}{}",
                if high { ", top bit set" } else { "" }
            );
            case(&name, &why, "bundle", weak, "WeakEncryptionKey");
        }
    }
    let off = edited(bundle, |v| {
        *field(v, "member") = Value::Bytes(off_curve.to_vec())
    });
    case(
        "bundle.off_curve_member",
        "a member key that is not a curve point",
        "bundle",
        off,
        "InvalidPublicKey",
    );

    // Envelopes (spec/formats.md, "Envelope").
    let signed = &v["envelope.cbor"];
    let unsigned = &v["envelope.dave.cbor"];
    let version = edited(signed, |v| {
        *field(field(v, "header"), "version") = Value::Integer(2.into())
    });
    case(
        "envelope.version_2",
        "version 2",
        "envelope",
        version,
        "UnsupportedVersion(2)",
    );
    let swapped = edited(unsigned, |v| {
        let slots = field(v, "slots");
        let bytes = slots.as_bytes().unwrap().clone();
        *slots = Value::Bytes([&bytes[56..], &bytes[..56]].concat());
    });
    case(
        "envelope.slots_out_of_order",
        "its two slots swapped",
        "envelope",
        swapped,
        "Malformed(Invalid",
    );
    let ragged = edited(unsigned, |v| {
        let slots = field(v, "slots");
        let bytes = slots.as_bytes().unwrap().clone();
        *slots = Value::Bytes(bytes[..111].to_vec());
    });
    case(
        "envelope.slots_ragged",
        "111 bytes of slots",
        "envelope",
        ragged,
        "Malformed(Invalid",
    );
    let repeated = edited(unsigned, |v| {
        let slots = field(v, "slots");
        let bytes = slots.as_bytes().unwrap().clone();
        *slots = Value::Bytes([&bytes[..56], &bytes[..56]].concat());
    });
    case(
        "envelope.slot_twice",
        "one slot twice",
        "envelope",
        repeated,
        "Malformed(Invalid",
    );
    let no_flag = edited(signed, |v| {
        *field(field(v, "header"), "signed") = Value::Bool(false)
    });
    case(
        "envelope.signature_unannounced",
        "a signature with signed = false",
        "envelope",
        no_flag,
        "Malformed(Invalid",
    );
    let no_signature = edited(unsigned, |v| {
        *field(field(v, "header"), "signed") = Value::Bool(true)
    });
    case(
        "envelope.signature_missing",
        "signed = true and a null signature",
        "envelope",
        no_signature,
        "Malformed(Invalid",
    );
    let position = edited(unsigned, |v| {
        *field(field(field(v, "header"), "position"), "op") = Value::Bytes(vec![1; 32]);
    });
    case(
        "envelope.position_zero_seq",
        "position seq 0 with a non-zero op",
        "envelope",
        position,
        "Malformed(Invalid",
    );
    let short = edited(unsigned, |v| {
        *field(v, "ciphertext") = Value::Bytes(vec![0; 15])
    });
    case(
        "envelope.ciphertext_short",
        "a ciphertext shorter than its tag",
        "envelope",
        short,
        "Malformed(Invalid",
    );
    let omitted = edited(unsigned, |v| {
        let Value::Map(entries) = v else { panic!() };
        entries.pop();
    });
    case(
        "envelope.signature_key_omitted",
        "the signature key left out rather than null",
        "envelope",
        omitted,
        "Malformed(NotCanonical",
    );

    // Chain messages (spec/formats.md, "Chain message").
    let chain = &v["chain.message.cbor"];
    let with_header = |change: &dyn Fn(&mut Vec<u8>)| {
        edited(chain, |v| {
            let header = field(v, "header");
            let mut bytes = header.as_bytes().unwrap().clone();
            change(&mut bytes);
            *header = Value::Bytes(bytes);
        })
    };
    case(
        "chain.header_version_1",
        "header version 1",
        "chain-message",
        with_header(&|h| h[0] = 1),
        "Invalid",
    );
    case(
        "chain.header_164_bytes",
        "a header one byte short",
        "chain-message",
        with_header(&|h| {
            h.pop();
        }),
        "Invalid",
    );
    case(
        "chain.position_zero_seq",
        "position seq 0 with a non-zero op",
        "chain-message",
        with_header(&|h| {
            h[93..101].fill(0);
        }),
        "Invalid",
    );
    let short = edited(chain, |v| {
        *field(v, "ciphertext") = Value::Bytes(vec![0; 15])
    });
    case(
        "chain.ciphertext_short",
        "a ciphertext shorter than its tag",
        "chain-message",
        short,
        "Invalid",
    );

    // Device messages (spec/formats.md, "Device messages").
    let sync = &v["message.sync_digest_only.cbor"];
    let empty_ops = edited(sync, |v| {
        let Value::Map(entries) = field(v, "Sync") else {
            panic!()
        };
        entries.insert(3, (Value::Text("ops".into()), Value::Array(vec![])));
    });
    case(
        "message.sync_empty_ops",
        "a sync message with ops: [] written out",
        "message",
        empty_ops,
        "NotCanonical",
    );
    let empty_asks = edited(sync, |v| {
        let Value::Map(entries) = field(v, "Sync") else {
            panic!()
        };
        entries.insert(3, (Value::Text("asks".into()), Value::Array(vec![])));
    });
    case(
        "message.sync_empty_asks",
        "a sync message with asks: [] written out",
        "message",
        empty_asks,
        "NotCanonical",
    );
    let null_yours = edited(sync, |v| {
        let Value::Map(entries) = field(v, "Sync") else {
            panic!()
        };
        entries.insert(3, (Value::Text("yours".into()), Value::Null));
    });
    case(
        "message.sync_null_yours",
        "a sync message with yours: null written out",
        "message",
        null_yours,
        "NotCanonical",
    );
    let lowercase = edited(&v["message.bundle.cbor"], |v| {
        let Value::Map(entries) = v else { panic!() };
        entries[0].0 = Value::Text("bundle".into());
    });
    case(
        "message.variant_lowercase",
        "the variant name not capitalised",
        "message",
        lowercase,
        "Invalid",
    );
    let two = edited(&v["message.bundle.cbor"], |v| {
        let Value::Map(entries) = v else { panic!() };
        entries.push(entries[0].clone());
    });
    case(
        "message.two_variants",
        "a map of two entries",
        "message",
        two,
        "",
    );

    // Summaries and LWW sets: maps and sets in ascending order.
    let reversed = edited(&v["summary.cbor"], |v| {
        let Value::Map(authors) = field(v, "authors") else {
            panic!()
        };
        authors.reverse();
    });
    case(
        "summary.authors_descending",
        "the authors in descending order",
        "summary",
        reversed,
        "NotCanonical",
    );
    let lww = edited(&v["lww.cbor"], |v| {
        let Value::Array(items) = v else { panic!() };
        items.reverse();
    });
    case(
        "lww.descending",
        "elements in descending order",
        "lww-set",
        lww,
        "Invalid",
    );

    // Snapshots (spec/formats.md, "Snapshot").
    let snapshot = &v["snapshot.cbor"];
    let old = edited(snapshot, |v| {
        *field(v, "version") = Value::Integer(2.into())
    });
    case(
        "snapshot.version_2",
        "version 2",
        "snapshot",
        old,
        "UnsupportedVersion(2)",
    );
    let damaged = edited(snapshot, |v| {
        let sum = field(v, "checksum");
        let mut bytes = sum.as_bytes().unwrap().clone();
        bytes[0] ^= 1;
        *sum = Value::Bytes(bytes);
    });
    case(
        "snapshot.checksum",
        "a checksum that does not match the body",
        "snapshot",
        damaged,
        "ChecksumMismatch",
    );

    // Exports (spec/formats.md, "Exports").
    let identity = &v["export.identity.alice"];
    let body = &identity[20..52];
    case(
        "export.identity.version_2",
        "version 2",
        "identity-export",
        frame(b"splitsafe identity\0", 2, body),
        "UnsupportedVersion(2)",
    );
    case(
        "export.identity.wrong_kind",
        "a keyring's magic",
        "identity-export",
        frame(b"splitsafe keyring\0", 1, body),
        "WrongKind",
    );
    let mut flipped = identity.clone();
    flipped[25] ^= 1;
    case(
        "export.identity.checksum",
        "one secret bit flipped",
        "identity-export",
        flipped,
        "BadChecksum",
    );
    case(
        "export.identity.long",
        "a body of 33 bytes",
        "identity-export",
        frame(b"splitsafe identity\0", 1, &[body, &[0]].concat()),
        "WrongLength",
    );
    let keyring = &v["export.keyring.bob"];
    let kbody = &keyring[19..keyring.len() - 16];
    let mut no_keys = kbody[..40].to_vec();
    no_keys.extend([0, 0]);
    case(
        "export.keyring.no_key",
        "a count of 0 keys",
        "keyring-export",
        frame(b"splitsafe keyring\0", 1, &no_keys),
        "Invalid",
    );
    let mut both_current = kbody.to_vec();
    both_current[42 + 32..42 + 41].fill(0);
    case(
        "export.keyring.two_current",
        "the first of two keys not retired",
        "keyring-export",
        frame(b"splitsafe keyring\0", 1, &both_current),
        "Invalid",
    );

    // Armor (device.md, "Armor").
    let armored = String::from_utf8(v["envelope.armored"].clone()).unwrap();
    let mut text_case = |name: &str, why: &str, text: String, expect| {
        cases.push(Case {
            name: name.to_string(),
            why: why.to_string(),
            decoder: "armor-envelope",
            input: Input::Text(text),
            expect,
        })
    };
    let line = armored.lines().nth(1).unwrap().to_string();
    let mut changed = line.clone();
    changed.replace_range(0..1, if line.starts_with('A') { "B" } else { "A" });
    text_case(
        "armor.checksum",
        "one base64 character changed",
        armored.replacen(&line, &changed, 1),
        "BadChecksum",
    );
    let checksum_line = armored.lines().find(|l| l.starts_with('=')).unwrap();
    text_case(
        "armor.no_checksum",
        "the checksum line removed",
        armored.replacen(&format!("{checksum_line}\n"), "", 1),
        "MissingChecksum",
    );
    text_case(
        "armor.no_end",
        "the END line removed",
        armored.replacen("-----END SPLITSAFE ENVELOPE-----\n", "", 1),
        "MissingFooter",
    );
    text_case(
        "armor.other_kind",
        "an envelope armored as OPERATIONS",
        armored.replace("ENVELOPE", "OPERATIONS"),
        "MissingHeader",
    );
    text_case(
        "armor.quoted_printable",
        "a mail body not MIME-decoded (= as =3D)",
        armored.replacen(checksum_line, &checksum_line.replacen('=', "=3D", 1), 1),
        "",
    );
    cases
}

fn negative() -> String {
    let mut out = String::new();
    writeln!(out, "# splitsafe negative vectors: each input must be refused. Written by proptests/negative_vectors.rs").unwrap();
    writeln!(out, "# from the values of spec/vectors/v3.txt. Per case: why it is refused, the decoder (spec/formats.md names").unwrap();
    writeln!(out, "# each structure; ingest: a replica holding only the v3 group's Create ingests the operation), the input (hex, or quoted").unwrap();
    writeln!(out, "# text), and this code's refusal. Which error another implementation reports is its own: that it refuses is").unwrap();
    writeln!(out, "# normative.").unwrap();
    for case in cases() {
        let got = refusal(case.decoder, &case.input)
            .unwrap_or_else(|| panic!("{}: the input was accepted", case.name));
        assert!(
            got.starts_with(case.expect) || got.contains(&format!("({}", case.expect)),
            "{}: refused as {got}, not {}",
            case.name,
            case.expect
        );
        writeln!(out).unwrap();
        writeln!(out, "case = {}", case.name).unwrap();
        writeln!(out, "why = {}", case.why).unwrap();
        writeln!(out, "decoder = {}", case.decoder).unwrap();
        match &case.input {
            Input::Bytes(b) => writeln!(out, "input = {}", vectors::hex(b)).unwrap(),
            Input::Text(t) => writeln!(out, "input = {t:?}").unwrap(),
        }
        writeln!(out, "refusal = {got}").unwrap();
    }
    out
}

#[test]
fn this_code_refuses_every_negative_vector_as_committed() {
    vectors::check_committed(PATH, &negative());
}

/// Every decoder the negative vectors name accepts the valid structure the case was made
/// from: each case's refusal is due to its one change.
#[test]
fn the_structures_the_cases_change_are_accepted() {
    let v = vectors::values();
    let accepted: BTreeMap<&str, &str> = [
        ("operation", "op.add_bob.cbor"),
        ("bundle", "bob.bundle.cbor"),
        ("envelope", "envelope.dave.cbor"),
        ("chain-message", "chain.message.cbor"),
        ("message", "message.sync_digest_only.cbor"),
        ("summary", "summary.cbor"),
        ("lww-set", "lww.cbor"),
        ("snapshot", "snapshot.cbor"),
        ("identity-export", "export.identity.alice"),
        ("keyring-export", "export.keyring.bob"),
    ]
    .into_iter()
    .collect();
    for (decoder, name) in accepted {
        assert_eq!(
            refusal(decoder, &Input::Bytes(v[name].clone())),
            None,
            "{name}"
        );
    }
    let armored = String::from_utf8(v["envelope.armored"].clone()).unwrap();
    assert_eq!(refusal("armor-envelope", &Input::Text(armored)), None);
}
