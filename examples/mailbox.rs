//! Three devices (Alice, Bob, Carol), each with its own SQLite store in a temporary directory,
//! exchange armored text files through mailbox directories, as over email. Each device runs
//! as a command-line tool would: every call opens its store, does one thing and closes it
//! (the store is locked while open). What a device delivers stays in its store until the
//! application has stored it and acknowledged it, so a device killed between reading a mail
//! and storing the message hands the message back when it is opened again. The network
//! splits (Carol's mail is held back), Alice removes Carol while Carol keeps sending, Bob
//! rotates his key, mail is lost and duplicated, Bob is killed mid-read, and the split heals
//! by sync. It prints who read what and a verdict; the exit code is 0 exactly when the
//! verdict holds.
//!
//! ```sh
//! cargo run --bin mailbox
//! ```

use splitsafe::device::{
    Delivery, Device, DeviceConfig, DeviceError, Event, Message, Outgoing, Received, SqliteStore,
};
use splitsafe::group::{GroupId, Standing};
use splitsafe::keys::{Identity, MemberId};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const T0: u64 = 1_795_694_400_000; // 2026-11-26 12:00 UTC
const NAMES: [&str; 3] = ["alice", "bob", "carol"];

/// The post office: one directory per recipient; a file per piece of mail.
struct Post {
    root: PathBuf,
    sent: u64,
    /// While split, mail between Carol and the others waits here.
    split: bool,
    held: Vec<(usize, String)>,
    /// The next piece of mail to this recipient is lost.
    lose_next_to: Option<usize>,
    /// Which pieces of mail (by number) arrive twice.
    twice: BTreeSet<u64>,
}

impl Post {
    fn box_of(&self, to: usize) -> PathBuf {
        self.root.join("mail").join(NAMES[to])
    }

    fn send(&mut self, from: usize, to: usize, message: &Message) {
        self.sent += 1;
        let text = format!(
            "From: {}\nTo: {}\n\n{}",
            NAMES[from],
            NAMES[to],
            message.armored()
        );
        if self.split && (from == 2) != (to == 2) {
            self.held.push((to, text));
        } else if self.lose_next_to == Some(to) {
            self.lose_next_to = None;
        } else {
            self.drop_in(to, &text);
            if self.twice.contains(&self.sent) {
                self.drop_in(to, &text);
            }
        }
    }

    fn drop_in(&mut self, to: usize, text: &str) {
        let dir = self.box_of(to);
        std::fs::create_dir_all(&dir).expect("mail directory");
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        std::fs::write(dir.join(format!("{:06}-{n}.txt", self.sent)), text).expect("mail file");
    }

    fn heal(&mut self) {
        self.split = false;
        for (to, text) in std::mem::take(&mut self.held) {
            self.drop_in(to, &text);
        }
    }

    /// Takes every file in `to`'s mailbox, oldest first.
    fn fetch(&self, to: usize) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.box_of(to)) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        files
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).expect("mail file");
                std::fs::remove_file(&path).expect("mail file");
                text
            })
            .collect()
    }
}

/// What each device read, and from whom with which standing.
#[derive(Default)]
struct Reads {
    read: BTreeMap<usize, Vec<(String, String, Standing)>>,
    duplicates: usize,
    pending: usize,
}

struct World {
    root: PathBuf,
    ids: Vec<MemberId>,
    post: Post,
    group: GroupId,
    now: u64,
    reads: Reads,
    /// Times a device was opened from its store.
    opens: usize,
    kills: usize,
}

impl World {
    /// Opens device `i` from its store, as a command-line tool does for each call, and
    /// first stores whatever it delivered and the application did not acknowledge (a
    /// previous call was killed before storing it).
    fn device(&mut self, i: usize) -> Device<SqliteStore> {
        let path = self.root.join(format!("{}.db", NAMES[i]));
        let store = SqliteStore::open(path).expect("the store is not open elsewhere");
        let mut device = Device::open(store, DeviceConfig::default()).expect("reopens");
        self.opens += 1;
        let owed: Vec<Delivery> = device.unacknowledged().cloned().collect();
        for delivery in owed {
            if let Delivery::Message(received) = &delivery {
                println!(
                    "    {} finds a message it had not stored: {:?}",
                    NAMES[i],
                    String::from_utf8_lossy(&received.plaintext)
                );
                self.store(i, received);
            }
            device.ack(delivery.id()).expect("store");
        }
        device
    }

    fn tick(&mut self) -> u64 {
        self.now += 1_000;
        self.now
    }

    /// Mails what device `from` made to everyone it is addressed to.
    fn post_to(&mut self, from: usize, outgoing: &Outgoing) {
        for member in &outgoing.to {
            let to = self.ids.iter().position(|id| id == member).expect("known");
            self.post.send(from, to, outgoing);
        }
    }

