//! SIGKILL at random instants during the ceremonies (docs/spec/state-versions.md, "Crashes"):
//! `init`, `domain create`, `box manufacture` and `box install`, each killed in a copy of a
//! prepared home. After every kill the home must still work: the same command run again
//! completes (or finds its work done), and the next ceremonies and a factory run succeed. A home
//! that does not is bricked; there must be none.
//!
//! CI runs `POSTKEY_KILL_LOOP_ROUNDS` rounds (default 15) of each of the four ceremonies, so at
//! least 60 kills; a longer run is the same test with a larger number
//! (docs/spec/state-versions.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Home, Rng, code, stderr};

/// A ceremony to kill, the home it starts from, and how to tell that the home works after.
struct Ceremony {
    name: &'static str,
    args: &'static [&'static str],
    /// Response codes of the command run again that say its work was done already.
    done: &'static [u16],
}

const CEREMONIES: &[Ceremony] = &[
    Ceremony { name: "init", args: &["init"], done: &[3011] },
    Ceremony {
        name: "domain create",
        args: &["domain", "create", "UKRM", "--kind", "postal", "--subdomain", "UKRM/GB"],
        done: &[3010],
    },
    Ceremony { name: "box manufacture", args: &["box", "manufacture", "--type", "oak"], done: &[] },
    Ceremony {
        name: "box install",
        args: &["box", "install", "O00000002", "--domain", "USPS"],
        done: &[3651],
    },
];

/// The home each ceremony starts from: empty for `init`; a demo home for the others, with an
/// Oak box O00000002 without processes for `box install`.
fn template(c: &Ceremony) -> Home {
    match c.name {
        "init" => Home::new(),
        "box install" => {
            let h = Home::demo();
            h.ok(&["box", "manufacture", "--type", "oak"]);
            h
        }
        _ => Home::demo(),
    }
}

/// How long the ceremony takes when left alone, in this build, on this machine.
fn duration(template: &Home, c: &Ceremony) -> Duration {
    let h = template.clone_home();
    let start = Instant::now();
    h.ok(c.args);
    start.elapsed()
}

/// Runs the ceremony in a copy of `template`, killed after `delay`; whether the kill landed
/// before it finished.
fn killed(h: &Home, c: &Ceremony, delay: Duration) -> bool {
    let mut child = h.spawn(c.args);
    std::thread::sleep(delay);
    let landed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    landed
}

/// After a kill: the ceremony run again completes or finds its work done; then the home goes on
/// working. `Err` says how the home is bricked.
fn recovers(h: &Home, c: &Ceremony) -> Result<(), String> {
    let again = h.run(c.args);
    match again.status.code() {
        Some(0) => {}
        _ if code(&again).is_some_and(|k| c.done.contains(&k)) => {}
        other => return Err(format!("run again: exit {other:?}: {}", stderr(&again))),
    }
    let check = |args: &[&str]| {
        let o = h.run(args);
        if o.status.code() == Some(0) { Ok(()) } else { Err(format!("{args:?}: {}", stderr(&o))) }
    };
    check(&["box", "list"])?;
    check(&["keys", "list"])?;
    check(&["errors"])?;
    check(&["domain", "list"])?;
    match c.name {
        "init" => {
            check(&["domain", "create", "VE", "--kind", "vendor", "--subdomain", "VE/US"])?;
            check(&["box", "manufacture", "--type", "oak", "--domain", "VE"])?;
            check(&["box", "self-test", "M00000001"])?;
        }
        "domain create" => {
            let domains = h.json(&["domain", "list"]);
            let ukrm = domains.as_array().unwrap().iter().find(|d| d["domain"] == "UKRM");
            match ukrm {
                Some(d) if d["subdomains"] == serde_json::json!(["UKRM/GB"]) => {}
                other => return Err(format!("UKRM in the archive: {other:?}")),
            }
            check(&["box", "install", "O00000001", "--domain", "UKRM"])?;
            h.install_works(1);
        }
        "box manufacture" => {
            check(&["box", "manufacture", "--type", "steel", "--domain", "USPS"])?;
            for id in h.boxes() {
                check(&["box", "self-test", &id])?;
            }
            h.install_works(1);
        }
        _ => {
            check(&["box", "self-test", "O00000002"])?;
            let b = h.json(&["box", "show", "O00000002"]);
            if b["domains"] != serde_json::json!(["USPS"]) {
                return Err(format!("O00000002 in the archive: {b}"));
            }
            h.install_works(1);
        }
    }
    Ok(())
}

#[test]
fn a_kill_at_any_instant_of_a_ceremony_leaves_a_working_home() {
    let rounds: u32 =
        std::env::var("POSTKEY_KILL_LOOP_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15);
    let mut rng = Rng::from_env("kill loop");
    let mut kills = 0;
    let mut bricked = Vec::new();
    for c in CEREMONIES {
        let template = template(c);
        // Kills spread over the whole run, and a little past it (some land after the end).
        let window = duration(&template, c).as_micros() as u64 * 6 / 5 + 1;
        let mut landed = 0;
        for round in 0..rounds {
            let h = template.clone_home();
            let delay = Duration::from_micros(rng.below(window));
            if killed(&h, c, delay) {
                landed += 1;
            }
            kills += 1;
            if let Err(why) = recovers(&h, c) {
                bricked.push(format!("{} round {round} (killed after {delay:?}): {why}", c.name));
            }
        }
        eprintln!("{}: {rounds} kills, {landed} before it finished", c.name);
        assert!(landed > 0, "{}: no kill landed during the ceremony", c.name);
    }
    eprintln!("kill loop: {kills} kills, {} bricked homes", bricked.len());
    assert!(bricked.is_empty(), "bricked homes:\n{}", bricked.join("\n"));
}

/// The window SECURITY.md names: a manufacturing box stopped after it gave an ID and before the
/// archive recorded the new box is ahead of the archive by that command, so its state from just
/// before is not refused. Put back, it gives the same ID again: an alarm (4004, logged), and
/// nothing of the box made first is overwritten; the next manufacture gives a fresh ID.
#[test]
fn a_manufacturing_box_put_back_into_the_window_gives_no_id_twice() {
    let template = Home::demo();
    let mut rng = Rng::from_env("id window");
    let window = duration(&template, &CEREMONIES[2]).as_micros() as u64 + 1;
    let m_state = "boxes/M00000001.state";
    for attempt in 0..500 {
        let h = template.clone_home();
        let before = std::fs::read(h.path(m_state)).unwrap();
        killed(&h, &CEREMONIES[2], Duration::from_micros(rng.below(window)));
        let orphan = h.path("boxes/O00000002.state");
        if !orphan.exists() || h.boxes().contains(&"O00000002".to_owned()) {
            continue;
        }
        // O00000002's state is on disk, the archive does not know it: M gave its ID and stopped.
        let made = std::fs::read(&orphan).unwrap();
        std::fs::write(h.path(m_state), &before).unwrap();
        let o = h.run(CEREMONIES[2].args);
        common::refused(&o, 3, 4004);
        assert!(stderr(&o).contains("alarm"), "{}", stderr(&o));
        assert!(h.logged("M00000001").contains(&4004));
        assert_eq!(std::fs::read(&orphan).unwrap(), made, "the first O00000002 was overwritten");
        // The box moved past that ID: the next manufacture makes O00000003.
        let report = h.json(&["box", "manufacture", "--type", "oak"]);
        assert_eq!(report["id"], "O00000003", "{report}");
        eprintln!("id window: found after {attempt} kills");
        return;
    }
    panic!("no kill stopped a manufacture between the new state and the archive in 500 tries");
}
