//! The device store in SQLite: one row per operation, pending envelope, seen envelope, sync
//! peer and sender whose chains are held, each call's writes in one transaction.
//!
//! Durability: write-ahead log. Commits of [`Durability::PowerLoss`] (the device's own
//! operations and keys) run with `synchronous = FULL`, so they survive a power loss; the
//! others with `synchronous = NORMAL`, so they survive a crash of the process and, after a
//! power loss, the file is consistent but may lack the last of them (what others sent can be
//! received again). A call cut short leaves nothing.
//!
//! Erasure: `secure_delete` overwrites deleted and replaced rows, and freed pages, with
//! zeros. The write-ahead log would still hold every committed page image, old keys in
//! them, so a commit of [`Durability::Erasure`] is checkpointed into the main file and the
//! log truncated to nothing before it returns; opening does the same, for a process killed
//! in between. The lock is exclusive (`locking_mode = EXCLUSIVE`), so the log's index lives
//! in the process's memory and there is no `-shm` file.
//!
//! Lock: the store is locked from `open` until it is dropped; a second `open` of the same
//! file, from any process, fails with [`StoreError::Locked`].
//!
//! The file holds the keyring's secrets in clear (see [`Store`]): the platform must protect
//! it (file permissions, disk encryption), as it protects any messenger's database. SQLite's
//! own buffers are not zeroized.

use super::store::{
    Durability, Place, Store, StoreError, Stored, StoredGroup, StoredPending, Write,
};
use crate::clock::Timestamp;
use crate::crypto::EnvelopeId;
use crate::group::{GroupId, OpId};
use crate::keys::MemberId;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use zeroize::Zeroizing;