    fn say(&mut self, from: usize, text: &str) {
        let (group, now) = (self.group, self.tick());
        let mut rng = splitsafe::rng::os_rng();
        match self
            .device(from)
            .send(group, text.as_bytes(), &mut rng, now)
        {
            Ok(sealed) => self.post_to(from, &sealed),
            Err(e) => println!("    {} cannot send {text:?}: {e}", NAMES[from]),
        }
    }

    /// Each device reads its mailbox, one call per mail.
    fn read_mail(&mut self) {
        for i in 0..3 {
            for text in self.post.fetch(i) {
                let now = self.tick();
                let mut device = self.device(i);
                let events = device.receive(text.as_bytes(), now).expect("store");
                self.note(i, &mut device, events);
            }
        }
    }

    /// Bob reads his next mail and is killed before the application stores what it gave.
    fn kill_bob_mid_read(&mut self) {
        if let Some(text) = self.post.fetch(1).into_iter().next() {
            let now = self.tick();
            self.device(1).receive(text.as_bytes(), now).expect("store");
            println!("    Bob is killed after reading a mail, before storing its message.");
            self.kills += 1;
        }
    }

    /// The application's own storage: what device `i` read.
    fn store(&mut self, i: usize, m: &Received) {
        let from = self.ids.iter().position(|id| *id == m.sender).unwrap_or(9);
        let text = String::from_utf8_lossy(&m.plaintext).to_string();
        let read = self.reads.read.entry(i).or_default();
        // Delivery is at least once: the application keeps one copy per message.
        if !read.iter().any(|(_, t, _)| *t == text) {
            read.push((
                NAMES.get(from).copied().unwrap_or("?").to_string(),
                text,
                m.standing,
            ));
        }
    }

    fn note(&mut self, i: usize, device: &mut Device<SqliteStore>, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Message(m) => {
                    self.store(i, &m);
                    device.ack(m.id).expect("store");
                }
                Event::Rejudged(r) => {
                    let kind = |s: Standing| match s {
                        Standing::Member => "a member's",
                        Standing::Removed { .. } => "a removed member's",
                        Standing::Beyond { .. } => "from beyond a removal",
                    };
                    println!(
                        "    {} judges a message it read again: {}, no longer {}",
                        NAMES[i],
                        kind(r.standing),
                        kind(r.was)
                    );
                    device.ack(r.id).expect("store");
                }
                Event::Publish { message, .. } => self.post_to(i, &message),
                Event::Invited(invited) if invited.from == self.ids[0] => {
                    // Each user joins Alice's group, and no other.
                    let now = self.tick();
                    let joined = device.accept(invited.group, now).expect("store");
                    println!("    {} accepts Alice's invitation", NAMES[i]);
                    self.note(i, device, joined);
                }
                Event::Duplicate(_) => self.reads.duplicates += 1,
                Event::Pending { .. } => self.reads.pending += 1,
                _ => {}
            }
        }
    }

    /// Everyone sends everyone a sync message, through the (lossy) post, until all are
    /// silent; then lets time release what waits on it.
    fn sync(&mut self) {
        for _ in 0..10 {
            let mut said = false;
            for a in 0..3 {
                // Every group, every member and past member: the device knows who is due.
                for sync in self.device(a).syncs_due().expect("store") {
                    self.post_to(a, &sync);
                    said = true;
                }
            }
            self.read_mail();
            if !said {
                break;
            }
        }
        for i in 0..3 {
            let now = self.tick();
            let mut device = self.device(i);
            let tick = device.tick(now).expect("store");
            self.note(i, &mut device, tick.events);
        }
    }
}

