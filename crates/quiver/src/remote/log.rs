//! The entries of a collection's log on object storage, and their bytes.
//!
//! A collection's log is a run of objects `log/<n>` (`n` zero-padded to 20 digits), each
//! created only if absent: whoever creates `log/<n>` first owns that place, so two writers can
//! never both append the same entry. Every entry carries its writer's id, so a writer that
//! retried a create can tell its own landed attempt from another writer's entry.
//!
//! Layout of one entry: magic `QVLOG001`, writer id (16 bytes), kind (u8), the kind's payload,
//! crc32c of everything before it (u32). Integers little-endian (`quiver_storage::codec`).

use quiver_storage::codec::{Decoder, Encoder};
use quiver_storage::StorageError;

const MAGIC: &[u8; 8] = b"QVLOG001";

/// A file named by a checkpoint: its name in the collection's folder and its object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    /// Relative to the collection's folder, e.g. `segments/00000000000000000003.seg`.
    pub local: String,
    /// Relative to the collection's prefix, e.g. `files/<writer>-00000000000000000003.seg`.
    pub key: String,
    pub len: u64,
    pub crc: u32,
}

/// What one log entry says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A writer took the collection (the fence: every older writer's next append fails).
    Open,
    /// Transactions of the collection's WAL, in sequence order (one group commit).
    Txns(Vec<(u64, Vec<Vec<u8>>)>),
    /// The collection is these files plus the transactions after `flushed_seq` of the
    /// entries that follow.
    Checkpoint {
        manifest: Vec<u8>,
        settings: Option<Vec<u8>>,
        files: Vec<FileRef>,
    },
    /// An index file written for the state at this point of the log.
    Index(FileRef),
}

/// An entry and who wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub writer: [u8; 16],
    pub entry: Entry,
}

/// The key of entry `n` under a collection's prefix.
pub fn entry_key(collection_prefix: &str, n: u64) -> String {
    format!("{collection_prefix}/log/{n:020}")
}

/// The entry number of a listed key (`.../log/<n>`), if it is one.
pub fn entry_no(key: &str) -> Option<u64> {
    let (_, n) = key.rsplit_once("/log/")?;
    (n.len() == 20).then(|| n.parse().ok())?
}

fn file_ref(e: &mut Encoder, f: &FileRef) {
    e.bytes(f.local.as_bytes());
    e.bytes(f.key.as_bytes());
    e.u64(f.len);
    e.u32(f.crc);
}

