//! Merge of two replicas that differ in 1% of their entries, side by side with the floor (a
//! plain `BTreeMap` pointwise-max merge of the same data) and with `crdts::Map` of LWW
//! registers; and applying one operation to a set of 100k elements.
//!
//! Run: `cargo bench --bench merge`.

#[path = "../proptests/support/crdts_oracle.rs"]
mod crdts_oracle;

use crdts::{CmRDT, CvRDT};
use crdts_oracle::{write, OracleMap};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use splitsafe::lww::{Action, LwwSet, Op};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

type BenchOp = Op<u64, u64>;

/// splitmix64: a fixed, seedless stream so every run measures the same data.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Replica A's ops, and replica B's: the same, except every 100th element has a newer op.
fn ops(n: u64) -> (Vec<BenchOp>, Vec<BenchOp>) {
    let base: Vec<_> = (0..n)
        .map(|i| Op {
            element: mix(i),
            stamp: 1 + mix(i ^ 0xABCD) % 1_000_000_000,
            action: if i % 10 == 0 {
                Action::Remove
            } else {
                Action::Insert
            },
        })
        .collect();
    let diverged = base
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let mut op = op.clone();
            if i % 100 == 0 {
                op.stamp += 1_000_000_000;
                op.action = if op.action == Action::Insert {
                    Action::Remove
                } else {
                    Action::Insert
                };
            }
            op
        })
        .collect();
    (base, diverged)
}

fn lww(ops: &[BenchOp]) -> LwwSet<u64, u64> {
    let mut set = LwwSet::new();
    for op in ops {
        set.apply(op.clone()).unwrap();
    }
    set
}

type Floor = BTreeMap<u64, (u64, bool)>;

fn floor(ops: &[BenchOp]) -> Floor {
    ops.iter()
        .map(|op| (op.element, (op.stamp, op.action == Action::Insert)))
        .collect()
}

fn floor_merge(into: &mut Floor, from: &Floor) {
    for (k, v) in from {
        into.entry(*k)
            .and_modify(|held| *held = (*held).max(*v))
            .or_insert(*v);
    }
}

fn oracle(ops: &[BenchOp], actor: u8, map: &mut OracleMap<u64, u64>) {
    for op in ops {
        let op = write(
            map,
            actor,
            op.element,
            op.action == Action::Insert,
            op.stamp,
        );
        map.apply(op);
    }
}

fn merge_one_percent(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge_1pct");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in [1_000u64, 10_000, 100_000] {
        let (a_ops, b_ops) = ops(n);

        let (a, b) = (lww(&a_ops), lww(&b_ops));
        group.bench_with_input(BenchmarkId::new("lww_set", n), &n, |bench, _| {
            bench.iter_batched(
                || a.clone(),
                |mut a| {
                    a.merge(&b).unwrap();
                    a
                },
                BatchSize::LargeInput,
            )
        });

        let (fa, fb) = (floor(&a_ops), floor(&b_ops));
        group.bench_with_input(BenchmarkId::new("btreemap_floor", n), &n, |bench, _| {
            bench.iter_batched(
                || fa.clone(),
                |mut fa| {
                    floor_merge(&mut fa, &fb);
                    fa
                },
                BatchSize::LargeInput,
            )
        });

        let mut ca = OracleMap::new();
        oracle(&a_ops, 1, &mut ca);
        let mut cb = ca.clone();
        let changed: Vec<_> = b_ops.iter().step_by(100).cloned().collect();
        oracle(&changed, 2, &mut cb);
        group.bench_with_input(BenchmarkId::new("crdts_map", n), &n, |bench, _| {
            bench.iter_batched(
                || (ca.clone(), cb.clone()),
                |(mut ca, cb)| {
                    ca.merge(cb);
                    ca
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn apply_one_op(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_one_op_100k");
    let (a_ops, _) = ops(100_000);
    let mut set = lww(&a_ops);
    let mut fl = floor(&a_ops);
    // Each iteration writes a newer op on an existing element, so the set stays at 100k and
    // every op takes effect.
    let mut stamp = 2_000_000_000u64;
    group.bench_function("lww_set", |bench| {
        bench.iter(|| {
            stamp += 1;
            let element = a_ops[(stamp % 100_000) as usize].element;
            black_box(
                set.apply(Op {
                    element,
                    stamp,
                    action: Action::Insert,
                })
                .unwrap(),
            )
        })
    });
    group.bench_function("btreemap_floor", |bench| {
        bench.iter(|| {
            stamp += 1;
            let element = a_ops[(stamp % 100_000) as usize].element;
            let held = fl.entry(element).or_insert((0, false));
            *held = (*held).max((stamp, true));
            black_box(held.0)
        })
    });
    group.finish();
}

criterion_group!(benches, merge_one_percent, apply_one_op);
criterion_main!(benches);
