//! The content-addressed blob store behind `files` datasets.
//!
//! A blob with BLAKE3 hash `h` (64 lowercase hex digits) lives at `root/h[0..2]/h[2..64]`.
//! A put streams the source once into a temporary file `root/.tmp-…` (hashing, sniffing
//! the head and checking for text as it goes); text is then NFC-normalised from that copy
//! into a second temporary file. The finished file is synced and renamed into place, so a
//! blob path either does not exist or holds complete content. If the blob already exists
//! the put is a no-op (the temporary copy is deleted); an existing blob is not re-read, so
//! corruption is found by [`FileStore::verify`], not by a later put.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use consort_crypto::Hash;
use unicode_normalization::UnicodeNormalization;

use super::media::{self, FileKind, TextCheck, HEAD_LIMIT};
use super::{FileEntry, TextInfo};
use crate::DataError;

const CHUNK: usize = 256 * 1024;

/// A content-addressed store of file blobs, keyed by the BLAKE3 hash of the stored bytes.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

/// The outcome of [`FileStore::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobCheck {
    /// The blob exists and its bytes hash to its name.
    Intact,
    /// There is no blob with that hash.
    Missing,
    /// The blob exists but its bytes hash to `actual`.
    Corrupted { actual: Hash },
}

impl FileStore {
    /// Opens (creating if needed) the store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<FileStore, DataError> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| DataError::io(format!("creating file store {}", root.display()), e))?;
        Ok(FileStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with hash `hash` is (or would be) stored.
    pub fn blob_path(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// The path of the stored blob, if the store holds it.
    pub fn get_path(&self, hash: &Hash) -> Option<PathBuf> {
        let path = self.blob_path(hash);
        path.is_file().then_some(path)
    }

    /// Rehashes the stored bytes of `hash`. I/O errors other than "not found" are errors.
    pub fn verify(&self, hash: &Hash) -> Result<BlobCheck, DataError> {
        let path = self.blob_path(hash);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobCheck::Missing),
            Err(e) => return Err(DataError::io(format!("opening blob {}", path.display()), e)),
        };
        let mut hasher = blake3::Hasher::new();
        io::copy(&mut file, &mut hasher)
            .map_err(|e| DataError::io(format!("reading blob {}", path.display()), e))?;
        let actual = Hash(*hasher.finalize().as_bytes());
        Ok(if actual == *hash {
            BlobCheck::Intact
        } else {
            BlobCheck::Corrupted { actual }
        })
    }

