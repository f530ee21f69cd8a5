//! Tests that need a second process: the test binary runs one of its own ignored tests as a
//! child, told what to do through environment variables.

use std::process::{Child, Command, Stdio};

/// Runs the ignored test `name` of this test binary as a child process with `env` set, its
/// stdin and stdout piped to the caller.
pub fn spawn_child(name: &str, env: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

/// Reads the child's stdout until a line equal to `line` (panics if it ends first).
pub fn wait_for_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, line: &str) {
    for next in lines.by_ref() {
        if next.unwrap().ends_with(line) {
            return;
        }
    }
    panic!("the child ended before saying {line:?}");
}

/// A fresh directory for one test's files, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("splitsafe-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    /// Removes the directory, unless the test failed: then its files are the evidence.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
