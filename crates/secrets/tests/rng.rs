//! The box generator of protocol §4.1: HMAC_DRBG against the NIST vectors, state export, reseeding
//! on restore, the health tests, degradation to one stream, refusal, redaction, and the guard
//! lent to libraries.

// Tests fail by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_secrets::rng::testing::{
    BiasedSource, FailingSource, SeededSource, SourceSwitch, StuckSource, SwitchedSource,
    inject_drbg_exhaustion, inject_drbg_health_fault,
};
use postkey_secrets::rng::{
    BoxRng, DrbgState, EntropySource, HealthTest, HmacDrbg, OsEntropy, RngAlarm, RngError,
    SourceError,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use serde::Deserialize;

/// Bytes [`BoxRng::instantiate`] draws from the OS source: 32 of entropy and a 16-byte nonce.
const SEED_DRAW: usize = 48;

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {s}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("{e} in {s}")))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn chacha(seed: u64) -> SeededSource<ChaCha20Rng> {
    SeededSource(ChaCha20Rng::seed_from_u64(seed))
}

/// The bytes `chacha(seed)` yields at positions `skip..skip + len`.
fn chacha_stream(seed: u64, skip: usize, len: usize) -> Vec<u8> {
    let mut all = vec![0u8; skip + len];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut all);
    all.split_off(skip)
}

/// What the DRBG alone would produce next for a `fill` of `len` bytes, from an exported state.
fn drbg_stream(state: DrbgState, len: usize) -> Result<Vec<u8>, RngError> {
    let mut drbg = HmacDrbg::from_state(state);
    let mut out = vec![0u8; len];
    for chunk in out.chunks_mut(1 << 16) {
        drbg.generate(chunk, &[])?;
    }
    Ok(out)
}

/// A box seeded from `chacha(seed)` whose OS source becomes `after` when the switch flips.
fn switched_box<B: EntropySource + Send + Sync + 'static>(
    seed: u64,
    after: B,
) -> Result<(BoxRng, SourceSwitch), RngError> {
    let (source, switch) = SwitchedSource::new(chacha(seed), after);
    Ok((BoxRng::instantiate(source, b"postkey rng test")?, switch))
}

#[derive(Deserialize)]
struct VectorFile<V> {
    about: String,
    vectors: Vec<V>,
}

#[derive(Deserialize)]
struct Cavp {
    name: String,
    entropy_input: String,
    nonce: String,
    personalization: String,
    additional_input_1: String,
    additional_input_2: String,
    returned_bits: String,
}

#[derive(Deserialize)]
struct ReseedCase {
    #[serde(flatten)]
    base: Cavp,
    entropy_input_reseed: String,
    additional_input_reseed: String,
}

/// Instantiates (and reseeds, if given), generates and discards, generates and compares.
fn run_case(case: &Cavp, reseed: Option<(&str, &str)>) -> Result<(), String> {
    let mut drbg = HmacDrbg::instantiate(
        &unhex(&case.entropy_input)?,
        &unhex(&case.nonce)?,
        &unhex(&case.personalization)?,
    )
    .map_err(|e| e.to_string())?;
    if let Some((entropy, additional)) = reseed {
        drbg.reseed(&unhex(entropy)?, &unhex(additional)?).map_err(|e| e.to_string())?;
    }
    let expected = unhex(&case.returned_bits)?;
    let mut out = vec![0u8; expected.len()];
    drbg.generate(&mut out, &unhex(&case.additional_input_1)?).map_err(|e| e.to_string())?;
    drbg.generate(&mut out, &unhex(&case.additional_input_2)?).map_err(|e| e.to_string())?;
    if out == expected { Ok(()) } else { Err(format!("got {}", hex(&out))) }
}

#[test]
fn nist_cavp_hmac_drbg_sha256_vectors() {
    let file: VectorFile<Cavp> =
        serde_json::from_str(include_str!("vectors/hmac-drbg-sha256.json")).unwrap();
    assert!(file.about.contains("NIST CAVP"));
    let failures: Vec<String> = file
        .vectors
        .iter()
        .filter_map(|c| run_case(c, None).err().map(|e| format!("case {}: {e}", c.name)))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(file.vectors.len(), 30);
}

