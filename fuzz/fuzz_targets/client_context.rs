//! Fuzzes what the request context reads from untrusted headers: `Forwarded` and
//! `X-Forwarded-For` (walked against trusted CIDRs), the CIDR syntax of
//! `server.trusted_proxies`, and the User-Agent classification.
//!
//! Input lines: 1 CIDR list (comma-separated), 2 `Forwarded`, 3 `X-Forwarded-For`,
//! 4 User-Agent. Invariants: no panic; the device class is one of the documented six.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use streamgate::config::access::Cidr;
use streamgate::layers::{device, forwarded};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let cidrs: Vec<Cidr> = lines.next().unwrap_or("").split(',').filter_map(|c| Cidr::parse(c.trim()).ok()).collect();
    let mut headers = HeaderMap::new();
    for name in ["forwarded", "x-forwarded-for"] {
        if let Ok(v) = HeaderValue::from_str(lines.next().unwrap_or("")) {
            headers.append(name, v);
        }
    }
    // Called only for trusted peers; here just: any header and any CIDR list, no panic.
    let _ = forwarded::client_ip(&headers, &cidrs);
    for c in &cidrs {
        let _ = c.contains([10, 0, 0, 1].into());
        let _ = c.contains(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
    }
    let class = device::classify(lines.next().unwrap_or(""));
    assert!(["desktop", "mobile", "tablet", "tv", "bot", "other"].contains(&class), "{class}");
});
