//! ASCII armor: envelopes and batches of operations as text, for transports such as email.
//!
//! ```text
//! -----BEGIN SPLITSAFE ENVELOPE-----
//! <the CBOR encoding in standard base64, 64 characters a line>
//! =<checksum: the first 6 bytes of BLAKE3 of the CBOR, in base64 (8 characters)>
//! -----END SPLITSAFE ENVELOPE-----
//! ```
//!
//! The kinds are `ENVELOPE`, `OPERATIONS` (a CBOR array of signed operations), `BUNDLE` (a
//! key bundle), `WELCOME` and `SYNC` (the device layer's messages). Text before the first
//! line and after the last is ignored, so an armored block survives being pasted into a
//! message body. Reading accepts what mail clients do to text: each line may carry a quote
//! prefix (`>`, `> `, `> > `, ...) and indentation, which are removed, and trailing
//! whitespace or carriage returns (format=flowed); blank lines anywhere in a block are
//! skipped; text may precede the BEGIN marker on its line. None of this weakens the
//! checksum, which covers the decoded bytes. A mail body must be MIME-decoded (base64 or
//! quoted-printable transfer encoding undone) before it is read: a block still
//! quoted-printable is reported as such ([`ArmorError::QuotedPrintable`]). [`blocks`] reads
//! every block of a text.

use crate::codec::{self, DecodeError};
use crate::crypto::{Envelope, Limits, OpenError};
use crate::group::{SignedOp, MAX_OP_LEN};
use crate::keys::KeyBundle;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

/// What an armored block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArmorKind {
    /// One [`Envelope`].
    Envelope,
    /// A batch of [`SignedOp`]s.
    Operations,
    /// One [`crate::keys::KeyBundle`]: what a newcomer hands the member who will
    /// add it.
    Bundle,
    /// A welcome: the operations a newcomer needs to join a group.
    Welcome,
    /// A sync message between two devices.
    Sync,
    /// A sender-key message (with its chain's handoff, if it is the chain's first).
    Chain,
}

impl ArmorKind {
    /// Every kind, in label order of the spec.
    pub const ALL: [Self; 6] = [
        Self::Envelope,
        Self::Operations,
        Self::Bundle,
        Self::Welcome,
        Self::Sync,
        Self::Chain,
    ];

    /// The word in the block's BEGIN and END lines.
    pub fn label(self) -> &'static str {
        match self {
            Self::Envelope => "ENVELOPE",
            Self::Operations => "OPERATIONS",
            Self::Bundle => "BUNDLE",
            Self::Welcome => "WELCOME",
            Self::Sync => "SYNC",
            Self::Chain => "CHAIN MESSAGE",
        }
    }

    /// The kind of the block a (cleaned) line begins: its BEGIN marker may follow other
    /// text on the line (a mail client's "wrote:", say), never precede it.
    fn from_begin_line(line: &str) -> Option<Self> {
        let at = line.find("-----BEGIN SPLITSAFE ")?;
        let label = line[at..]
            .strip_prefix("-----BEGIN SPLITSAFE ")?
            .strip_suffix("-----")?;
        Self::ALL.into_iter().find(|kind| kind.label() == label)
    }
}

/// Why armored text could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArmorError {
    /// No `-----BEGIN SPLITSAFE <kind>-----` line for the expected kind.
    MissingHeader(ArmorKind),
    /// The block has no matching `-----END SPLITSAFE <kind>-----` line.
    MissingFooter(ArmorKind),
    /// The block has no `=` checksum line before its footer.
    MissingChecksum,
    /// A body line is not base64, or the body's length or padding is not (the last line
    /// is named then): lines count from 1 after the BEGIN line, blank lines included.
    BadBase64 {
        /// The offending line.
        line: usize,
    },
    /// The block is still quoted-printable (`=3D` where `=` belongs): its mail body was
    /// not MIME-decoded before it was read.
    QuotedPrintable {
        /// The first line showing it, counted as for [`BadBase64`](Self::BadBase64).
        line: usize,
    },
    /// The checksum does not match the body: the text was damaged in transit.
    BadChecksum,
    /// The body is larger than the limit.
    TooLarge {
        /// Length of the encoded body, in base64 characters.
        len: usize,
        /// Largest accepted.
        max: usize,
    },
    /// The body is not a valid envelope.
    Envelope(OpenError),
    /// The body is not a valid batch of operations.
    Operations(DecodeError),
    /// The body is not a key bundle.
    Bundle(DecodeError),
}

