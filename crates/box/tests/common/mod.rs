//! A small world for box tests: the first ceremony, then one box of each type, all in memory
//! with seeded generators and a controlled clock. Every command goes through the box's one
//! entry point, [`postkey_box::dispatch`], as the host sends it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use postkey_box::{
    BlankBox, FirstCeremony, Host, Initialization, NoHost, SecureBox, SharePolicy, Stopped,
    first_manufacturing_box,
};
use postkey_secrets::rng::BoxRng;
use postkey_secrets::rng::testing::SeededSource;
use postkey_wire::command::{BoxRequest, Certify, CreateDomain, InstallCertificate, IssueSetId};
use postkey_wire::{
    Body, BoxType, DomainBundle, DomainId, DomainKind, ResponseCode, SubdomainId, Timestamp,
    Unverified,
};
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

/// Runs one `R` item on `b` with `host`: its answer, or the response code of its refusal
/// (of the item, or of the whole command).
pub(crate) fn cmd_with<R: BoxRequest, H: Host>(
    b: &mut SecureBox,
    item: R,
    host: &mut H,
) -> Result<R::Answer, ResponseCode>
where
    H::Error: core::fmt::Debug,
{
    match postkey_box::call(b, vec![item], now(), host) {
        Ok(mut answers) => {
            assert_eq!(answers.len(), 1, "one answer per item");
            answers.pop().unwrap().map_err(|r| r.code)
        }
        Err(Stopped::Refused(e)) => Err(e.response_code()),
        Err(Stopped::Host(e)) => panic!("the host failed: {e:?}"),
    }
}

/// Runs one `R` item on `b`, in memory: its answer, or the response code of its refusal.
pub(crate) fn cmd<R: BoxRequest>(b: &mut SecureBox, item: R) -> Result<R::Answer, ResponseCode> {
    cmd_with(b, item, &mut NoHost)
}

/// A batch of `R` items on `b`, in memory: each item's answer or response code; the whole
/// command's refusal as the outer error.
pub(crate) fn batch<R: BoxRequest>(
    b: &mut SecureBox,
    items: Vec<R>,
) -> Result<Vec<Result<R::Answer, ResponseCode>>, ResponseCode> {
    match postkey_box::call(b, items, now(), &mut NoHost) {
        Ok(answers) => Ok(answers.into_iter().map(|a| a.map_err(|r| r.code)).collect()),
        Err(Stopped::Refused(e)) => Err(e.response_code()),
        Err(Stopped::Host(never)) => match never {},
    }
}

/// Decodes a signed record as a box link would before the box sees it: the record, or the
/// response code of the decoder's refusal.
pub(crate) fn parse<B: Body>(bytes: &[u8]) -> Result<Unverified<B>, ResponseCode> {
    Unverified::<B>::from_bytes(bytes).map_err(|e| e.response_code())
}

/// Manufactures a box of `box_type` with `m`, certificate installed.
pub(crate) fn manufacture(m: &mut SecureBox, box_type: BoxType, seed: u64) -> Initialization {
    let blank = BlankBox::new(m.anchors().clone(), rng(seed)).unwrap();
    let set_id = cmd(m, IssueSetId { offer: blank.offer(now()), box_type }).unwrap();
    let mut init = blank.accept(set_id, SharePolicy::default_for(box_type), now()).unwrap();
    let cert = cmd(m, Certify { keys: init.keys.clone().into() }).unwrap();
    cmd(&mut init.secure_box, InstallCertificate { certificate: cert }).unwrap();
    init
}

/// The certificate of `b`, as a command parameter.
pub(crate) fn cert(b: &SecureBox) -> Unverified<postkey_wire::Certificate> {
    b.certificate().unwrap().clone().into()
}

pub(crate) fn sub(s: &str) -> SubdomainId {
    SubdomainId::parse(s).unwrap()
}

pub(crate) fn usps(m: &mut SecureBox) -> Unverified<DomainBundle> {
    cmd(
        m,
        CreateDomain {
            domain: DomainId::parse("USPS").unwrap(),
            kind: DomainKind::Postal,
            subdomains: vec![sub("USPS/US")],
        },
    )
    .unwrap()
}