#[test]
fn reseed_and_personalization_vectors() {
    let file: VectorFile<ReseedCase> =
        serde_json::from_str(include_str!("vectors/hmac-drbg-sha256-reseed.json")).unwrap();
    assert!(file.about.contains("reseed(entropy_input_reseed, additional_input_reseed)"));
    let failures: Vec<String> = file
        .vectors
        .iter()
        .filter_map(|c| {
            let reseed = (c.entropy_input_reseed.as_str(), c.additional_input_reseed.as_str());
            run_case(&c.base, Some(reseed)).err().map(|e| format!("case {}: {e}", c.base.name))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(file.vectors.len(), 12);
}

#[test]
fn state_export_then_import_gives_the_same_stream() {
    let mut drbg = HmacDrbg::instantiate(&[7; 32], &[8; 16], b"export").unwrap();
    let mut first = [0u8; 100];
    drbg.generate(&mut first, b"advance").unwrap();

    let bytes = drbg.state().to_bytes();
    assert_eq!(bytes.len(), DrbgState::LEN);
    assert_eq!(DrbgState::LEN, 73);
    let mut resumed = HmacDrbg::from_state(DrbgState::from_bytes(&bytes).unwrap());

    let (mut a, mut b) = ([0u8; 300], [0u8; 300]);
    drbg.generate(&mut a, b"extra").unwrap();
    resumed.generate(&mut b, b"extra").unwrap();
    assert_eq!(a, b);
    assert_ne!(a[..100], first[..]);
}

#[test]
fn state_import_rejects_wrong_length_version_and_counter() {
    let good = HmacDrbg::instantiate(&[1; 32], &[2; 16], b"").unwrap().state().to_bytes();
    assert!(DrbgState::from_bytes(&good).is_ok());

    let short = DrbgState::from_bytes(&good[..72]).unwrap_err();
    assert_eq!(short, RngError::StateLength { expected: 73, found: 72 });
    let mut long = good.to_vec();
    long.push(0);
    assert!(matches!(DrbgState::from_bytes(&long), Err(RngError::StateLength { found: 74, .. })));
    assert!(matches!(DrbgState::from_bytes(&[]), Err(RngError::StateLength { found: 0, .. })));

    let mut version = good.to_vec();
    version[0] = 2;
    assert_eq!(DrbgState::from_bytes(&version).unwrap_err(), RngError::StateVersion(2));

    for counter in [0u64, (1 << 48) + 2, u64::MAX] {
        let mut bad = good.to_vec();
        bad[65..].copy_from_slice(&counter.to_be_bytes());
        assert_eq!(DrbgState::from_bytes(&bad).unwrap_err(), RngError::StateCounter);
    }
}

#[test]
fn drbg_enforces_request_and_input_limits() {
    let mut drbg = HmacDrbg::instantiate(&[3; 32], &[4; 16], b"").unwrap();
    let mut max = vec![0u8; 1 << 16];
    assert_eq!(drbg.generate(&mut max, &[]), Ok(()));
    let mut over = vec![0xAB; (1 << 16) + 1];
    assert_eq!(drbg.generate(&mut over, &[]), Err(RngError::RequestTooLarge));
    assert!(over.iter().all(|b| *b == 0), "a refused request leaves no old bytes");

    assert!(matches!(
        HmacDrbg::instantiate(&[3; 31], &[4; 16], b""),
        Err(RngError::EntropyTooShort)
    ));
    assert_eq!(drbg.reseed(&[5; 31], b""), Err(RngError::EntropyTooShort));
}

#[test]
fn drbg_requires_reseed_after_2_pow_48_requests() {
    let mut bytes = HmacDrbg::instantiate(&[9; 32], &[9; 16], b"").unwrap().state().to_bytes();
    bytes[65..].copy_from_slice(&(1u64 << 48).to_be_bytes());
    let mut drbg = HmacDrbg::from_state(DrbgState::from_bytes(&bytes).unwrap());

    let mut out = [0u8; 32];
    assert_eq!(drbg.generate(&mut out, &[]), Ok(()), "request number 2^48 is allowed");
    assert_eq!(drbg.generate(&mut out, &[]), Err(RngError::ReseedRequired));
    drbg.reseed(&[10; 32], b"").unwrap();
    assert_eq!(drbg.generate(&mut out, &[]), Ok(()));
}

#[test]
fn healthy_output_is_os_stream_xor_drbg_stream() {
    let mut rng = BoxRng::instantiate(chacha(1), b"xor").unwrap();
    let drbg_alone = drbg_stream(rng.state(), 70_000).unwrap();
    let os_alone = chacha_stream(1, SEED_DRAW, 70_000);

    let mut out = vec![0u8; 70_000];
    rng.fill(&mut out).unwrap();
    let expected: Vec<u8> = os_alone.iter().zip(&drbg_alone).map(|(o, d)| o ^ d).collect();
    assert_eq!(out, expected);
    assert_ne!(out, drbg_alone);
    assert!(rng.take_alarms().is_empty());
}

#[test]
fn restore_reseeds_from_the_os_source() {
    let mut rng = BoxRng::instantiate(chacha(2), b"restore").unwrap();
    let sealed = rng.state().to_bytes();
    let state = || DrbgState::from_bytes(&sealed).unwrap();

    let a = BoxRng::restore(state(), chacha(3), b"enable 1").unwrap();
    let b = BoxRng::restore(state(), chacha(4), b"enable 1").unwrap();
    let again = BoxRng::restore(state(), chacha(3), b"enable 1").unwrap();
    // The DRBG itself moved away from the sealed state, differently for each OS input...
    assert_ne!(*a.state().to_bytes(), *sealed);
    assert_ne!(*a.state().to_bytes(), *b.state().to_bytes());
    // ...and only because of that input.
    assert_eq!(*a.state().to_bytes(), *again.state().to_bytes());

    // Without the OS source the box goes on with the DRBG alone, with an alarm, and the
    // enabling context still keeps two enablings of one state apart.
    let mut dead1 = BoxRng::restore(state(), FailingSource, b"enable 2").unwrap();
    let mut dead2 = BoxRng::restore(state(), FailingSource, b"enable 3").unwrap();
    assert_ne!(*dead1.state().to_bytes(), *sealed);
    assert_ne!(*dead1.state().to_bytes(), *dead2.state().to_bytes());
    let (mut x, mut y) = ([0u8; 32], [0u8; 32]);
    dead1.fill(&mut x).unwrap();
    dead2.fill(&mut y).unwrap();
    assert_ne!(x, y);
    assert!(
        dead1.take_alarms().iter().any(|a| matches!(a, RngAlarm::OsSourceFailed(_))),
        "a dead OS source at enable raises an alarm"
    );
    // Without a context there is nothing to keep a replay apart: refused.
    let refused = BoxRng::restore(state(), FailingSource, b"").unwrap_err();
    assert_eq!(refused, RngError::EnableContextMissing);
    let mut out = [0u8; 8];
    rng.fill(&mut out).unwrap();
}

#[test]
fn stuck_source_trips_the_repetition_count_test() {
    let refused = BoxRng::instantiate(StuckSource(0x42), b"").unwrap_err();
    assert_eq!(refused, RngError::SeedSourceUnhealthy(HealthTest::RepetitionCount));

    let (mut rng, switch) = switched_box(5, StuckSource(0x5A)).unwrap();
    switch.flip();
    let expected = drbg_stream(rng.state(), 64).unwrap();
    let mut out = [0u8; 64];
    rng.fill(&mut out).unwrap();
    assert_eq!(rng.take_alarms(), [RngAlarm::OsHealthFailed(HealthTest::RepetitionCount)]);
    // The stuck bytes were dropped, not XORed in: the output is the DRBG stream alone.
    assert_eq!(out[..], expected[..]);
}

#[test]
fn biased_source_trips_the_adaptive_proportion_test_only() {
    let mut sample = vec![0u8; 1 << 16];
    BiasedSource::new(0x77, 1).fill(&mut sample).unwrap();
    assert!(sample.windows(3).all(|w| w != [0x77; 3]), "never three in a row");
    let share = sample.iter().filter(|b| **b == 0x77).count() as f64 / sample.len() as f64;
    assert!((0.15..0.3).contains(&share), "favoured share {share}");

    let (mut rng, switch) = switched_box(6, BiasedSource::new(0x77, 2)).unwrap();
    switch.flip();
    let mut out = [0u8; 512];
    for _ in 0..64 {
        rng.fill(&mut out).unwrap();
    }
    assert_eq!(rng.take_alarms(), [RngAlarm::OsHealthFailed(HealthTest::AdaptiveProportion)]);
}

#[test]
fn failing_os_source_raises_an_alarm_and_fill_uses_the_drbg_alone() {
    let (mut rng, switch) = switched_box(7, FailingSource).unwrap();
    switch.flip();
    let expected = drbg_stream(rng.state(), 100).unwrap();
    let mut out = [0u8; 100];
    rng.fill(&mut out).unwrap();
    // FailingSource scribbles 0xFF before failing: XORing it in would show here.
    assert_eq!(out[..], expected[..]);
    assert_eq!(
        rng.take_alarms(),
        [RngAlarm::OsSourceFailed(SourceError::Unavailable("failing test source"))]
    );

    // The failure latches: the next fill is the DRBG alone again, with no second alarm.
    let expected = drbg_stream(rng.state(), 100).unwrap();
    rng.fill(&mut out).unwrap();
    assert_eq!(out[..], expected[..]);
    assert!(rng.take_alarms().is_empty());
    assert!(rng.reseed(b"").is_err(), "a failed OS source cannot reseed");
}

#[test]
fn failing_drbg_raises_an_alarm_and_fill_uses_the_os_alone() {
    let mut rng = BoxRng::instantiate(chacha(8), b"").unwrap();
    inject_drbg_health_fault(&mut rng);
    let mut out = [0u8; 100];
    rng.fill(&mut out).unwrap();
    assert_eq!(out[..], chacha_stream(8, SEED_DRAW, 100)[..]);
    assert_eq!(rng.take_alarms(), [RngAlarm::DrbgHealthFailed(HealthTest::RepetitionCount)]);
}

#[test]
fn both_sources_failing_refuses_and_leaves_no_key_material() {
    let (mut rng, switch) = switched_box(9, FailingSource).unwrap();
    inject_drbg_health_fault(&mut rng);
    switch.flip();
    let mut out = vec![0xEE; 100_000];
    let err = rng.fill(&mut out).unwrap_err();
    assert_eq!(err, RngError::BothSourcesFailed);
    assert!(out.iter().all(|b| *b == 0));
    assert_eq!(
        err.to_string(),
        "random number generator failure: both the OS source and the DRBG failed their health \
         tests; refusing to make keys"
    );
    assert_eq!(rng.take_alarms().len(), 2);

    // Latched: it keeps refusing, even for an empty request.
    assert_eq!(rng.fill(&mut []), Err(RngError::BothSourcesFailed));
}

#[test]
fn exhausted_drbg_reseeds_from_a_healthy_os_source() {
    let mut rng = BoxRng::instantiate(chacha(10), b"").unwrap();
    inject_drbg_exhaustion(&mut rng);
    let mut out = [0u8; 32];
    rng.fill(&mut out).unwrap();
    assert!(rng.take_alarms().is_empty());
    // Reseeded (counter 1), then one request: counter 2.
    assert_eq!(rng.state().to_bytes()[65..], 2u64.to_be_bytes());
}

#[test]
fn exhausted_drbg_with_a_dead_os_source_refuses() {
    let (mut rng, switch) = switched_box(11, FailingSource).unwrap();
    inject_drbg_exhaustion(&mut rng);
    switch.flip();
    let mut out = [0x11u8; 32];
    assert_eq!(rng.fill(&mut out), Err(RngError::BothSourcesFailed));
    assert_eq!(out, [0; 32]);
    let alarms = rng.take_alarms();
    assert!(matches!(alarms[..], [RngAlarm::OsSourceFailed(_), RngAlarm::DrbgFailed(_)]));
}

#[test]
fn debug_output_shows_no_state_bytes() {
    let mut rng = BoxRng::instantiate(chacha(12), b"debug").unwrap();
    let bytes = rng.state().to_bytes();
    let (key, value) = (hex(&bytes[1..33]), hex(&bytes[33..65]));
    let drbg = HmacDrbg::from_state(rng.state());
    let guard_debug = format!("{:?}", rng.guard());
    for shown in [
        format!("{drbg:?}"),
        format!("{:?}", rng.state()),
        format!("{rng:?}"),
        format!("{rng:#?}"),
        guard_debug,
    ] {
        assert!(shown.contains("[redacted]"), "{shown}");
        for secret in [&key[..], &value[..], &key[..16], &value[..16]] {
            assert!(!shown.to_lowercase().contains(secret), "{shown}");
        }
        // Nor as a list of decimal bytes, as a derived Debug of an array would print them.
        assert!(!shown.contains(&format!("{:?}", &bytes[1..5])), "{shown}");
    }
}

#[test]
fn guarded_rng_serves_libraries_and_latches_the_first_failure() {
    let mut rng = BoxRng::instantiate(chacha(13), b"").unwrap();
    let made = rng.with_guard(|g| (g.next_u64(), g.next_u32())).unwrap();
    assert_ne!(made, (0, 0));

    let (mut rng, switch) = switched_box(14, FailingSource).unwrap();
    inject_drbg_health_fault(&mut rng);
    let mut guard = rng.guard();
    let mut first = [0u8; 32];
    guard.fill_bytes(&mut first);
    assert_ne!(first, [0; 32], "the OS stream alone still serves");
    switch.flip();
    let mut later = [0xAAu8; 32];
    guard.fill_bytes(&mut later);
    assert_eq!(later, [0; 32]);
    assert_eq!(guard.next_u64(), 0, "after the failure the guard only yields zeros");
    assert_eq!(guard.finish(), Err(RngError::BothSourcesFailed));

    let discarded = rng.with_guard(|g| {
        let mut key = [0u8; 32];
        g.fill_bytes(&mut key);
        key
    });
    assert_eq!(discarded, Err(RngError::BothSourcesFailed));
}

#[test]
fn os_entropy_seeds_a_working_box() {
    let mut rng = BoxRng::instantiate(OsEntropy, b"os").unwrap();
    let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
    rng.fill(&mut a).unwrap();
    rng.fill(&mut b).unwrap();
    assert_ne!(a, b);
    assert!(rng.take_alarms().is_empty());
    let restored = BoxRng::restore(rng.state(), OsEntropy, b"enable").unwrap();
    assert_ne!(*restored.state().to_bytes(), *rng.state().to_bytes());
}