impl fmt::Display for ArmorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingHeader(k) => write!(f, "no BEGIN SPLITSAFE {} line", k.label()),
            Self::MissingFooter(k) => write!(f, "no END SPLITSAFE {} line", k.label()),
            Self::MissingChecksum => f.write_str("no checksum line before the footer"),
            Self::BadBase64 { line } => write!(
                f,
                "line {line} after the BEGIN line of the armored block is not base64 (or the body's \
                 length or padding is wrong there): the text was damaged"
            ),
            Self::QuotedPrintable { line } => write!(
                f,
                "line {line} after the BEGIN line shows quoted-printable encoding (=3D): MIME-decode \
                 the mail body before reading it"
            ),
            Self::BadChecksum => f.write_str("armor checksum mismatch: the text was damaged"),
            Self::TooLarge { len, max } => {
                write!(f, "armored body of {len} characters exceeds {max}")
            }
            Self::Envelope(e) => write!(f, "armored envelope: {e}"),
            Self::Operations(e) => write!(f, "armored operations: {e}"),
            Self::Bundle(e) => write!(f, "armored key bundle: {e}"),
        }
    }
}

impl std::error::Error for ArmorError {}

const LINE: usize = 64;
/// Base64 of the checksum's 6 bytes.
const CHECKSUM_CHARS: usize = 8;

fn checksum(body: &[u8]) -> String {
    STANDARD.encode(&blake3::hash(body).as_bytes()[..6])
}

/// Armors `bytes` as a block of `kind`.
pub fn armor(kind: ArmorKind, bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = format!("-----BEGIN SPLITSAFE {}-----\n", kind.label());
    for line in encoded.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push('=');
    out.push_str(&checksum(bytes));
    out.push_str(&format!("\n-----END SPLITSAFE {}-----\n", kind.label()));
    out
}

/// Reads the first block of `kind` in `text`, whose decoded body may be at most `max_len`
/// bytes, and checks its checksum.
///
/// # Errors
///
/// [`ArmorError`] saying what is missing or damaged.
pub fn dearmor(kind: ArmorKind, text: &str, max_len: usize) -> Result<Vec<u8>, ArmorError> {
    let mut lines = text.lines().map(clean);
    lines
        .by_ref()
        .find(|l| ArmorKind::from_begin_line(l) == Some(kind))
        .ok_or(ArmorError::MissingHeader(kind))?;
    read_body(kind, &mut lines, max_len)
}

/// Every armored block in `text`, in order, each with its kind and decoded body (at most
/// `max_len` bytes) or what is wrong with it. Text between blocks is ignored; a damaged block
/// does not hide the blocks after it, unless it lacks its END line (then it runs to the end).
pub fn blocks(text: &str, max_len: usize) -> Vec<(ArmorKind, Result<Vec<u8>, ArmorError>)> {
    let mut lines = text.lines().map(clean);
    let mut out = Vec::new();
    while let Some(kind) = lines.by_ref().find_map(ArmorKind::from_begin_line) {
        out.push((kind, read_body(kind, &mut lines, max_len)));
    }
    out
}

/// A line as mail clients may have left it, cleaned: without its quote prefix (any run of
/// `>` and whitespace: no armor line starts with either), indentation, or trailing
/// whitespace.
fn clean(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_whitespace())
        .trim_end()
}