/// Schema migrations: entry `i` takes the schema from version `i` to `i + 1`
/// (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE keyring (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 0),
        export BLOB NOT NULL
    );
    CREATE TABLE groups (id BLOB PRIMARY KEY, clock BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE ops (
        grp BLOB NOT NULL, id BLOB NOT NULL, place BLOB NOT NULL, bytes BLOB NOT NULL,
        UNIQUE (grp, id)
    );
    CREATE TABLE pending (id BLOB PRIMARY KEY, grp BLOB NOT NULL, bytes BLOB NOT NULL)
        WITHOUT ROWID;
    CREATE TABLE seen (id BLOB PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE peers (
        grp BLOB NOT NULL, peer BLOB NOT NULL, state BLOB NOT NULL,
        PRIMARY KEY (grp, peer)
    ) WITHOUT ROWID;
",
    "
    ALTER TABLE groups ADD COLUMN mode BLOB;
    CREATE TABLE chains (
        grp BLOB NOT NULL, sender BLOB NOT NULL, state BLOB NOT NULL,
        PRIMARY KEY (grp, sender)
    ) WITHOUT ROWID;
",
    "
    CREATE TABLE deliveries (id BLOB PRIMARY KEY, bytes BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE judged (id BLOB PRIMARY KEY, bytes BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE own_chains (grp BLOB PRIMARY KEY, state BLOB NOT NULL) WITHOUT ROWID;
    ALTER TABLE pending ADD COLUMN arrived BLOB NOT NULL DEFAULT x'0000000000000000';
",
    "
    ALTER TABLE pending ADD COLUMN authentic BLOB NOT NULL DEFAULT x'00';
    CREATE TABLE invitations (grp BLOB PRIMARY KEY, arrived BLOB NOT NULL, bytes BLOB NOT NULL)
        WITHOUT ROWID;
",
    // Each group gets a small number, and operations name their group by it: the 32-byte
    // group id was repeated in every row and in the unique index (80 of 656 bytes per
    // operation).
    "
    ALTER TABLE groups ADD COLUMN num INTEGER;
    UPDATE groups SET num = (SELECT count(*) FROM groups AS earlier WHERE earlier.id <= groups.id);
    CREATE UNIQUE INDEX groups_num ON groups (num);
    CREATE TABLE ops_by_num (
        g INTEGER NOT NULL, id BLOB NOT NULL, place BLOB NOT NULL, bytes BLOB NOT NULL,
        UNIQUE (g, id)
    );
    INSERT INTO ops_by_num (g, id, place, bytes)
        SELECT groups.num, ops.id, ops.place, ops.bytes FROM ops JOIN groups ON groups.id = ops.grp;
    DROP TABLE ops;
    ALTER TABLE ops_by_num RENAME TO ops;
",
];

fn backend(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Locked
        }
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// A [`Store`] in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, migrating its schema to this code's version.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if SQLite fails; [`StoreError::Corrupt`] if the schema is
    /// newer than this code.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::setup(Connection::open(path).map_err(backend)?)
    }

    /// A store in memory (for tests: the same SQL, nothing on disk).
    ///
    /// # Errors
    ///
    /// As for [`open`](Self::open).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::setup(Connection::open_in_memory().map_err(backend)?)
    }

    fn setup(mut conn: Connection) -> Result<Self, StoreError> {
        // First of all: on a new file it can only be set before anything is written.
        conn.pragma_update(None, "auto_vacuum", "FULL")
            .map_err(backend)?;
        // A store in use is refused at once, not after waiting for it.
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(backend)?;
        // Before the log is entered, so that its index is kept in memory (no `-shm`).
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        // Take the write lock now and keep it (exclusive mode never releases it), so that a
        // second opener fails here rather than at its first write.
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(backend)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(backend)?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        Self::give_back_free_pages(&conn, version)?;
        if version > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "schema version {version} is newer than this code's {}",
                MIGRATIONS.len()
            )));
        }
        for (from, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = conn.transaction().map_err(backend)?;
            tx.execute_batch(migration).map_err(backend)?;
            tx.pragma_update(None, "user_version", from as i64 + 1)
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
        }
        let store = Self { conn };
        // A process killed between an erasure's commit and its checkpoint left the old pages
        // in the log.
        store.truncate_log()?;
        Ok(store)
    }

    /// Every commit gives freed pages back to the file system (`auto_vacuum = FULL`, set
    /// first thing in `setup`). Accepting an invitation deletes a copy of the whole log (the
    /// welcome kept until then), which otherwise stayed in the file as free pages: 40% of a
    /// 10,000-operation group's file. A new file takes the setting at once; a file made
    /// before it is rewritten once (`VACUUM`, with `secure_delete` on, so no freed page
    /// survives it).
    fn give_back_free_pages(conn: &Connection, version: usize) -> Result<(), StoreError> {
        let mode: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
            .map_err(backend)?;
        const FULL: i64 = 1;
        if mode != FULL && version > 0 {
            conn.execute_batch("VACUUM").map_err(backend)?;
        }
        Ok(())
    }

    /// Copies the log into the main file and truncates it to nothing.
    fn truncate_log(&self) -> Result<(), StoreError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .map_err(backend)?;
        if busy != 0 {
            return Err(StoreError::Locked);
        }
        Ok(())
    }

    /// The schema version of the open file.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if SQLite fails.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(backend)
    }
}

