//! SIGKILL at random instants of `factory register --file` (docs/registration.md, "After a
//! crash"): each kill leaves every meter registered in both domains or in neither, the audit
//! holds, and the same registration run again completes it.
//!
//! CI runs `POSTKEY_KILL_LOOP_ROUNDS` rounds (default 8).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Home, Rng, stderr};

const METERS: u32 = 48;

/// A demo home with `METERS` meters keyed (VE and USPS), none registered, and the list that
/// registers them all into `USPS/US`.
fn template() -> (Home, String) {
    let h = Home::demo();
    let mut install = String::new();
    let mut register = String::new();
    for n in 1..=METERS {
        let msn = format!("{n:06}");
        h.ok(&["meter", "new", "--product", "PB7777", "--msn", &msn]);
        install.push_str(&format!("PB7777-{msn} USPS\n"));
        register.push_str(&format!("PB7777-{msn} USPS/US K{n:06}\n"));
    }
    std::fs::write(h.path("install.txt"), install).unwrap();
    std::fs::write(h.path("register.txt"), &register).unwrap();
    h.ok(&["factory", "install", "--file", h.path("install.txt").to_str().unwrap()]);
    let list = h.path("register.txt").to_str().unwrap().to_owned();
    (h, list)
}

/// Each meter's number of `Active` keys.
fn active_per_meter(h: &Home) -> Vec<(String, usize)> {
    let keys = h.json(&["keys", "list"]);
    let mut per = std::collections::BTreeMap::<String, usize>::new();
    for k in keys.as_array().unwrap() {
        let meter =
            format!("{}-{}", k["product_code"].as_str().unwrap(), k["msn"].as_str().unwrap());
        let n = per.entry(meter).or_default();
        if k["status"] == "active" {
            *n += 1;
        }
    }
    per.into_iter().collect()
}

#[test]
fn a_kill_at_any_instant_of_a_registration_run_leaves_each_meter_whole() {
    let rounds: u32 =
        std::env::var("POSTKEY_KILL_LOOP_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut rng = Rng::from_env("register kill loop");
    let (template, list) = template();
    // Kills spread over a whole run, and a little past it.
    let window = {
        let h = template.clone_home();
        let start = Instant::now();
        h.ok(&["factory", "register", "--file", &list, "--batch", "4"]);
        start.elapsed().as_micros() as u64 * 6 / 5 + 1
    };
    let mut landed = 0;
    for round in 0..rounds {
        let h = template.clone_home();
        let delay = Duration::from_micros(rng.below(window));
        let mut child = h.spawn(&["factory", "register", "--file", &list, "--batch", "4"]);
        std::thread::sleep(delay);
        if matches!(child.try_wait(), Ok(None)) {
            landed += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // Every meter registered in both domains, or in neither.
        for (meter, active) in active_per_meter(&h) {
            assert!(active == 0 || active == 2, "round {round}: {meter} has {active} Active keys");
        }
        let audit = h.run(&["audit", "verify"]);
        assert_eq!(audit.status.code(), Some(0), "round {round}: {}", common::stdout(&audit));
        // The same registration again completes it.
        let again = h.run(&["factory", "register", "--file", &list, "--batch", "4", "--json"]);
        assert_eq!(again.status.code(), Some(0), "round {round}: {}", stderr(&again));
        assert!(active_per_meter(&h).iter().all(|(_, a)| *a == 2), "round {round}");
    }
    assert!(landed > 0, "no kill landed before the run ended");
}