/// Reads a block's body from the line after its BEGIN line through its END line.
fn read_body<'a>(
    kind: ArmorKind,
    lines: &mut impl Iterator<Item = &'a str>,
    max_len: usize,
) -> Result<Vec<u8>, ArmorError> {
    let end = format!("-----END SPLITSAFE {}-----", kind.label());
    let max_chars = max_len.div_ceil(3) * 4;
    let mut body = String::new();
    let mut sum = None;
    let mut closed = false;
    let mut damage = None;
    let mut last = 0;
    for (index, line) in lines.enumerate() {
        if line == end {
            closed = true;
            break;
        }
        if damage.is_some() || line.is_empty() {
            continue; // read on to the END line, so the next block can be found
        }
        // `=3D` is how quoted-printable writes `=`; a checksum line (`=` and 8 characters)
        // may start with it legitimately, nothing else may hold it.
        let checksum_line = line.len() == 1 + CHECKSUM_CHARS;
        if line
            .match_indices("=3D")
            .any(|(at, _)| at > 0 || !checksum_line)
        {
            damage = Some(ArmorError::QuotedPrintable { line: index + 1 });
            continue;
        }
        if let Some(rest) = line.strip_prefix('=') {
            sum = Some(rest.to_string());
            continue;
        }
        if sum.is_some()
            || !line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        {
            damage = Some(ArmorError::BadBase64 { line: index + 1 });
            continue;
        }
        body.push_str(line);
        last = index + 1;
        if body.len() > max_chars {
            damage = Some(ArmorError::TooLarge {
                len: body.len(),
                max: max_chars,
            });
        }
    }
    if !closed {
        return Err(ArmorError::MissingFooter(kind));
    }
    if let Some(damage) = damage {
        return Err(damage);
    }
    let sum = sum.ok_or(ArmorError::MissingChecksum)?;
    let bytes = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| ArmorError::BadBase64 { line: last })?;
    if checksum(&bytes) != sum {
        return Err(ArmorError::BadChecksum);
    }
    Ok(bytes)
}

/// An envelope as armored text.
pub fn armor_envelope(envelope: &Envelope) -> String {
    armor(ArmorKind::Envelope, &envelope.to_cbor())
}

/// Reads an armored envelope within `limits`.
///
/// # Errors
///
/// [`ArmorError`], including [`ArmorError::Envelope`] for a body that is not a valid
/// envelope.
pub fn dearmor_envelope(text: &str, limits: Limits) -> Result<Envelope, ArmorError> {
    let bytes = dearmor(ArmorKind::Envelope, text, limits.max_encoded_len())?;
    Envelope::from_cbor(&bytes, limits).map_err(ArmorError::Envelope)
}

/// A batch of operations as armored text.
pub fn armor_ops(ops: &[SignedOp]) -> String {
    armor(ArmorKind::Operations, &codec::encode(ops))
}

/// Reads an armored batch of at most `max_ops` operations. Signatures are not checked
/// here; [`Replica::ingest_batch`](crate::group::Replica::ingest_batch) checks them.
///
/// # Errors
///
/// [`ArmorError`], including [`ArmorError::Operations`] for a body that is not a batch.
pub fn dearmor_ops(text: &str, max_ops: usize) -> Result<Vec<SignedOp>, ArmorError> {
    let max_len = max_ops.saturating_mul(MAX_OP_LEN).saturating_add(9);
    let bytes = dearmor(ArmorKind::Operations, text, max_len)?;
    let ops: Vec<SignedOp> = codec::decode(&bytes, max_len).map_err(ArmorError::Operations)?;
    if ops.len() > max_ops {
        return Err(ArmorError::Operations(DecodeError::Invalid {
            reason: format!("{} operations exceed the limit of {max_ops}", ops.len()),
        }));
    }
    Ok(ops)
}

/// A key bundle as armored text: what a newcomer sends to the member who will add it.
pub fn armor_bundle(bundle: &KeyBundle) -> String {
    armor(ArmorKind::Bundle, &codec::encode(bundle))
}

/// Reads an armored key bundle. Its signature is not checked here; adding it checks it.
///
/// # Errors
///
/// [`ArmorError`], including [`ArmorError::Bundle`] for a body that is not a bundle.
pub fn dearmor_bundle(text: &str) -> Result<KeyBundle, ArmorError> {
    let bytes = dearmor(ArmorKind::Bundle, text, MAX_BUNDLE_LEN)?;
    codec::decode(&bytes, MAX_BUNDLE_LEN).map_err(ArmorError::Bundle)
}

