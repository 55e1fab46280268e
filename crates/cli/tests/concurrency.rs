//! Many real `postkey` processes on one home at once (the lock table of ARCHITECTURE.md): each
//! completes, or is refused at once as busy (home busy 3605, box in use 4007, exit 3), or with
//! `--wait` completes after the others. Afterwards no box is forked or bricked: every box
//! enables against the archive, the box IDs given are all different, and the line still keys
//! meters.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::process::Output;

use common::{Home, code, stderr};

const HOME_BUSY: u16 = 3605;
const BOX_IN_USE: u16 = 4007;

/// A command of the mix, and whether it only reads.
#[derive(Clone)]
struct Job {
    args: Vec<String>,
    reads: bool,
}

fn job(args: &[&str], reads: bool) -> Job {
    Job { args: args.iter().map(|s| (*s).to_owned()).collect(), reads }
}

/// The mix of round `round`: factory runs on one line, manufactures, a domain, a process,
/// self-tests, a meter, and readers.
fn mix(h: &Home, round: u32) -> Vec<Job> {
    let meters: Vec<String> = (0..3).map(|i| h.meter(round * 10 + i)).collect();
    let domain = format!("CC{round}");
    let sub = format!("{domain}/US");
    let msn = format!("{:06}", 900 + round);
    let mut jobs = vec![
        job(&["box", "manufacture", "--type", "oak"], false),
        job(&["box", "manufacture", "--type", "steel"], false),
        job(&["domain", "create", &domain, "--kind", "postal", "--subdomain", &sub], false),
        job(&["box", "self-test", "S00000001"], false),
        job(&["meter", "new", "--product", "PB5678", "--msn", &msn], false),
        job(&["keys", "list", "--json"], true),
        job(&["box", "list", "--json"], true),
        job(&["errors", "--json"], true),
    ];
    for m in &meters {
        jobs.push(job(&["factory", "install", m, "--postal", "USPS"], false));
    }
    jobs
}

/// Runs every job of `jobs` at once; their outputs.
fn all_at_once(h: &Home, jobs: &[Job], wait: bool) -> Vec<Output> {
    let children: Vec<_> = jobs
        .iter()
        .map(|j| {
            let mut args: Vec<&str> = j.args.iter().map(String::as_str).collect();
            if wait {
                args.insert(0, "--wait");
            }
            h.spawn(&args)
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

/// No fork, no brick: every box the archive lists enables (its state version is not below the
/// archive's, its installation is the archive's), and no two share an ID or a state file.
fn home_is_whole(h: &Home, round: u32) {
    let boxes = h.boxes();
    let unique: BTreeSet<&String> = boxes.iter().collect();
    assert_eq!(unique.len(), boxes.len(), "{boxes:?}");
    for id in &boxes {
        let o = h.run(&["box", "self-test", id]);
        assert_eq!(o.status.code(), Some(0), "round {round}: {id}: {}", stderr(&o));
    }
    // Every state file is a box the archive knows: a refused or concurrent manufacture left
    // no orphan.
    let states: BTreeSet<String> = std::fs::read_dir(h.path("boxes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".state").to_owned())
        .collect();
    assert_eq!(states, boxes.iter().cloned().collect::<BTreeSet<_>>(), "round {round}");
    h.install_works(5000 + round);
}

#[test]
fn concurrent_commands_on_one_home_complete_or_are_refused_busy() {
    let h = Home::demo();
    for round in 1..=3 {
        let jobs = mix(&h, round);
        assert!(jobs.len() >= 8);
        let outputs = all_at_once(&h, &jobs, false);
        let mut busy = 0;
        for (j, o) in jobs.iter().zip(&outputs) {
            match o.status.code() {
                Some(0) => {}
                Some(3) if !j.reads && matches!(code(o), Some(HOME_BUSY | BOX_IN_USE)) => busy += 1,
                other => panic!("round {round}: {:?} exited {other:?}: {}", j.args, stderr(o)),
            }
        }
        eprintln!("round {round}: {} commands, {busy} refused busy", jobs.len());
        home_is_whole(&h, round);
    }
}

#[test]
fn with_wait_every_concurrent_command_completes() {
    let h = Home::demo();
    for round in 1..=2 {
        let jobs = mix(&h, round);
        let outputs = all_at_once(&h, &jobs, true);
        for (j, o) in jobs.iter().zip(&outputs) {
            assert_eq!(o.status.code(), Some(0), "round {round}: {:?}: {}", j.args, stderr(o));
        }
        home_is_whole(&h, round);
    }
    // Two manufactures per round, each its own ID.
    let oaks = h.boxes().iter().filter(|b| b.starts_with('O')).count();
    assert_eq!(oaks, 1 + 2);
}

#[test]
fn two_demos_into_one_home_leave_one_working_installation() {
    let h = Home::new();
    let outputs = all_at_once(&h, &vec![job(&["demo", "--meters", "2"], false); 2], false);
    let ok = outputs.iter().filter(|o| o.status.code() == Some(0)).count();
    assert_eq!(ok, 1, "{:?}", outputs.iter().map(stderr).collect::<Vec<_>>());
    let other = outputs.iter().find(|o| o.status.code() != Some(0)).unwrap();
    // Busy if it came while the other ran, else the first ceremony was done already.
    assert!(matches!(code(other), Some(HOME_BUSY | 3011)), "{}", stderr(other));
    home_is_whole(&h, 0);
}
