//! Laws of range reconciliation (`spec/device.md`, "Sync"): asking a peer about regions of
//! its summary until none is open finds the peer's summary exactly, in rounds bounded by the
//! depth of the id space, and in bytes that grow with the authors on which the two differ,
//! not with the group. Also: a peer's descriptions cannot make a replica take it to hold
//! more authors than the bound it is given.

use crate::support;

use proptest::prelude::*;
use splitsafe::clock::Timestamp;
use splitsafe::codec;
use splitsafe::group::{
    AuthorSummary, Description, Fingerprint, GroupId, OpId, Prefix, Reconciliation, Stamp, Summary,
    BRANCHING, LEAF, MAX_AUTHORS, MAX_DEPTH,
};
use splitsafe::keys::MemberId;
use std::collections::BTreeMap;

/// An author's entry, made from `seed`: its fields are what a summary compares, not what
/// they mean.
fn entry(author: MemberId, seed: u64) -> AuthorSummary {
    let hash = |tag: &str| *blake3::hash(format!("{tag}{seed}").as_bytes()).as_bytes();
    AuthorSummary {
        count: seed % 50 + 1,
        max: Stamp {
            timestamp: Timestamp::from_raw(seed),
            author,
            op: OpId(hash("op")),
        },
        fingerprint: Fingerprint(hash("fingerprint")),
    }
}

fn id(seed: u64) -> MemberId {
    MemberId(*blake3::hash(&seed.to_be_bytes()).as_bytes())
}

/// Two summaries of one group sharing `shared` authors; `mine` alone holds `only_mine`,
/// the peer alone `only_theirs`, and `changed` of the shared ones differ. Ids are drawn as
/// BLAKE3 outputs, or (when `clustered`) all under one 3-digit prefix, as ids ground to
/// crowd a region would be.
fn pair(
    shared: u64,
    only_mine: u64,
    only_theirs: u64,
    changed: u64,
    clustered: bool,
) -> (Summary, Summary) {
    let group = GroupId([7; 32]);
    let author = |seed: u64| {
        let mut member = id(seed);
        if clustered {
            member.0[0] = 0xab;
            member.0[1] = (member.0[1] & 0x0f) | 0xc0;
        }
        member
    };
    let mut mine = BTreeMap::new();
    let mut theirs = BTreeMap::new();
    for seed in 0..shared {
        let a = author(seed);
        mine.insert(a, entry(a, seed));
        let theirs_seed = if seed < changed {
            seed + 1_000_000
        } else {
            seed
        };
        theirs.insert(a, entry(a, theirs_seed));
    }
    for seed in shared..shared + only_mine {
        mine.insert(author(seed), entry(author(seed), seed));
    }
    for seed in shared + only_mine..shared + only_mine + only_theirs {
        theirs.insert(author(seed), entry(author(seed), seed));
    }
    (
        Summary {
            group,
            authors: mine,
        },
        Summary {
            group,
            authors: theirs,
        },
    )
}

/// The rounds and bytes (asks and descriptions, as CBOR) it takes `mine` to find out
/// `theirs`, asking about every open region each round; and what it found.
fn find_out(mine: &Summary, theirs: &Summary) -> (usize, usize, Reconciliation) {
    let mut learning = Reconciliation::default();
    let (mut rounds, mut bytes) = (0, 0);
    while !learning.is_complete() {
        let asks = learning.asks();
        let tells: Vec<Description> = asks.iter().map(|p| theirs.describe(p)).collect();
        bytes += codec::encode(&asks).len() + codec::encode(&tells).len();
        learning.take(mine, &tells, MAX_AUTHORS).unwrap();
        rounds += 1;
        assert!(rounds <= MAX_DEPTH + 1, "each round goes one digit deeper");
    }
    (rounds, bytes, learning)
}

/// The most one open region costs in a round: its ask, and the larger of a split (16 parts)
/// and a leaf (`LEAF` authors).
fn per_region(summary: &Summary) -> usize {
    let prefix = codec::encode(&Prefix::new(vec![0; MAX_DEPTH]).unwrap()).len();
    let author = summary
        .authors
        .iter()
        .map(|entry| codec::encode(&BTreeMap::from([entry])).len())
        .max()
        .unwrap_or(0);
    let split = codec::encode(&summary.describe(&Prefix::root()).split).len();
    prefix + (prefix + 16 + (BRANCHING * 27).max(split).max(LEAF * author))
}