fn array<const N: usize>(bytes: Vec<u8>, what: &str) -> Result<[u8; N], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not {N} bytes")))
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Option<Stored>, StoreError> {
        let conn = &self.conn;
        let Some(export) = conn
            .query_row("SELECT export FROM keyring", [], |row| {
                row.get::<_, Vec<u8>>(0)
            })
            .optional()
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let mut stored = Stored {
            keyring: Zeroizing::new(export),
            ..Stored::default()
        };
        let rows = |sql: &str| -> Result<Vec<Vec<Vec<u8>>>, StoreError> {
            let mut statement = conn.prepare(sql).map_err(backend)?;
            let width = statement.column_count();
            let rows = statement
                .query_map([], |row| (0..width).map(|i| row.get(i)).collect())
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        };
        for row in rows("SELECT id, clock, coalesce(mode, x'') FROM groups")? {
            let [id, clock, mode] = <[Vec<u8>; 3]>::try_from(row).expect("three columns");
            let clock = u64::from_be_bytes(array(clock, "a clock")?);
            let mode = match mode[..] {
                [] => None,
                [kind, above] => Some([kind, above]),
                _ => return Err(StoreError::Corrupt("a mode is not two bytes".into())),
            };
            stored.groups.insert(
                GroupId(array(id, "a group id")?),
                StoredGroup {
                    clock: Timestamp::from_raw(clock),
                    ops: Default::default(),
                    mode,
                },
            );
        }
        self.load_ops(&mut stored)?;
        for row in rows("SELECT id, grp, arrived, authentic, bytes FROM pending")? {
            let [id, group, arrived, authentic, bytes] =
                <[Vec<u8>; 5]>::try_from(row).expect("five columns");
            let authentic = match array(authentic, "a flag")? {
                [0] => false,
                [1] => true,
                _ => return Err(StoreError::Corrupt("a flag neither 0 nor 1".into())),
            };
            let row = StoredPending {
                group: GroupId(array(group, "a group id")?),
                arrived_ms: u64::from_be_bytes(array(arrived, "an arrival time")?),
                authentic,
                bytes,
            };
            stored
                .pending
                .insert(EnvelopeId(array(id, "an envelope id")?), row);
        }
        for row in rows("SELECT id FROM seen")? {
            let [id] = <[Vec<u8>; 1]>::try_from(row).expect("one column");
            stored.seen.insert(EnvelopeId(array(id, "an envelope id")?));
        }
        for row in rows("SELECT grp, peer, state FROM peers")? {
            let [group, peer, state] = <[Vec<u8>; 3]>::try_from(row).expect("three columns");
            stored.peers.insert(
                (
                    GroupId(array(group, "a group id")?),
                    MemberId(array(peer, "a member id")?),
                ),
                state,
            );
        }
        for row in rows("SELECT grp, sender, state FROM chains")? {
            let [group, sender, state] = <[Vec<u8>; 3]>::try_from(row).expect("three columns");
            stored.chains.insert(
                (
                    GroupId(array(group, "a group id")?),
                    MemberId(array(sender, "a member id")?),
                ),
                Zeroizing::new(state),
            );
        }
        for row in rows("SELECT grp, state FROM own_chains")? {
            let [group, state] = <[Vec<u8>; 2]>::try_from(row).expect("two columns");
            stored
                .own_chains
                .insert(GroupId(array(group, "a group id")?), Zeroizing::new(state));
        }
        for row in rows("SELECT grp, arrived, bytes FROM invitations")? {
            let [group, arrived, bytes] = <[Vec<u8>; 3]>::try_from(row).expect("three columns");
            let arrived = u64::from_be_bytes(array(arrived, "an arrival time")?);
            stored
                .invitations
                .insert(GroupId(array(group, "a group id")?), (arrived, bytes));
        }
        for (table, map) in [
            ("deliveries", &mut stored.deliveries),
            ("judged", &mut stored.judged),
        ] {
            for row in rows(&format!("SELECT id, bytes FROM {table}"))? {
                let [id, bytes] = <[Vec<u8>; 2]>::try_from(row).expect("two columns");
                map.insert(EnvelopeId(array(id, "an envelope id")?), bytes);
            }
        }
        Ok(Some(stored))
    }

    fn commit(&mut self, writes: &[Write], durability: Durability) -> Result<(), StoreError> {
        let full = durability != Durability::Crash;
        if full {
            self.conn
                .pragma_update(None, "synchronous", "FULL")
                .map_err(backend)?;
        }
        let result = self.transaction(writes);
        if full {
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(backend)?;
        }
        result?;
        if durability == Durability::Erasure {
            self.truncate_log()?;
        }
        Ok(())
    }
}

