//! A small world for box tests: the first ceremony, then one box of each type, all in memory
//! with seeded generators and a controlled clock.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_box::{
    BlankBox, FirstCeremony, Initialization, SecureBox, SharePolicy, first_manufacturing_box,
};
use postkey_secrets::rng::BoxRng;
use postkey_secrets::rng::testing::SeededSource;
use postkey_wire::{BoxType, DomainBundle, DomainId, DomainKind, SubdomainId, Timestamp, Verified};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub(crate) fn rng(seed: u64) -> BoxRng {
    BoxRng::instantiate(SeededSource(ChaCha20Rng::seed_from_u64(seed)), b"box test").unwrap()
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from_unix_micros(1_795_977_434_000_000)
}

pub(crate) fn first() -> FirstCeremony {
    first_manufacturing_box(
        rng(1),
        SharePolicy { threshold: 2, count: 3 },
        SharePolicy { threshold: 2, count: 3 },
        now(),
    )
    .unwrap()
}

/// Manufactures a box of `box_type` with `m`, certificate installed.
pub(crate) fn manufacture(m: &mut SecureBox, box_type: BoxType, seed: u64) -> Initialization {
    let blank = BlankBox::new(m.anchors().clone(), rng(seed)).unwrap();
    let set_id =
        m.manufacturing().unwrap().issue_set_id(&blank.offer(now()), box_type, now()).unwrap();
    let mut init =
        blank.accept(set_id.as_bytes(), SharePolicy::default_for(box_type), now()).unwrap();
    let cert = m.manufacturing().unwrap().certify(init.keys.as_bytes(), now()).unwrap();
    init.secure_box.install_certificate(cert.as_bytes()).unwrap();
    init
}

pub(crate) fn sub(s: &str) -> SubdomainId {
    SubdomainId::parse(s).unwrap()
}

pub(crate) fn usps(m: &mut SecureBox) -> Verified<DomainBundle> {
    m.manufacturing()
        .unwrap()
        .create_domain(
            DomainId::parse("USPS").unwrap(),
            DomainKind::Postal,
            vec![sub("USPS/US")],
            now(),
        )
        .unwrap()
}
