//! Fuzzes the parsers of what an upstream proxy answers while a tunnel to an origin is
//! opened (`upstream::tunnel::{socks5, http_connect}`): SOCKS5 method, auth and CONNECT
//! replies, and the HTTP CONNECT response head.
//!
//! The input is the proxy's bytes. Invariants: no panic; a SOCKS5 reply is never read
//! past its end (`Done(n)` has `n <= len`, `Incomplete(need)` has `len < need <=
//! MAX_CONNECT_REPLY`, so the fixed reply buffer always fits); and the answer for a
//! prefix agrees with the answer for the whole input, as the connector parses after
//! every read. An accepted CONNECT response is a 2xx head with nothing after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamgate::upstream::tunnel::http_connect::{parse_connect_response, MAX_HEAD};
use streamgate::upstream::tunnel::socks5::{parse_auth_reply, parse_connect_reply, parse_method_reply, Progress, MAX_CONNECT_REPLY};

fuzz_target!(|data: &[u8]| {
    let _ = parse_method_reply(data, true);
    let _ = parse_method_reply(data, false);
    let _ = parse_auth_reply(data);

    let whole = parse_connect_reply(data);
    match whole {
        Ok(Progress::Done(n)) => assert!(n <= data.len() && n <= MAX_CONNECT_REPLY, "Done({n}) for {} bytes", data.len()),
        Ok(Progress::Incomplete(need)) => {
            assert!(need > data.len() && need <= MAX_CONNECT_REPLY, "Incomplete({need}) for {} bytes", data.len())
        }
        Err(_) => {}
    }
    // The connector reads at most `need` bytes, so it sees exactly the prefixes below.
    if data.len() <= MAX_CONNECT_REPLY + 8 {
        let mut have = 0;
        let seen = loop {
            match parse_connect_reply(&data[..have]) {
                Ok(Progress::Incomplete(need)) if need <= data.len() => have = need.min(have + 3),
                other => break other,
            }
        };
        if let Ok(Progress::Done(n)) = seen {
            assert_eq!(parse_connect_reply(&data[..n]), Ok(Progress::Done(n)));
            assert_eq!(whole, Ok(Progress::Done(n)), "a longer input changed a complete reply");
        }
    }

    match parse_connect_response(data) {
        Ok(Some(n)) => {
            assert_eq!(n, data.len(), "trailing bytes accepted");
            assert!(n <= MAX_HEAD);
            assert!(data.starts_with(b"HTTP/1.") && data.get(9) == Some(&b'2'), "accepted a non-2xx head");
            if data.len() <= 1024 {
                for cut in 0..n {
                    assert_eq!(parse_connect_response(&data[..cut]), Ok(None), "a prefix of {cut} bytes was already complete");
                }
            }
        }
        Ok(None) => assert!(data.len() < MAX_HEAD, "waited for more past {MAX_HEAD} bytes"),
        Err(_) => {}
    }
});