impl SqliteStore {
    /// Reads every operation row into its group of `stored`. Each row costs one
    /// allocation, for its bytes (a vector per column was five per row, and freeing them
    /// a tenth of reopening a device), and each group's map is built from sorted rows at
    /// once rather than one insertion at a time.
    fn load_ops(&self, stored: &mut Stored) -> Result<(), StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(what.into());
        let mut ops = Vec::new();
        let mut statement = self
            .conn
            .prepare("SELECT groups.id, ops.id, ops.place, ops.bytes FROM ops JOIN groups ON groups.num = ops.g")
            .map_err(backend)?;
        let mut rows = statement.query([]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let blob = |i: usize| {
                let value = row.get_ref(i).map_err(backend)?;
                value
                    .as_blob()
                    .map_err(|_| corrupt("an op's column is not a blob"))
            };
            let group: [u8; 32] = blob(0)?
                .try_into()
                .map_err(|_| corrupt("a group id is not 32 bytes"))?;
            let id: [u8; 32] = blob(1)?
                .try_into()
                .map_err(|_| corrupt("an op id is not 32 bytes"))?;
            let place = match blob(2)? {
                [code] => Place::from_code(*code),
                _ => None,
            }
            .ok_or_else(|| corrupt("an op in no known place"))?;
            ops.push((GroupId(group), OpId(id), place, blob(3)?.to_vec()));
        }
        ops.sort_unstable_by_key(|(group, id, ..)| (*group, *id));
        let mut ops = ops.into_iter().peekable();
        while let Some(&(group, ..)) = ops.peek() {
            let of_group = std::iter::from_fn(|| ops.next_if(|op| op.0 == group));
            stored
                .groups
                .get_mut(&group)
                .ok_or_else(|| corrupt("an op of an unknown group"))?
                .ops = of_group
                .map(|(_, id, place, bytes)| (id, (place, bytes)))
                .collect();
        }
        Ok(())
    }

    fn transaction(&mut self, writes: &[Write]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(backend)?;
        // Groups' rows first: an operation names its group by the row's number, and a batch
        // may write a new group's operations before its clock. In one transaction the
        // order of the writes is otherwise invisible, and each group's clocks keep theirs.
        let (clocks, rest): (Vec<&Write>, Vec<&Write>) = writes
            .iter()
            .partition(|write| matches!(write, Write::Clock { .. }));
        for write in clocks.into_iter().chain(rest) {
            match write {
                Write::Keyring(export) => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO keyring (singleton, export) VALUES (0, ?1)",
                    )
                    .and_then(|mut s| s.execute(params![export.as_slice()])),
                Write::Clock { group, clock } => tx
                    .prepare_cached(
                        "INSERT INTO groups (id, clock, num)
                         VALUES (?1, ?2, (SELECT coalesce(max(num), 0) + 1 FROM groups))
                         ON CONFLICT (id) DO UPDATE SET clock = excluded.clock",
                    )
                    .and_then(|mut s| {
                        s.execute(params![&group.0[..], &clock.as_raw().to_be_bytes()[..]])
                    }),
                Write::Op {
                    group,
                    id,
                    place,
                    bytes,
                } => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO ops (g, id, place, bytes)
                         VALUES ((SELECT num FROM groups WHERE id = ?1), ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![&group.0[..], &id.0[..], &[place.code()][..], bytes])
                    }),
                Write::DeleteOp { group, id } => tx
                    .prepare_cached(
                        "DELETE FROM ops WHERE g = (SELECT num FROM groups WHERE id = ?1) AND id = ?2",
                    )
                    .and_then(|mut s| s.execute(params![&group.0[..], &id.0[..]])),
                Write::Pending {
                    id,
                    group,
                    arrived_ms,
                    authentic,
                    bytes,
                } => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO pending (id, grp, arrived, authentic, bytes)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            &id.0[..],
                            &group.0[..],
                            &arrived_ms.to_be_bytes()[..],
                            &[u8::from(*authentic)][..],
                            bytes
                        ])
                    }),
                Write::DeletePending(id) => tx
                    .prepare_cached("DELETE FROM pending WHERE id = ?1")
                    .and_then(|mut s| s.execute(params![&id.0[..]])),
                Write::Seen(id) => tx
                    .prepare_cached("INSERT OR IGNORE INTO seen (id) VALUES (?1)")
                    .and_then(|mut s| s.execute(params![&id.0[..]])),
                Write::Peer { group, peer, state } => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO peers (grp, peer, state) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![&group.0[..], &peer.0[..], state])),
                Write::Chains {
                    group,
                    sender,
                    state,
                } => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO chains (grp, sender, state) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![&group.0[..], &sender.0[..], state.as_slice()])
                    }),
                Write::DeleteChains { group, sender } => tx
                    .prepare_cached("DELETE FROM chains WHERE grp = ?1 AND sender = ?2")
                    .and_then(|mut s| s.execute(params![&group.0[..], &sender.0[..]])),
                Write::OwnChain { group, state } => tx
                    .prepare_cached("INSERT OR REPLACE INTO own_chains (grp, state) VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(params![&group.0[..], state.as_slice()])),
                Write::Invitation {
                    group,
                    arrived_ms,
                    bytes,
                } => tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO invitations (grp, arrived, bytes) VALUES (?1, ?2, ?3)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![&group.0[..], &arrived_ms.to_be_bytes()[..], bytes])
                    }),
                Write::DeleteInvitation(group) => tx
                    .prepare_cached("DELETE FROM invitations WHERE grp = ?1")
                    .and_then(|mut s| s.execute(params![&group.0[..]])),
                Write::Delivery { id, bytes } => tx
                    .prepare_cached("INSERT OR REPLACE INTO deliveries (id, bytes) VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(params![&id.0[..], bytes])),
                Write::DeleteDelivery(id) => tx
                    .prepare_cached("DELETE FROM deliveries WHERE id = ?1")
                    .and_then(|mut s| s.execute(params![&id.0[..]])),
                Write::Judged { id, bytes } => tx
                    .prepare_cached("INSERT OR REPLACE INTO judged (id, bytes) VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(params![&id.0[..], bytes])),
                Write::DeleteJudged(id) => tx
                    .prepare_cached("DELETE FROM judged WHERE id = ?1")
                    .and_then(|mut s| s.execute(params![&id.0[..]])),
                Write::Mode { group, mode } => tx
                    .prepare_cached("UPDATE groups SET mode = ?2 WHERE id = ?1")
                    .and_then(|mut s| s.execute(params![&group.0[..], &mode[..]])),
            }
            .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{Durability, Place, Store, Write};
    use std::collections::BTreeMap;

    /// A store of schema version 4 (operations keyed by the whole group id) migrates to
    /// group numbers with every row intact, and numbers new groups after the old ones.
    #[test]
    fn operations_keyed_by_group_id_migrate_to_group_numbers() {
        let conn = Connection::open_in_memory().unwrap();
        for migration in &MIGRATIONS[..4] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute(
            "INSERT INTO keyring (singleton, export) VALUES (0, x'01')",
            [],
        )
        .unwrap();
        let groups = [GroupId([9; 32]), GroupId([3; 32])];
        for (i, group) in groups.iter().enumerate() {
            conn.execute(
                "INSERT INTO groups (id, clock) VALUES (?1, ?2)",
                params![&group.0[..], &(i as u64 + 7).to_be_bytes()[..]],
            )
            .unwrap();
            for op in 0..3u8 {
                conn.execute(
                    "INSERT INTO ops (grp, id, place, bytes) VALUES (?1, ?2, ?3, ?4)",
                    params![
                        &group.0[..],
                        &[op; 32][..],
                        &[op % 3][..],
                        &vec![op; 40 + i]
                    ],
                )
                .unwrap();
            }
        }
        let mut store = SqliteStore::setup(conn).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let stored = store.load().unwrap().unwrap();
        for (i, group) in groups.iter().enumerate() {
            let held = &stored.groups[group];
            assert_eq!(held.clock.as_raw(), i as u64 + 7);
            let expected: BTreeMap<OpId, (Place, Vec<u8>)> = (0..3u8)
                .map(|op| {
                    let place = Place::from_code(op % 3).unwrap();
                    (OpId([op; 32]), (place, vec![op; 40 + i]))
                })
                .collect();
            assert_eq!(held.ops, expected);
        }

        // A new group's operation, written before its clock in one batch, and a deletion.
        let new = GroupId([5; 32]);
        let writes = [
            Write::Op {
                group: new,
                id: OpId([1; 32]),
                place: Place::Logged,
                bytes: vec![1, 2, 3],
            },
            Write::Clock {
                group: new,
                clock: Timestamp::from_raw(11),
            },
            Write::DeleteOp {
                group: groups[0],
                id: OpId([0; 32]),
            },
        ];
        store.commit(&writes, Durability::Crash).unwrap();
        let stored = store.load().unwrap().unwrap();
        assert_eq!(stored.groups[&new].clock.as_raw(), 11);
        assert_eq!(stored.groups[&new].ops.len(), 1);
        assert_eq!(stored.groups[&groups[0]].ops.len(), 2);
        assert_eq!(stored.groups[&groups[1]].ops.len(), 3);
        let numbers: Vec<i64> = store
            .conn
            .prepare("SELECT num FROM groups ORDER BY num")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(numbers, vec![1, 2, 3]);
    }
}
