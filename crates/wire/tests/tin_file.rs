//! The Tin export file (docs/tin.md): it round-trips, and every way it can be wrong is refused:
//! another magic, a count or length out of bounds, truncation, trailing bytes, a chunk out of
//! place, chunks of two exports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestSigner, bare_context};
use postkey_crypto::HpkeCiphertext;
use postkey_wire::{
    BoxId, Message, Period, SubdomainId, Timestamp, TinExport, Unverified, decode_export_file,
    encode_export_file, sign,
};

fn chunk(as_of: u64, chunk: u32, chunks: u32) -> Unverified<TinExport> {
    let body = TinExport {
        brass: BoxId::parse("B00000001").unwrap(),
        tin: BoxId::parse("T00000001").unwrap(),
        subdomain: SubdomainId::parse("USPS/US").unwrap(),
        period: Period::parse("202612").unwrap(),
        as_of: Timestamp::from_unix_micros(as_of),
        chunk,
        chunks,
        keys: 0,
        sealed: HpkeCiphertext::from_parts([7; 32], vec![9; 16]).unwrap(),
    };
    sign(Message::new(bare_context(), body), &TestSigner::from_seed(1)).into()
}

fn export(as_of: u64, chunks: u32) -> Vec<Unverified<TinExport>> {
    (0..chunks).map(|c| chunk(as_of, c, chunks)).collect()
}

#[test]
fn an_export_file_round_trips() {
    let e = export(5, 3);
    let bytes = encode_export_file(&e);
    let back = decode_export_file(&bytes).unwrap();
    assert_eq!(
        back.iter().map(Unverified::as_bytes).collect::<Vec<_>>(),
        e.iter().map(Unverified::as_bytes).collect::<Vec<_>>()
    );
}

#[test]
fn every_malformed_export_file_is_refused() {
    let good = encode_export_file(&export(5, 2));
    // Refused, for the reason named (not for another the same bytes also break).
    let refused = |bytes: &[u8], why: &str| {
        let e = decode_export_file(bytes).unwrap_err().to_string();
        assert!(e.contains(why), "{why}: {e}");
    };
    refused(b"", "not a Tin export file");
    refused(&good[..good.len() - 1], "truncated");
    refused(&good[..10], "truncated");
    refused(&[&good[..], b"x"].concat(), "trailing bytes");
    let mut magic = good.clone();
    magic[0] = b'Q';
    refused(&magic, "not a Tin export file");
    let mut count = good.clone();
    count[8..12].copy_from_slice(&0u32.to_be_bytes());
    refused(&count, "chunk count out of bounds");
    count[8..12].copy_from_slice(&5_001u32.to_be_bytes());
    refused(&count, "chunk count out of bounds");
    let mut length = good.clone();
    length[12..16].copy_from_slice(&(30 * 1024u32).to_be_bytes());
    refused(&length, "longer than a chunk can be");
    // Chunks out of place, two of one place, chunks of two exports, a count that disagrees.
    let e = export(5, 2);
    let out_of_place = "out of place, or of another count";
    refused(&encode_export_file(&[e[1].clone(), e[0].clone()]), out_of_place);
    refused(&encode_export_file(&[e[0].clone(), e[0].clone()]), out_of_place);
    refused(&encode_export_file(&[e[0].clone(), chunk(6, 1, 2)]), "more than one export");
    refused(&encode_export_file(&[e[0].clone()]), out_of_place);
}
