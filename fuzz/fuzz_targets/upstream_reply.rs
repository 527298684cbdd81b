//! Fuzzes what an origin answers to the manifest client (`upstream::h1`): the response
//! head parser and the chunked body decoder.
//!
//! The input is the origin's bytes. Invariants: no panic; a parsed head never claims more
//! bytes than it was given, and a longer input does not change a complete head's answer;
//! the chunked decoder gives the same result whether the bytes arrive at once or a few at
//! a time (as reads split them), never writes more data than it read or than the limit,
//! and leaves exactly the bytes after the body in the input.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use streamgate::upstream::h1::{inspect_head, ChunkError, Chunked};

const LIMIT: u64 = 4096;

fn decode(data: &[u8], step: usize) -> (Result<bool, ChunkError>, Vec<u8>, usize) {
    let mut decoder = Chunked::default();
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    let mut fed = 0;
    loop {
        let take = step.min(data.len() - fed);
        input.extend_from_slice(&data[fed..fed + take]);
        fed += take;
        match decoder.decode(&mut input, &mut out, LIMIT) {
            Ok(false) if fed < data.len() => continue,
            r => return (r, out.to_vec(), input.len() + (data.len() - fed)),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for head_request in [false, true] {
        if let Ok(Some((_, used, _))) = inspect_head(data, head_request) {
            assert!(used <= data.len());
            assert_eq!(inspect_head(&data[..used], head_request).ok().flatten().map(|h| h.1), Some(used));
        }
    }
    let (whole, out, left) = decode(data, usize::MAX);
    assert!(out.len() as u64 <= LIMIT && out.len() <= data.len());
    for step in [1, 7] {
        let (r, o, l) = decode(data, step);
        assert_eq!(r, whole, "step {step}");
        if whole == Ok(true) {
            assert_eq!((o.as_slice(), l), (out.as_slice(), left), "step {step}");
        }
    }
});
