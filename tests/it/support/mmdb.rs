//! A minimal MaxMind DB (`.mmdb`) writer for tests: an IPv4 search tree with 24-bit
//! records, a data section of GeoIP2-shaped maps (country `iso_code` and one subdivision),
//! and the metadata map, per the public MaxMind DB format 2.0 spec. No external tools.

use std::net::Ipv4Addr;

/// One network and what the database says about it.
pub struct Network {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub country: &'static str,
    pub subdivision: Option<&'static str>,
}

/// The bytes of a database holding `networks`.
pub fn build(networks: &[Network]) -> Vec<u8> {
    // Data section: one record per network.
    let mut data = Vec::new();
    let mut offsets = Vec::new();
    for n in networks {
        offsets.push(data.len());
        let mut fields: Vec<(&str, Vec<u8>)> = vec![("country", map(&[("iso_code", string(n.country))]))];
        if let Some(sub) = n.subdivision {
            fields.push(("subdivisions", array(&[map(&[("iso_code", string(sub))])])));
        }
        let fields: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        data.extend(map_raw(&fields));
    }

    // Search tree: node i has [left, right] records.
    #[derive(Clone, Copy)]
    enum Rec {
        Empty,
        Node(usize),
        Data(usize),
    }
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for (n, off) in networks.iter().zip(&offsets) {
        assert!((1..=32).contains(&n.prefix));
        let bits = u32::from(n.addr);
        let mut node = 0;
        for depth in 0..n.prefix {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == n.prefix {
                nodes[node][bit] = Rec::Data(*off);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(next) => next,
                    _ => {
                        nodes.push([Rec::Empty, Rec::Empty]);
                        let next = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(next);
                        next
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let value = |r: Rec| -> u32 {
        match r {
            Rec::Empty => count as u32,
            Rec::Node(i) => i as u32,
            Rec::Data(off) => (count + 16 + off) as u32,
        }
    };
    let mut out = Vec::new();
    for [l, r] in &nodes {
        out.extend(&value(*l).to_be_bytes()[1..]);
        out.extend(&value(*r).to_be_bytes()[1..]);
    }
    out.extend([0u8; 16]);
    out.extend(&data);

    // Metadata.
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    out.extend(map_raw(&[
        ("binary_format_major_version", &uint16(2)),
        ("binary_format_minor_version", &uint16(0)),
        ("build_epoch", &uint64(1_700_000_000)),
        ("database_type", &string("streamgate-test-City")),
        ("description", &map(&[("en", string("streamgate test database"))])),
        ("ip_version", &uint16(4)),
        ("languages", &array(&[string("en")])),
        ("node_count", &uint32(count as u32)),
        ("record_size", &uint16(24)),
    ]));
    out
}

/// Control byte(s) for a standard type (1..=7) or an extended one (8..), with `size`.
fn control(kind: u8, size: usize) -> Vec<u8> {
    let (small, ext): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    let mut out = if kind <= 7 { vec![(kind << 5) | small] } else { vec![small, kind - 7] };
    out.extend(ext);
    out
}

fn string(s: &str) -> Vec<u8> {
    let mut out = control(2, s.len());
    out.extend(s.as_bytes());
    out
}

fn uint(kind: u8, v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let mut out = control(kind, 8 - skip);
    out.extend(&bytes[skip..]);
    out
}

fn uint16(v: u16) -> Vec<u8> {
    uint(5, u64::from(v))
}

fn uint32(v: u32) -> Vec<u8> {
    uint(6, u64::from(v))
}

fn uint64(v: u64) -> Vec<u8> {
    uint(9, v)
}

fn map(fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let fields: Vec<(&str, &[u8])> = fields.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    map_raw(&fields)
}

fn map_raw(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = control(7, fields.len());
    for (k, v) in fields {
        out.extend(string(k));
        out.extend(*v);
    }
    out
}

fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = control(11, items.len());
    for i in items {
        out.extend(i);
    }
    out
}
