//! Writes the comparison table as Markdown from the last `cargo bench --bench compare` run
//! (criterion's estimates and `target/compare-extra.txt`). Use `report.sh`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

const SIZES: [usize; 3] = [10, 100, 1_000];

/// Median estimate in nanoseconds of one benchmark.
fn median(dir: &Path, id: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(id).join("new/estimates.json")).ok()?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let number: String = rest[p..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-' || *c == '+')
        .collect();
    number.parse().ok()
}

fn time(ns: Option<f64>) -> String {
    match ns {
        None => "n/a".into(),
        Some(ns) if ns >= 1e9 => format!("{:.2} s", ns / 1e9),
        Some(ns) if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 1e3 => format!("{:.1} µs", ns / 1e3),
        Some(ns) => format!("{ns:.0} ns"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

fn command(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let criterion = root.join("criterion");
    let extra: BTreeMap<String, String> = std::fs::read_to_string(root.join("compare-extra.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let get = |group: &str, id: String| median(&criterion.join(group), &id);
    let floor = |id: &str| get("floor", id.to_string());
    let bytes = |system: &str, op: &str, n: usize| {
        extra
            .get(&format!("bytes.{system}.{op}.{n}"))
            .cloned()
            .unwrap_or_else(|| "(as sealed)".into())
    };
    let (sign, verify) = (floor("ed25519_sign"), floor("ed25519_verify"));
    let (aead32, aead1k) = (
        floor("chacha20poly1305_32B"),
        floor("chacha20poly1305_1024B"),
    );
    let (x25519, blake3_1k) = (floor("x25519"), floor("blake3_1KiB"));
    let add = |x: Option<f64>, y: Option<f64>| Some(x? + y?);
    let times = |k: f64, x: Option<f64>| Some(k * x?);

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Performance: splitsafe beside OpenMLS, crdts and the primitive floors\n"
    );
    let _ = writeln!(
        out,
        "Measured in one run on one machine: {cpu}, {} cores, {}; {}; default release builds \
         (no `target-cpu=native`); OpenMLS 0.9.2 with its RustCrypto provider and memory storage, \
         ciphersuite MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519. Medians of criterion \
         samples. Produced by `benches/compare/report.sh` on {}. The X25519 floor of this run \
         is {} (36 µs on a quiet day on this machine): the host's load moves every figure, so \
         compare within a row, where splitsafe and OpenMLS ran minutes apart, not across runs.\n",
        command("nproc", &[]),
        command("uname", &["-sm"]),
        command("rustc", &["--version"]),
        command("date", &["-u", "+%Y-%m-%d"]),
        time(floor("x25519")),
    );
    let _ = writeln!(out, "Bytes are what goes on the wire: for MLS the commit plus the welcome (with the ratchet tree \
        extension); for splitsafe the signed operations; for messages the encoded ciphertext. \
        The floor is the cost of the primitives the splitsafe operation cannot avoid (an add: \
        one signature, one verification, and one X25519 that refuses weak keys; a remove: one \
        signature; a seal: n-1 32-byte AEAD wraps, one payload AEAD and a BLAKE3 hash of the \
        ciphertext; an open: one unwrap, one payload AEAD and that hash); the last column is \
        splitsafe over that floor.\n");
    let _ = writeln!(out, "| operation | n | splitsafe | bytes | OpenMLS | bytes | splitsafe / MLS | floor | splitsafe / floor |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    let mut slower = Vec::new();
    for (op, label) in [
        ("create", "create group of n"),
        ("add_one", "add one member"),
        ("remove_one", "remove one member"),
        ("seal_1KiB", "seal 1 KiB message"),
        ("open_1KiB", "open 1 KiB message"),
    ] {
        for n in SIZES {
            let ours = get("splitsafe", format!("{op}/{n}"));
            let theirs = get("mls", format!("{op}/{n}"));
            let nf = n as f64;
            // An add signs the op and checks the new member's bundle: its signature, and
            // that its X25519 key is not of small order (one X25519). A remove signs. Sealing
            // wraps per recipient, encrypts the payload and hashes the ciphertext for the
            // binding; opening unwraps, decrypts and hashes.
            let add_floor = add(sign, add(verify, x25519));
            let fl = match op {
                "create" => add(sign, times(nf - 1.0, add_floor)),
                "add_one" => add_floor,
                "remove_one" => sign,
                "seal_1KiB" => add(add(times(nf - 1.0, aead32), aead1k), blake3_1k),
                _ => add(add(aead32, aead1k), blake3_1k),
            };
            if let (Some(a), Some(b)) = (ours, theirs) {
                if a > b {
                    slower.push(format!(
                        "{label}, n = {n}: {} vs {}",
                        time(ours),
                        time(theirs)
                    ));
                }
            }
            let _ = writeln!(
                out,
                "| {label} | {n} | {} | {} | {} | {} | {} | {} | {} |",
                time(ours),
                bytes("splitsafe", op, n),
                time(theirs),
                bytes("mls", op, n),
                ratio(ours, theirs),
                time(fl),
                ratio(ours, fl),
            );
        }
    }
    let _ = writeln!(
        out,
        "| membership change on both sides of a split | 3 | {} | | fails: `{}` at one side, `{}` at the other (epochs {}) | | | | |",
        extra.get("fork.splitsafe").cloned().unwrap_or_default(),
        extra.get("fork.mls.at_a").cloned().unwrap_or_default(),
        extra.get("fork.mls.at_b").cloned().unwrap_or_default(),
        extra.get("fork.mls.epochs").cloned().unwrap_or_default(),
    );

    let _ = writeln!(
        out,
        "\n## Sender-key mode beside OpenMLS\n\n\
         splitsafe's second message mode (`MessageMode::SenderKeys`): each sender encrypts a \
         message once, on a chain it handed to its view in one pairwise envelope. A chain \
         message costs the same at any group size; the price moves to the re-key, which each \
         active sender pays once per membership change (O(n) per sender, where an MLS commit \
         is O(log n) for the whole group). The re-key row is a new chain's envelope to the \
         other n - 1 members with its first message, warm pairwise keys, beside an MLS remove \
         commit.\n"
    );
    let _ = writeln!(
        out,
        "| operation | n | splitsafe | bytes | OpenMLS | bytes | splitsafe / MLS |\n|---|---|---|---|---|---|---|"
    );
    for (ours_op, theirs_op, label) in [
        ("chain_seal_1KiB", "seal_1KiB", "seal 1 KiB message"),
        ("chain_open_1KiB", "open_1KiB", "open 1 KiB message"),
        (
            "rekey_1KiB",
            "remove_one",
            "re-key after a removal (MLS: remove commit)",
        ),
    ] {
        for n in SIZES {
            let ours = get("splitsafe", format!("{ours_op}/{n}"));
            let theirs = get("mls", format!("{theirs_op}/{n}"));
            let _ = writeln!(
                out,
                "| {label} | {n} | {} | {} | {} | {} | {} |",
                time(ours),
                bytes("splitsafe", ours_op, n),
                time(theirs),
                bytes("mls", theirs_op, n),
                ratio(ours, theirs),
            );
        }
    }

    let _ = writeln!(
        out,
        "\n## Membership merge alone: splitsafe `LwwSet` beside `crdts::Map` of LWW registers\n"
    );
    let _ = writeln!(
        out,
        "| members | splitsafe | crdts | splitsafe / crdts |\n|---|---|---|---|"
    );
    for n in SIZES {
        let ours = get("splitsafe", format!("merge_one_change/{n}"));
        let theirs = get("splitsafe", format!("crdts_merge_one_change/{n}"));
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} |",
            time(ours),
            time(theirs),
            ratio(ours, theirs)
        );
    }

    let _ = writeln!(
        out,
        "\n## Primitive floors\n\n| primitive | median |\n|---|---|"
    );
    for (id, label) in [
        ("x25519", "X25519 shared secret"),
        ("ed25519_sign", "Ed25519 sign (200 B)"),
        ("ed25519_verify", "Ed25519 verify (200 B)"),
        (
            "ed25519_batch_verify_64",
            "Ed25519 batch verify, 64 signatures",
        ),
        ("chacha20poly1305_32B", "ChaCha20-Poly1305, 32 B"),
        ("chacha20poly1305_1024B", "ChaCha20-Poly1305, 1 KiB"),
        ("blake3_1KiB", "BLAKE3, 1 KiB"),
    ] {
        let _ = writeln!(out, "| {label} | {} |", time(floor(id)));
    }

    let _ = writeln!(out, "\n## Where splitsafe is slower than MLS, and why\n");
    if slower.is_empty() {
        let _ = writeln!(out, "Nowhere in this run.");
    }
    for row in &slower {
        let _ = writeln!(out, "- {row}");
    }
    let _ = writeln!(
        out,
        "\nThese rows are pairwise envelopes. A splitsafe envelope carries one 56-byte slot per \
         recipient and sealing does one AEAD wrap per recipient, so sealing and message size \
         are O(n); an MLS application message is O(1) in the group size, because MLS pays at \
         each commit for a shared group secret. Sender-key mode (the second table) does the \
         same: O(1) per message, O(n) per sender at each membership change. \
         Creating a group of 100 is also slower here: every add is its own signed operation \
         whose bundle is verified (signature and weak-key check), where MLS adds 99 key packages \
         in one commit. \
         In exchange splitsafe needs no ordering of membership changes: the last row shows MLS \
         refusing a membership change made on the other side of a split, which splitsafe merges."
    );
    print!("{out}");
}
