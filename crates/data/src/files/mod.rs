//! `files` datasets: a directory or list of files of any kind (text, images, audio, other),
//! content-addressed by BLAKE3, described from their bytes and committed by a Merkle root.
//!
//! # Inputs and names
//! [`collect_files`] takes files and directories. A file given directly is named by its
//! final path component; files found under a directory are named by their path relative to
//! that directory, components joined with `/` (a file `photos/2024/a.jpg` under input
//! `photos` is `2024/a.jpg`). Directories are walked recursively and entries come back
//! sorted by name. Hidden files (a leading `.`) are included: they are data the user
//! pointed at, and nothing is dropped silently. Inside a directory, symbolic links are not
//! followed and neither they nor special files (sockets, FIFOs, devices) are read; they are
//! listed in [`FilesIngestReport::skipped`]. A path given explicitly is followed if it is a
//! link. Names must be valid UTF-8 and unique across all inputs; a missing input, a
//! non-UTF-8 name or two inputs giving the same name is an error naming the paths.
//!
//! # What each file gets
//! - `media_type` from the bytes via the `infer` crate, never the name; when no magic number
//!   matches, `text/plain; charset=utf-8` for text (valid UTF-8 with no C0 control bytes
//!   other than tab, LF, VT, FF, CR and ESC; an empty file counts as text), else
//!   `application/octet-stream`. `kind` follows the media type.
//! - images: pixel dimensions (via `imagesize`); audio: sample rate, channels and duration
//!   for WAV, FLAC and MP3 (Xing/Info/VBRI frame count only) where the header gives them
//!   (see [`media`]); `audio` is `None` when the header gives nothing.
//! - text (kind `Text` and text as above): the stored bytes are the NFC normalisation of the
//!   file. `blake3`/`size` are those of the stored (normalised) bytes, `original_blake3`/
//!   `original_size` those of the file as read (equal for everything else);
//!   `text.normalized` says whether NFC changed anything; `chars` counts Unicode scalar
//!   values and `lines` counts `\n` plus one for a non-empty last line without one.
//!
//! # Commitment (byte-exact)
//! Entries are ordered by `name`, compared bytewise as UTF-8. Leaf `i` is the canonical
//! encoding (`consort_crypto::encoding`) of `(name, blake3)`:
//! `u32_be(len(name)) || name (UTF-8) || blake3 (32 raw bytes)`, where `blake3` is the hash
//! of the stored bytes. The commitment is the RFC 6962 Merkle tree hash (SHA-256, leaf
//! prefix `0x00`, node prefix `0x01`; no entries = `SHA-256("")`) over those leaves
//! ([`files_commitment`]).
//!
//! The input hash (lineage) is `hash_domain("consort/files-input/v1", [L])` where `L` is the
//! canonical encoding of the list, in name order, of `(string name, original_blake3,
//! u64 original_size)`: `u32_be(count)` then, per entry,
//! `u32_be(len(name)) || name || original_blake3 (32 bytes) || u64_be(original_size)`.
//!
//! # Atomicity
//! [`ingest_files`] returns a report only if every file was read and stored. If anything
//! fails part-way it returns the error and no report; blobs already put in the
//! [`FileStore`] stay there (content-addressed blobs are harmless and a retry reuses them),
//! and nothing else is written, so the caller registers nothing.

pub mod media;
mod store;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use consort_crypto::encoding::Writer;
use consort_crypto::{hash_domain, merkle, Hash};
use serde::{Deserialize, Serialize};

pub use media::{AudioInfo, FileKind, ImageInfo};
pub use store::{BlobCheck, FileStore};

use crate::DataError;

/// Domain of [`FilesIngestReport::input_hash`].
pub const INPUT_HASH_DOMAIN: &str = "consort/files-input/v1";

/// One file of a `files` dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative path, `/`-separated.
    pub name: String,
    /// Size of the stored bytes.
    pub size: u64,
    /// BLAKE3 of the stored bytes (NFC-normalised for text): the blob's address.
    pub blake3: Hash,
    /// Size of the file as read.
    pub original_size: u64,
    /// BLAKE3 of the file as read.
    pub original_blake3: Hash,
    pub media_type: String,
    pub kind: FileKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextInfo>,
}

/// Text facts, of the stored (NFC) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextInfo {
    /// Whether NFC normalisation changed the bytes.
    pub normalized: bool,
    pub chars: u64,
    pub lines: u64,
}

/// The outcome of [`ingest_files`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesIngestReport {
    /// In name order.
    pub entries: Vec<FileEntry>,
    pub files_read: u64,
    /// Distinct stored contents (distinct `blake3`).
    pub unique_contents: u64,
    /// Files whose stored content another, earlier-named file already has.
    pub duplicates: u64,
    /// Bytes read from the inputs (original sizes).
    pub bytes_read: u64,
    pub commitment: Hash,
    pub input_hash: Hash,
    /// Paths inside input directories that were not read (symlinks, special files).
    pub skipped: Vec<PathBuf>,
}

/// Files found under the inputs, with their dataset names, and what was skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectedFiles {
    /// `(name, path)`, sorted by name.
    pub files: Vec<(String, PathBuf)>,
    /// Symlinks and special files inside input directories, not read.
    pub skipped: Vec<PathBuf>,
}

