//! Running the built `postkey` binary on a home, as an operator does: its exit code, its
//! response code, its JSON, and whether the home still works.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The binary under test.
pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_postkey")
}

/// A home, and the commands run on it.
pub(crate) struct Home {
    _dir: Option<tempfile::TempDir>,
    pub(crate) root: PathBuf,
}

impl Home {
    /// A fresh, empty home.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("home");
        Self { _dir: Some(dir), root }
    }

    /// A home at `root`, which the caller owns (it may be no directory at all).
    pub(crate) fn at(root: PathBuf) -> Self {
        Self { _dir: None, root }
    }

    /// A home made by `postkey demo` with no meters: every box type, VE, USPS and EARTH.
    pub(crate) fn demo() -> Self {
        let h = Self::new();
        h.ok(&["demo", "--meters", "0"]);
        h
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.arg("--home").arg(&self.root).args(args);
        c
    }

    /// Runs `postkey --home <home> args…`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("postkey runs")
    }

    /// Runs it with its standard output sent to `out` (a full disk, a closed pipe).
    pub(crate) fn run_to(&self, args: &[&str], out: Stdio) -> Output {
        self.command(args).stdout(out).stderr(Stdio::piped()).output().expect("postkey runs")
    }

    /// Runs it, which must succeed; its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_eq!(o.status.code(), Some(0), "postkey {args:?}: {}", stderr(&o));
        stdout(&o)
    }

    /// Runs it with `--json`, which must succeed.
    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut with = args.to_vec();
        with.push("--json");
        serde_json::from_str(&self.ok(&with)).unwrap()
    }

    /// Starts it without waiting; its output is discarded unless read.
    pub(crate) fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("postkey starts")
    }

    /// A file of the home.
    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The boxes the archive lists, by ID.
    pub(crate) fn boxes(&self) -> Vec<String> {
        let list = self.json(&["box", "list"]);
        list.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_owned()).collect()
    }

    /// The response codes the error log holds for `component` (a box ID, `host`, `kmc`).
    pub(crate) fn logged(&self, component: &str) -> Vec<u16> {
        let log = self.json(&["errors"]);
        log.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["component"].as_str() == Some(component))
            .map(|e| e["code"].as_u64().unwrap() as u16)
            .collect()
    }

    /// Makes meter `PB1234-<msn>`.
    pub(crate) fn meter(&self, msn: u32) -> String {
        let msn = format!("{msn:06}");
        self.ok(&["meter", "new", "--product", "PB1234", "--msn", &msn]);
        format!("PB1234-{msn}")
    }

    /// A new meter keyed for VE and USPS: the whole line of boxes works.
    pub(crate) fn install_works(&self, msn: u32) {
        let meter = self.meter(msn);
        let report = self.json(&["factory", "install", &meter, "--postal", "USPS"]);
        for k in report["keys"].as_array().unwrap() {
            assert_eq!(k["status"], "installed", "{report}");
        }
    }

    /// Copies every file of the home except the archive to `to` (a backup an attacker or an
    /// operator could put back).
    pub(crate) fn copy_all_but_archive(&self, to: &Path) {
        copy_tree(&self.root, to, &|name| !name.starts_with("archive.db"));
    }

    /// Removes every file of the home except the archive, then puts `from` back.
    pub(crate) fn restore_all_but_archive(&self, from: &Path) {
        for entry in std::fs::read_dir(&self.root).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("archive.db") {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                std::fs::remove_dir_all(entry.path()).unwrap();
            } else {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        copy_tree(from, &self.root, &|_| true);
    }

    /// A copy of this home, archive included, in a fresh directory.
    pub(crate) fn clone_home(&self) -> Self {
        let h = Self::new();
        if self.root.exists() {
            copy_tree(&self.root, &h.root, &|_| true);
        }
        h
    }
}

/// Copies the files of `from` whose top-level names pass `keep` into `to`, keeping modes.
pub(crate) fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&str) -> bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep(&name) {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, &|_| true);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The response code a failed command printed (`… [response code 4004]`).
pub(crate) fn code(o: &Output) -> Option<u16> {
    let err = stderr(o);
    let start = err.rfind("[response code ")? + "[response code ".len();
    err[start..].split(']').next()?.parse().ok()
}

/// Asserts `o` failed with exit code `exit` and response code `response`.
pub(crate) fn refused(o: &Output, exit: i32, response: u16) {
    assert_eq!(o.status.code(), Some(exit), "{}", stderr(o));
    assert_eq!(code(o), Some(response), "{}", stderr(o));
}

/// A small seeded generator for test schedules (the seed is printed, so a failure can be
/// replayed with `POSTKEY_TEST_SEED`).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env(name: &str) -> Self {
        let seed = std::env::var("POSTKEY_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{name}: POSTKEY_TEST_SEED={seed}");
        Self(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
