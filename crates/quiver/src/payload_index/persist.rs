//! Payload indexes as bytes, for the sidecar file of a base segment (`<segment>.pidx`, written
//! by compaction and by an open that had to build them): an open that finds one for its base
//! loads the indexes instead of decoding every payload. Little-endian through the codec; a
//! bitmap is roaring's portable format, length-prefixed.

use super::{FieldIndex, IndexData, OrdF64, PayloadIndexType};
use crate::filter::KeyPath;
use quiver_storage::codec::{DecodeError, Decoder, Encoder};
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};

fn put_bitmap(e: &mut Encoder, b: &RoaringBitmap) {
    let mut bytes = Vec::with_capacity(b.serialized_size());
    b.serialize_into(&mut bytes).expect("writing to a Vec cannot fail");
    e.bytes(&bytes);
}

fn get_bitmap(d: &mut Decoder<'_>) -> Result<RoaringBitmap, DecodeError> {
    let bytes = d.bytes()?;
    RoaringBitmap::deserialize_from(bytes).map_err(|e| d.error(format!("bitmap: {e}")))
}

impl FieldIndex {
    /// The index as bytes (see the module).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(self.kind.code());
        e.bytes(self.key.text.as_bytes());
        put_bitmap(&mut e, &self.indexed_rows);
        put_bitmap(&mut e, &self.other_numbers);
        match &self.data {
            IndexData::Keyword(m) => {
                // In key order: the same index makes the same bytes.
                let mut entries: Vec<_> = m.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                e.u64(m.len() as u64);
                for (k, b) in entries {
                    e.bytes(k.as_bytes());
                    put_bitmap(&mut e, b);
                }
            }
            IndexData::Integer(m) => {
                e.u64(m.len() as u64);
                for (k, b) in m {
                    e.u64(*k as u64);
                    put_bitmap(&mut e, b);
                }
            }
            IndexData::Float(m) => {
                e.u64(m.len() as u64);
                for (k, b) in m {
                    e.u64(k.get().to_bits());
                    put_bitmap(&mut e, b);
                }
            }
            IndexData::Bool { yes, no } => {
                put_bitmap(&mut e, yes);
                put_bitmap(&mut e, no);
            }
            IndexData::Inert => {}
        }
        e.buf
    }

    /// An index from [`FieldIndex::encode`]'s bytes, checked to the last byte.
    pub fn decode(bytes: &[u8]) -> Result<FieldIndex, DecodeError> {
        let mut d = Decoder::new(bytes);
        let code = d.u8()?;
        let kind = PayloadIndexType::from_code(code).ok_or_else(|| d.error(format!("unknown index type {code}")))?;
        let text = String::from_utf8(d.bytes()?.to_vec()).map_err(|_| d.error("index key is not UTF-8"))?;
        let key = KeyPath::parse(&text).map_err(|e| d.error(format!("index key {text:?}: {e}")))?;
        let mut f = FieldIndex::new(key, kind);
        f.indexed_rows = get_bitmap(&mut d)?;
        f.other_numbers = get_bitmap(&mut d)?;
        let count = |d: &mut Decoder<'_>| -> Result<usize, DecodeError> {
            let n = d.u64()? as usize;
            // Each entry takes at least 9 bytes: refuse counts the data cannot hold.
            if n > d.remaining() / 9 {
                return Err(d.error(format!("{n} values cannot fit in {} bytes", d.remaining())));
            }
            Ok(n)
        };
        f.data = match f.data {
            IndexData::Keyword(_) => {
                let n = count(&mut d)?;
                let mut m = HashMap::with_capacity(n);
                for _ in 0..n {
                    let k = String::from_utf8(d.bytes()?.to_vec()).map_err(|_| d.error("keyword is not UTF-8"))?;
                    m.insert(k, get_bitmap(&mut d)?);
                }
                IndexData::Keyword(m)
            }
            IndexData::Integer(_) => {
                let n = count(&mut d)?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let k = d.u64()? as i64;
                    m.insert(k, get_bitmap(&mut d)?);
                }
                IndexData::Integer(m)
            }
            IndexData::Float(_) => {
                let n = count(&mut d)?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let k = OrdF64::new(f64::from_bits(d.u64()?));
                    m.insert(k, get_bitmap(&mut d)?);
                }
                IndexData::Float(m)
            }
            IndexData::Bool { .. } => IndexData::Bool {
                yes: get_bitmap(&mut d)?,
                no: get_bitmap(&mut d)?,
            },
            IndexData::Inert => IndexData::Inert,
        };
        d.finish()?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every kind of index comes back answering the same; a truncated or altered image is
    /// refused or, if its bytes still parse, never panics.
    #[test]
    fn indexes_round_trip() {
        let payloads: Vec<crate::types::Payload> = (0..300)
            .map(|i| {
                json!({
                    "k": format!("v{}", i % 7), "n": i % 11, "big": (1u64 << 60) + i, "x": i as f64 / 3.0,
                    "b": i % 2 == 0, "t": format!("2026-12-0{}T10:00:00Z", 1 + i % 9), "u": "0d7b9c42-5e1a-4f8e-9a8b-3c2d1e0f9a8b"
                })
                .as_object()
                .unwrap()
                .clone()
            })
            .collect();
        for (key, kind) in [
            ("k", PayloadIndexType::Keyword),
            ("n", PayloadIndexType::Integer),
            ("big", PayloadIndexType::Integer),
            ("x", PayloadIndexType::Float),
            ("b", PayloadIndexType::Bool),
            ("t", PayloadIndexType::Datetime),
            ("u", PayloadIndexType::Uuid),
            ("k", PayloadIndexType::Text),
        ] {
            let mut f = FieldIndex::new(KeyPath::parse(key).unwrap(), kind);
            for (r, p) in payloads.iter().enumerate() {
                if r % 5 != 0 {
                    f.insert(r as u32, p);
                }
            }
            let bytes = f.encode();
            let g = FieldIndex::decode(&bytes).unwrap();
            assert_eq!((g.kind, &g.key.text), (f.kind, &f.key.text));
            assert_eq!(g.indexed_rows, f.indexed_rows, "{key}");
            assert_eq!(g.other_numbers, f.other_numbers, "{key}");
            assert_eq!(g.encode(), bytes, "{key}: decode(encode) encodes the same");
            let sorted = |f: &FieldIndex| {
                let mut v: Vec<String> = f.value_rows().unwrap_or_default().iter().map(|x| format!("{x:?}")).collect();
                v.sort();
                v
            };
            assert_eq!(sorted(&g), sorted(&f), "{key}");
            assert_eq!(
                format!("{:?}", g.ordered_values(false, None)),
                format!("{:?}", f.ordered_values(false, None)),
                "{key}"
            );
            for n in 0..bytes.len() {
                assert!(FieldIndex::decode(&bytes[..n]).is_err(), "{key}: truncated at {n}");
            }
        }
    }
}