impl KeyBundle {
    /// The bundle as armored text (a `BUNDLE` block): what a newcomer mails the member who
    /// will add it. Same as [`armor_bundle`].
    pub fn armored(&self) -> String {
        armor_bundle(self)
    }

    /// Reads the first armored bundle in `text`. Same as [`dearmor_bundle`].
    ///
    /// # Errors
    ///
    /// [`ArmorError`] saying what is missing or damaged.
    pub fn from_armored(text: &str) -> Result<Self, ArmorError> {
        dearmor_bundle(text)
    }
}

/// A bundle's encoding is well under this.
const MAX_BUNDLE_LEN: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_inside_surrounding_text() {
        let body: Vec<u8> = (0..=255).collect();
        let text = format!(
            "Hi,\r\n> quoted\n{}\n-- \nsignature\n",
            armor(ArmorKind::Operations, &body).replace('\n', "\r\n")
        );
        assert_eq!(dearmor(ArmorKind::Operations, &text, 1024), Ok(body));
    }

    /// What mail clients do to a text body, each applied to an armored block: every one
    /// reads back the same bytes.
    #[test]
    fn blocks_survive_what_mail_clients_do_to_text() {
        let body: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let block = armor(ArmorKind::Envelope, &body);
        let each_line =
            |f: &dyn Fn(&str) -> String| -> String { block.lines().map(|l| f(l) + "\n").collect() };
        let transformations: Vec<(&str, String)> = vec![
            ("quoted reply '> '", each_line(&|l| format!("> {l}"))),
            ("quoted reply '>'", each_line(&|l| format!(">{l}"))),
            ("quoted twice '> > '", each_line(&|l| format!("> > {l}"))),
            ("quoted twice '>>'", each_line(&|l| format!(">>{l}"))),
            ("indented by spaces", each_line(&|l| format!("    {l}"))),
            ("indented by a tab", each_line(&|l| format!("\t{l}"))),
            ("CRLF line ends", each_line(&|l| format!("{l}\r"))),
            (
                "format=flowed trailing spaces",
                each_line(&|l| format!("{l} ")),
            ),
            (
                "format=flowed space-stuffed",
                each_line(&|l| format!(" {l}")),
            ),
            (
                "HTML to text: a blank line after every line",
                each_line(&|l| format!("{l}\n")),
            ),
            (
                "a blank line between the checksum and END lines",
                block.replacen("\n-----END", "\n\n-----END", 1),
            ),
            (
                "text before BEGIN on its line",
                format!("On Monday Alice wrote: {block}"),
            ),
            (
                "quoted, with the quoting client's attribution line",
                format!("Alice wrote:\n{}", each_line(&|l| format!("> {l}"))),
            ),
        ];
        for (what, text) in transformations {
            assert_eq!(
                dearmor(ArmorKind::Envelope, &text, 1024),
                Ok(body.clone()),
                "{what}"
            );
            assert_eq!(
                blocks(&text, 1024),
                vec![(ArmorKind::Envelope, Ok(body.clone()))]
            );
        }
    }

    /// A body still quoted-printable (the mail's transfer encoding not undone) is named as
    /// such; decoded, it reads.
    #[test]
    fn a_quoted_printable_body_is_named() {
        let block = armor(ArmorKind::Bundle, b"a bundle, say: sixteen bytes+");
        let qp = block.replace('=', "=3D");
        assert!(matches!(
            dearmor(ArmorKind::Bundle, &qp, 1024),
            Err(ArmorError::QuotedPrintable { .. })
        ));
        let text = dearmor(ArmorKind::Bundle, &qp, 1024)
            .unwrap_err()
            .to_string();
        assert!(text.contains("MIME-decode"), "{text}");
        assert_eq!(
            dearmor(ArmorKind::Bundle, &qp.replace("=3D", "="), 1024),
            Ok(b"a bundle, say: sixteen bytes+".to_vec())
        );
    }

    /// A checksum that happens to start with `3D` is a checksum, not quoted-printable.
    #[test]
    fn a_checksum_starting_with_3d_is_read() {
        let body = (0u32..)
            .map(|n| n.to_be_bytes().to_vec())
            .find(|b| checksum(b).starts_with("3D"))
            .unwrap();
        let block = armor(ArmorKind::Sync, &body);
        assert_eq!(dearmor(ArmorKind::Sync, &block, 1024), Ok(body));
    }

    /// Errors name the line, counted from 1 after the BEGIN line, and say what happened.
    #[test]
    fn errors_name_the_line_and_say_what_to_do() {
        let block = armor(ArmorKind::Envelope, &[7u8; 100]);
        // The padding of the last body line cut off: the body's length is wrong there.
        let cut = block.replacen("==\n", "\n", 1);
        assert_eq!(
            dearmor(ArmorKind::Envelope, &cut, 1024),
            Err(ArmorError::BadBase64 { line: 3 })
        );
        let damaged = block.replacen("BwcH", "B*cH", 1);
        let error = dearmor(ArmorKind::Envelope, &damaged, 1024).unwrap_err();
        assert_eq!(error, ArmorError::BadBase64 { line: 1 });
        assert_eq!(
            error.to_string(),
            "line 1 after the BEGIN line of the armored block is not base64 (or the body's \
             length or padding is wrong there): the text was damaged"
        );
    }

    #[test]
    fn a_bundle_reads_back_from_its_armor() {
        let id = crate::keys::Identity::from_secret_bytes([3; 32]);
        let key = crate::keys::EncryptionKey([9; 32]);
        let bundle = id.bundle(key, crate::clock::Timestamp::from_raw(7));
        let mail = format!("Here is my key:\n\n{}\nBob\n", bundle.armored());
        assert_eq!(KeyBundle::from_armored(&mail), Ok(bundle));
    }

    #[test]
    fn every_block_is_read_and_damage_stays_in_its_block() {
        let one = armor(ArmorKind::Bundle, b"first");
        let two = armor(ArmorKind::Welcome, b"second").replacen("c2Vjb25k", "c2V*b25k", 1);
        let three = armor(ArmorKind::Sync, b"third");
        let text = format!("From: a\n{one}\nsome prose\n{two}{three}-- \n");
        let read = blocks(&text, 1024);
        assert_eq!(
            read,
            vec![
                (ArmorKind::Bundle, Ok(b"first".to_vec())),
                (ArmorKind::Welcome, Err(ArmorError::BadBase64 { line: 1 })),
                (ArmorKind::Sync, Ok(b"third".to_vec())),
            ]
        );
        assert!(blocks("no armor here", 1024).is_empty());
        let unknown = one.replace("BUNDLE", "PARCEL");
        assert!(blocks(&unknown, 1024).is_empty());
    }

    #[test]
    fn damage_is_reported_precisely() {
        let text = armor(ArmorKind::Envelope, b"hello, world: some bytes");
        let flipped = text.replacen("aGVsbG8", "aGVsbG9", 1);
        assert_eq!(
            dearmor(ArmorKind::Envelope, &flipped, 1024),
            Err(ArmorError::BadChecksum)
        );
        assert_eq!(
            dearmor(ArmorKind::Operations, &text, 1024),
            Err(ArmorError::MissingHeader(ArmorKind::Operations))
        );
        let cut = text.lines().take(3).collect::<Vec<_>>().join("\n");
        assert_eq!(
            dearmor(ArmorKind::Envelope, &cut, 1024),
            Err(ArmorError::MissingFooter(ArmorKind::Envelope))
        );
        let no_sum: String = text
            .lines()
            .filter(|l| !l.starts_with('='))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            dearmor(ArmorKind::Envelope, &no_sum, 1024),
            Err(ArmorError::MissingChecksum)
        );
        let junk = text.replacen("aGVsbG8", "aGV*bG8", 1);
        assert_eq!(
            dearmor(ArmorKind::Envelope, &junk, 1024),
            Err(ArmorError::BadBase64 { line: 1 })
        );
        assert!(matches!(
            dearmor(ArmorKind::Envelope, &text, 4),
            Err(ArmorError::TooLarge { .. })
        ));
    }
}