pub fn encode(writer: &[u8; 16], entry: &Entry) -> Vec<u8> {
    let mut e = Encoder::new();
    e.raw(MAGIC);
    e.raw(writer);
    match entry {
        Entry::Open => e.u8(1),
        Entry::Txns(txns) => {
            e.u8(2);
            e.u32(txns.len() as u32);
            for (seq, records) in txns {
                e.u64(*seq);
                e.u32(records.len() as u32);
                for r in records {
                    e.bytes(r);
                }
            }
        }
        Entry::Checkpoint { manifest, settings, files } => {
            e.u8(3);
            e.bytes(manifest);
            match settings {
                Some(s) => {
                    e.u8(1);
                    e.bytes(s);
                }
                None => e.u8(0),
            }
            e.u32(files.len() as u32);
            for f in files {
                file_ref(&mut e, f);
            }
        }
        Entry::Index(f) => {
            e.u8(4);
            file_ref(&mut e, f);
        }
    }
    let mut out = e.buf;
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode(key: &str, bytes: &[u8]) -> Result<Logged, StorageError> {
    let bad = |offset: usize, reason: String| StorageError::corrupt(key, offset as u64, reason);
    if bytes.len() < MAGIC.len() + 16 + 1 + 4 || &bytes[..8] != MAGIC {
        return Err(bad(0, "not a Quiver log entry".into()));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(tail.try_into().expect("4 bytes")) {
        return Err(bad(body.len(), "log entry checksum mismatch".into()));
    }
    let inner = || -> Result<Logged, quiver_storage::codec::DecodeError> {
        let mut d2 = Decoder::new(&body[8..]);
        let writer: [u8; 16] = d2.take(16)?.try_into().expect("16 bytes");
        let text = |d: &mut Decoder| -> Result<String, quiver_storage::codec::DecodeError> {
            let b = d.bytes()?;
            String::from_utf8(b.to_vec()).map_err(|_| d.error("a name is not UTF-8"))
        };
        let file = |d: &mut Decoder| -> Result<FileRef, quiver_storage::codec::DecodeError> {
            Ok(FileRef {
                local: text(d)?,
                key: text(d)?,
                len: d.u64()?,
                crc: d.u32()?,
            })
        };
        let entry = match d2.u8()? {
            1 => Entry::Open,
            2 => {
                let n = d2.u32()? as usize;
                let mut txns = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    let seq = d2.u64()?;
                    let k = d2.u32()? as usize;
                    let mut records = Vec::with_capacity(k.min(1 << 16));
                    for _ in 0..k {
                        records.push(d2.bytes()?.to_vec());
                    }
                    txns.push((seq, records));
                }
                Entry::Txns(txns)
            }
            3 => {
                let manifest = d2.bytes()?.to_vec();
                let settings = match d2.u8()? {
                    0 => None,
                    _ => Some(d2.bytes()?.to_vec()),
                };
                let n = d2.u32()? as usize;
                let mut files = Vec::with_capacity(n.min(1 << 12));
                for _ in 0..n {
                    files.push(file(&mut d2)?);
                }
                Entry::Checkpoint { manifest, settings, files }
            }
            4 => Entry::Index(file(&mut d2)?),
            k => return Err(d2.error(format!("unknown log entry kind {k}"))),
        };
        d2.finish()?;
        Ok(Logged { writer, entry })
    };
    inner().map_err(|e| bad(8 + e.offset, e.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Entry> {
        let f = FileRef {
            local: "segments/00000000000000000001.seg".into(),
            key: "files/ab-00000000000000000001.seg".into(),
            len: 12345,
            crc: 0xdead_beef,
        };
        vec![
            Entry::Open,
            Entry::Txns(vec![(7, vec![b"one".to_vec(), Vec::new()]), (8, vec![vec![0u8; 300]])]),
            Entry::Txns(Vec::new()),
            Entry::Checkpoint {
                manifest: b"manifest bytes".to_vec(),
                settings: Some(b"{}".to_vec()),
                files: vec![f.clone(), f.clone()],
            },
            Entry::Checkpoint {
                manifest: Vec::new(),
                settings: None,
                files: Vec::new(),
            },
            Entry::Index(f),
        ]
    }

    #[test]
    fn entries_round_trip() {
        let writer = [7u8; 16];
        for entry in all() {
            let bytes = encode(&writer, &entry);
            let back = decode("k", &bytes).unwrap();
            assert_eq!(back.writer, writer);
            assert_eq!(back.entry, entry);
        }
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        for entry in all() {
            let bytes = encode(&[1u8; 16], &entry);
            for i in 0..bytes.len() {
                for bit in [0, 3, 7] {
                    let mut b = bytes.clone();
                    b[i] ^= 1 << bit;
                    assert!(decode("k", &b).is_err(), "flip at {i} bit {bit} accepted");
                }
            }
            for n in 0..bytes.len() {
                assert!(decode("k", &bytes[..n]).is_err(), "truncation to {n} accepted");
            }
        }
    }

    #[test]
    fn entry_numbers_come_back_from_keys() {
        let key = entry_key("collections/docs", 42);
        assert_eq!(key, "collections/docs/log/00000000000000000042");
        assert_eq!(entry_no(&key), Some(42));
        assert_eq!(entry_no("collections/docs/log/42"), None);
        assert_eq!(entry_no("collections/docs/lease"), None);
    }
}