proptest! {
    #![proptest_config(support::config())]

    /// Whatever the two summaries hold, the asker ends up with the peer's, exactly.
    #[test]
    fn reconciliation_finds_the_peers_summary_exactly(
        shared in 0u64..400,
        only_mine in 0u64..30,
        only_theirs in 0u64..30,
        changed in 0u64..30,
        clustered: bool,
    ) {
        let changed = changed.min(shared);
        let (mine, theirs) = pair(shared, only_mine, only_theirs, changed, clustered);
        let (_, _, learning) = find_out(&mine, &theirs);
        prop_assert_eq!(learning.found(), &theirs.authors);
    }

    /// Bytes grow with the differences: each round, every open region holds an author on
    /// which the two differ, so a round costs at most `d` regions; and when nothing differs,
    /// one ask and one split (or leaf) settle it all.
    #[test]
    fn reconciliation_bytes_grow_with_the_differences(
        shared in 100u64..2_000,
        only_mine in 0u64..4,
        only_theirs in 0u64..4,
        changed in 0u64..4,
    ) {
        let (mine, theirs) = pair(shared, only_mine, only_theirs, changed, false);
        let d = (only_mine + only_theirs + changed) as usize;
        let (rounds, bytes, _) = find_out(&mine, &theirs);
        let bound = per_region(&theirs) * (1 + d * rounds);
        prop_assert!(bytes <= bound, "{bytes} B in {rounds} rounds for {d} differences > {bound}");
        // Ids spread evenly: about log16(n / LEAF) + 2 rounds at these sizes.
        prop_assert!(rounds <= 5, "{rounds} rounds");
    }

    /// However the peer answers (made-up counts and authors included), the asker never takes
    /// it to hold more authors than its bound, and a refused answer changes nothing.
    #[test]
    fn a_peer_cannot_claim_more_authors_than_the_bound(
        counts in proptest::collection::vec(0u64..1_000, BRANCHING),
        max in 0u64..5_000,
        rounds in 1usize..4,
    ) {
        let (mine, _) = pair(50, 0, 0, 0, false);
        let mut learning = Reconciliation::default();
        for round in 0..rounds {
            let tells: Vec<Description> = learning
                .asks()
                .into_iter()
                .map(|prefix| Description {
                    prefix,
                    authors: BTreeMap::new(),
                    split: counts
                        .iter()
                        .map(|&c| splitsafe::group::Part(c, splitsafe::group::RegionFingerprint([round as u8; 16])))
                        .collect(),
                })
                .collect();
            let before = learning.clone();
            if learning.take(&mine, &tells, max).is_err() {
                prop_assert_eq!(&learning, &before);
            }
            let open: usize = learning.asks().len();
            prop_assert!((learning.found().len() + open) as u64 <= max.max(1));
        }
    }
}

/// A description names its region's authors only if it has few, and its parts add up.
#[test]
fn a_split_adds_up_and_a_leaf_is_small() {
    let (summary, _) = pair(3_000, 0, 0, 0, false);
    let mut prefixes = vec![Prefix::root()];
    while let Some(prefix) = prefixes.pop() {
        let description = summary.describe(&prefix);
        assert!(description.is_well_formed());
        let part = summary.part(&prefix);
        if description.split.is_empty() {
            assert!(description.authors.len() <= LEAF);
            assert_eq!(description.authors.len() as u64, part.0);
            continue;
        }
        assert_eq!(description.split.iter().map(|p| p.0).sum::<u64>(), part.0);
        for digit in 0..BRANCHING as u8 {
            let mut digits = prefix.digits().to_vec();
            digits.push(digit);
            prefixes.push(Prefix::new(digits).unwrap());
        }
    }
}

/// Ill-formed descriptions: a prefix digit out of range, a split of 15 parts, a leaf of
/// `LEAF + 1` authors, an author outside its region, a split of a single id.
#[test]
fn ill_formed_descriptions_are_told_apart() {
    let (summary, _) = pair(40, 0, 0, 0, false);
    let root = summary.describe(&Prefix::root());
    assert!(root.is_well_formed());
    assert!(Prefix::new(vec![16]).is_none());
    let mut short = root.clone();
    short.split.pop();
    assert!(!short.is_well_formed());
    let mut crowded = Description {
        prefix: Prefix::root(),
        authors: summary.authors.clone().into_iter().take(LEAF + 1).collect(),
        split: Vec::new(),
    };
    assert!(!crowded.is_well_formed());
    crowded.authors = summary.authors.clone().into_iter().take(LEAF).collect();
    assert!(crowded.is_well_formed());
    let first = *crowded.authors.keys().next().unwrap();
    let other_digit = (first.0[0] >> 4) ^ 1;
    crowded.prefix = Prefix::new(vec![other_digit]).unwrap();
    assert!(!crowded.is_well_formed(), "an author outside the region");
    let deepest = Description {
        prefix: Prefix::new(vec![0; MAX_DEPTH]).unwrap(),
        authors: BTreeMap::new(),
        split: root.split.clone(),
    };
    assert!(!deepest.is_well_formed(), "a single id has no parts");
}