    /// Stores the file at `path` under its final path component as the entry name.
    pub fn put(&self, path: &Path) -> Result<FileEntry, DataError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                DataError::Invalid(format!("{}: file name is not UTF-8", path.display()))
            })?
            .to_string();
        self.put_as(path, name, &mut |_| {})
    }

    /// Stores the file at `path` as entry `name`, calling `progress` with the number of
    /// bytes of each chunk read from `path`.
    pub fn put_as(
        &self,
        path: &Path,
        name: String,
        progress: &mut dyn FnMut(u64),
    ) -> Result<FileEntry, DataError> {
        let ctx = || format!("reading {}", path.display());
        let mut source = File::open(path).map_err(|e| DataError::io(ctx(), e))?;
        let mut copy = self.temp_file()?;
        let mut hasher = blake3::Hasher::new();
        let mut head = Vec::new();
        let mut text = TextCheck::default();
        let mut original_size = 0u64;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(DataError::io(ctx(), e)),
            };
            let chunk = &buf[..n];
            hasher.update(chunk);
            text.feed(chunk);
            let room = HEAD_LIMIT.saturating_sub(head.len());
            head.extend_from_slice(&chunk[..room.min(n)]);
            copy.write(chunk)?;
            original_size += n as u64;
            progress(n as u64);
        }
        let original_blake3 = Hash(*hasher.finalize().as_bytes());
        let (media_type, kind) = media::sniff(&head, text.is_text());
        let mut entry = FileEntry {
            name,
            size: original_size,
            blake3: original_blake3,
            original_size,
            original_blake3,
            media_type,
            kind,
            image: None,
            audio: None,
            text: None,
        };
        let blob = if kind == FileKind::Text && text.is_text() {
            let (normalized, info) = self.normalize(&mut copy)?;
            entry.blake3 = normalized.hash;
            entry.size = normalized.size;
            entry.text = Some(TextInfo {
                normalized: entry.blake3 != original_blake3,
                ..info
            });
            normalized
        } else {
            entry.image = (kind == FileKind::Image)
                .then(|| media::image_info(&head))
                .flatten();
            entry.audio = (kind == FileKind::Audio)
                .then(|| media::audio_info(&head, original_size))
                .flatten();
            copy.hash = original_blake3;
            copy.size = original_size;
            copy
        };
        self.commit(blob)?;
        Ok(entry)
    }

    /// NFC-normalises the UTF-8 text in `copy` into a new temporary blob.
    fn normalize(&self, copy: &mut TempBlob) -> Result<(TempBlob, TextInfo), DataError> {
        copy.flush()?;
        let file = File::open(&copy.path)
            .map_err(|e| DataError::io(format!("reading {}", copy.path.display()), e))?;
        let mut chars = CharStream::new(BufReader::with_capacity(CHUNK, file));
        let mut out = self.temp_file()?;
        let mut hasher = blake3::Hasher::new();
        let (mut count, mut lines, mut last) = (0u64, 0u64, '\n');
        let mut pending = String::with_capacity(CHUNK + 4);
        for c in chars.by_ref().nfc() {
            count += 1;
            lines += u64::from(c == '\n');
            last = c;
            pending.push(c);
            if pending.len() >= CHUNK {
                hasher.update(pending.as_bytes());
                out.write(pending.as_bytes())?;
                out.size += pending.len() as u64;
                pending.clear();
            }
        }
        if let Some(e) = chars.error.take() {
            return Err(DataError::io(
                format!("normalising {}", copy.path.display()),
                e,
            ));
        }
        hasher.update(pending.as_bytes());
        out.write(pending.as_bytes())?;
        out.size += pending.len() as u64;
        out.hash = Hash(*hasher.finalize().as_bytes());
        let info = TextInfo {
            normalized: false,
            chars: count,
            lines: lines + u64::from(last != '\n'),
        };
        Ok((out, info))
    }

    fn temp_file(&self) -> Result<TempBlob, DataError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join(format!(".tmp-{}-{n}-{nanos}", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| DataError::io(format!("creating {}", path.display()), e))?;
        Ok(TempBlob {
            writer: BufWriter::with_capacity(CHUNK, file),
            path,
            hash: Hash::ZERO,
            size: 0,
            keep: false,
        })
    }

    /// Moves a finished temporary blob to its content address (or drops it if present).
    fn commit(&self, mut blob: TempBlob) -> Result<(), DataError> {
        let target = self.blob_path(&blob.hash);
        if target.is_file() {
            return Ok(());
        }
        blob.flush()?;
        let ctx = |what: &str| format!("{what} {}", target.display());
        blob.writer
            .get_ref()
            .sync_all()
            .map_err(|e| DataError::io(ctx("syncing"), e))?;
        let dir = target.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(|e| DataError::io(ctx("creating directory for"), e))?;
        fs::rename(&blob.path, &target).map_err(|e| DataError::io(ctx("storing"), e))?;
        blob.keep = true;
        // Best effort: make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// A temporary file in the store, removed on drop unless renamed into place.
struct TempBlob {
    writer: BufWriter<File>,
    path: PathBuf,
    hash: Hash,
    size: u64,
    keep: bool,
}

impl TempBlob {
    fn write(&mut self, data: &[u8]) -> Result<(), DataError> {
        self.writer
            .write_all(data)
            .map_err(|e| DataError::io(format!("writing {}", self.path.display()), e))
    }

    fn flush(&mut self) -> Result<(), DataError> {
        self.writer
            .flush()
            .map_err(|e| DataError::io(format!("writing {}", self.path.display()), e))
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Decodes UTF-8 from a reader into chars; a read error or invalid UTF-8 ends the stream
/// and is left in `error`.
struct CharStream<R> {
    reader: R,
    buf: Vec<u8>,
    pending: Vec<u8>,
    text: String,
    pos: usize,
    eof: bool,
    error: Option<io::Error>,
}

impl<R: Read> CharStream<R> {
    fn new(reader: R) -> Self {
        CharStream {
            reader,
            buf: vec![0u8; CHUNK],
            pending: Vec::new(),
            text: String::new(),
            pos: 0,
            eof: false,
            error: None,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        let n = loop {
            match self.reader.read(&mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            self.eof = true;
            if !self.pending.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "truncated UTF-8",
                ));
            }
            return Ok(());
        }
        self.pending.extend_from_slice(&self.buf[..n]);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        };
        let rest = self.pending.split_off(valid);
        let done = std::mem::replace(&mut self.pending, rest);
        self.text =
            String::from_utf8(done).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.pos = 0;
        Ok(())
    }
}

impl<R: Read> Iterator for CharStream<R> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        loop {
            if let Some(c) = self.text.get(self.pos..).and_then(|t| t.chars().next()) {
                self.pos += c.len_utf8();
                return Some(c);
            }
            if self.eof || self.error.is_some() {
                return None;
            }
            if let Err(e) = self.refill() {
                self.error = Some(e);
            }
        }
    }
}