fn run(root: &Path) -> Result<bool, DeviceError> {
    let mut rng = splitsafe::rng::os_rng();
    let config = DeviceConfig::default();
    let mut devices = Vec::new();
    for name in NAMES {
        let store = SqliteStore::open(root.join(format!("{name}.db")))?;
        devices.push(Device::create(
            store,
            Identity::generate(&mut rng),
            config,
            &mut rng,
            T0,
        )?);
    }
    let ids: Vec<MemberId> = devices.iter().map(Device::id).collect();
    let group = devices[0].create_group(&mut rng, T0)?;
    drop(devices); // closed: each call opens its device again
    let mut world = World {
        root: root.to_path_buf(),
        ids,
        post: Post {
            root: root.to_path_buf(),
            sent: 0,
            split: false,
            held: Vec::new(),
            lose_next_to: None,
            twice: [6, 12].into(),
        },
        group,
        now: T0,
        reads: Reads::default(),
        opens: 0,
        kills: 0,
    };

    println!("Alice founds the group and mails Bob and Carol a welcome (their bundles came by mail too).");
    println!("(Two pieces of mail arrive twice; lost messages stay lost: only membership heals by sync.)");
    for i in 1..3 {
        let bundle = Message::Bundle(world.device(i).bundle());
        world.post.send(i, 0, &bundle);
    }
    for text in world.post.fetch(0) {
        let now = world.tick();
        let mut alice = world.device(0);
        let events = alice.receive(text.as_bytes(), now)?;
        for event in events {
            if let Event::Bundle(bundle) = event {
                let now = world.tick();
                let invitation = alice.invite(group, bundle, now)?;
                world.post_to(0, &invitation.welcome);
                world.post_to(0, &invitation.add);
            }
        }
    }
    world.read_mail();
    for (i, hello) in [(0, "alice: hello all"), (1, "bob: hi"), (2, "carol: hey")] {
        world.say(i, hello);
    }
    world.read_mail();

    println!("The network splits: Carol on one side, Alice and Bob on the other.");
    world.post.split = true;
    let now = world.tick();
    let carol = world.ids[2];
    let removal = world.device(0).remove(group, carol, now)?;
    world.post_to(0, &removal);
    println!("    Alice removes Carol; Carol does not know and keeps sending.");
    world.say(2, "carol: anyone there?");
    let now = world.tick();
    let mut rng = splitsafe::rng::os_rng();
    for published in world.device(1).rotate(&mut rng, now)? {
        world.post.lose_next_to = Some(0);
        world.post_to(1, &published);
    }
    println!("    Bob rotates his key; the mail telling Alice is lost, so his next message waits at hers.");
    world.say(1, "bob: new key, same bob");
    world.say(0, "alice: plans without carol");
    world.read_mail();
    world.say(2, "carol: hello?");

    world.read_mail();

    println!("The split heals: held mail arrives, and the devices sync through the post.");
    world.post.heal();
    world.kill_bob_mid_read();
    world.read_mail();
    world.sync();
    world.say(2, "carol: after the heal");
    world.say(0, "alice: final words");
    world.read_mail();
    world.sync();

    println!();
    println!("{:<7} {:<48} standing of the sender", "reader", "read");
    for (i, name) in NAMES.iter().enumerate() {
        for (from, text, standing) in world.reads.read.get(&i).into_iter().flatten() {
            let standing = match standing {
                Standing::Member => "member".to_string(),
                Standing::Removed { .. } => "removed (sealed where her removal had seen)".into(),
                Standing::Beyond { .. } => "beyond her removal".into(),
            };
            println!("{name:<7} {:<48} {standing}", format!("{from}: {text:?}"));
        }
    }
    let digests: BTreeSet<_> = (0..3)
        .map(|i| world.device(i).view(group).expect("in group").digest())
        .collect();
    let read = |w: &World, i: usize, text: &str| {
        w.reads
            .read
            .get(&i)
            .is_some_and(|r| r.iter().any(|(_, t, _)| t == text))
    };
    // Bob sealed to Carol until he had read her removal: that is the netsplit's price.
    let carol_cut_off =
        !read(&world, 2, "alice: plans without carol") && !read(&world, 2, "alice: final words");
    let bob_read_all = ["alice: plans without carol", "alice: final words"]
        .iter()
        .all(|t| read(&world, 1, t));
    let carol_flagged = world.reads.read.get(&1).is_some_and(|r| {
        r.iter()
            .any(|(from, _, s)| from == "carol" && *s != Standing::Member)
    });
    let carol_out = !world
        .device(0)
        .view(group)
        .expect("in group")
        .contains(&carol);
    let nothing_waits = (0..3).all(|i| world.device(i).pending().count() == 0);
    // The message Bob was killed before storing was handed back when he was opened again.
    let kill_lost_nothing = world.kills == 1 && read(&world, 1, "carol: anyone there?");
    println!();
    println!(
        "one view on all three devices: {}; Carol read nothing Alice sealed after removing her: {carol_cut_off}; \
         Bob read Alice's messages after the removal: {bob_read_all}; Carol's split-time mail reached Bob marked as a removed member's: {carol_flagged}; \
         Carol out of the view: {carol_out}; nothing left pending: {nothing_waits}; the kill lost nothing: {kill_lost_nothing} \
         ({} calls, each opening its device; {} killed mid-read; {} duplicates refused, {} envelopes waited for what they needed)",
        digests.len() == 1,
        world.opens,
        world.kills,
        world.reads.duplicates,
        world.reads.pending
    );
    Ok(digests.len() == 1
        && carol_cut_off
        && bob_read_all
        && carol_flagged
        && carol_out
        && nothing_waits
        && kill_lost_nothing)
}

fn main() -> ExitCode {
    let root = std::env::temp_dir().join(format!("splitsafe-mailbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("temporary directory");
    let verdict = run(&root);
    let _ = std::fs::remove_dir_all(&root);
    match verdict {
        Ok(holds) => {
            println!("verdict: {holds}");
            if holds {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