/// The files under `inputs`, in name order (see the module docs for naming and walking).
pub fn collect_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, DataError> {
    Ok(collect_named_files(inputs)?
        .files
        .into_iter()
        .map(|(_, path)| path)
        .collect())
}

/// [`collect_files`] with each file's dataset name and the skipped paths.
pub fn collect_named_files(inputs: &[PathBuf]) -> Result<CollectedFiles, DataError> {
    let mut out = CollectedFiles::default();
    for input in inputs {
        let meta = fs::metadata(input)
            .map_err(|e| DataError::io(format!("input {}", input.display()), e))?;
        if meta.is_dir() {
            walk(input, &mut out)?;
        } else if meta.is_file() {
            out.files.push((utf8_name(input)?, input.clone()));
        } else {
            return Err(DataError::Invalid(format!(
                "input {}: not a regular file or directory",
                input.display()
            )));
        }
    }
    out.files.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = out.files.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(DataError::Invalid(format!(
            "two input files have the same name {:?}: {} and {}",
            pair[0].0,
            pair[0].1.display(),
            pair[1].1.display()
        )));
    }
    out.skipped.sort();
    Ok(out)
}

fn utf8_name(path: &Path) -> Result<String, DataError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| DataError::Invalid(format!("{}: name is not valid UTF-8", path.display())))
}

/// Walks `root` without following symlinks, with an explicit stack (no recursion limit).
fn walk(root: &Path, out: &mut CollectedFiles) -> Result<(), DataError> {
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let ctx = || format!("reading directory {}", dir.display());
        for item in fs::read_dir(&dir).map_err(|e| DataError::io(ctx(), e))? {
            let item = item.map_err(|e| DataError::io(ctx(), e))?;
            let path = item.path();
            let name = format!("{prefix}{}", utf8_name(&path)?);
            let file_type = item
                .file_type()
                .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
            if file_type.is_dir() {
                stack.push((path, format!("{name}/")));
            } else if file_type.is_file() {
                out.files.push((name, path));
            } else {
                out.skipped.push(path);
            }
        }
    }
    Ok(())
}

/// Ingests the files under `inputs` into `store` and describes them. `progress` is called
/// with the total number of input bytes read so far, as reading goes. See the module docs
/// for what is stored, the commitment and atomicity.
pub fn ingest_files(
    inputs: &[PathBuf],
    store: &FileStore,
    progress: &mut dyn FnMut(u64),
) -> Result<FilesIngestReport, DataError> {
    let collected = collect_named_files(inputs)?;
    if collected.files.is_empty() {
        return Err(DataError::Invalid(format!(
            "no files to ingest in {} ({} skipped: symlinks or special files)",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            collected.skipped.len()
        )));
    }
    let mut entries = Vec::with_capacity(collected.files.len());
    let mut bytes_read = 0u64;
    for (name, path) in collected.files {
        let entry = store.put_as(&path, name, &mut |n| {
            bytes_read += n;
            progress(bytes_read);
        })?;
        entries.push(entry);
    }
    let unique: BTreeSet<Hash> = entries.iter().map(|e| e.blake3).collect();
    let files_read = entries.len() as u64;
    let unique_contents = unique.len() as u64;
    Ok(FilesIngestReport {
        files_read,
        unique_contents,
        duplicates: files_read - unique_contents,
        bytes_read: entries.iter().map(|e| e.original_size).sum(),
        commitment: files_commitment(&entries),
        input_hash: files_input_hash(&entries),
        entries,
        skipped: collected.skipped,
    })
}

/// The canonical leaf of one entry: `u32_be(len(name)) || name || blake3`.
pub fn commitment_leaf(name: &str, blake3: &Hash) -> Vec<u8> {
    let mut w = Writer::with_capacity(4 + name.len() + 32);
    w.string(name).hash(blake3);
    w.into_bytes()
}

/// The dataset commitment: RFC 6962 Merkle root over [`commitment_leaf`] of each entry in
/// name order. Entries may be passed in any order; they are sorted by name here.
pub fn files_commitment(entries: &[FileEntry]) -> Hash {
    let mut sorted: Vec<&FileEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let leaves: Vec<Vec<u8>> = sorted
        .iter()
        .map(|e| commitment_leaf(&e.name, &e.blake3))
        .collect();
    merkle::root(&leaves)
}

/// The lineage hash of the input as read (see the module docs), over entries in name order.
pub fn files_input_hash(entries: &[FileEntry]) -> Hash {
    let mut sorted: Vec<&FileEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut w = Writer::new();
    w.list(&sorted, |w, e| {
        w.string(&e.name)
            .hash(&e.original_blake3)
            .u64(e.original_size);
    });
    hash_domain(INPUT_HASH_DOMAIN, &[w.as_bytes()])
}

/// Streams a file through plain (undomained) BLAKE3 and returns its hash and size in bytes
/// (what `consort notarize` records).
pub fn blake3_file(path: impl AsRef<std::path::Path>) -> Result<(Hash, u64), DataError> {
    use std::io::Read;
    let path = path.as_ref();
    let io_err = |source| DataError::io(format!("reading {}", path.display()), source);
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Hash(*hasher.finalize().as_bytes()), size))
}
