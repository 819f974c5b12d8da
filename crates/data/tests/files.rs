//! `files` datasets: detection from bytes, media headers, NFC text, the content-addressed
//! store, directory walking, the commitment, and robustness against malformed headers.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

use consort_crypto::{merkle, Hash};
use consort_data::files::media::{self, TextCheck};
use consort_data::files::{
    collect_files, files_commitment, ingest_files, AudioInfo, BlobCheck, FileEntry, FileKind,
    FileStore, FilesIngestReport,
};
use consort_data::DataError;
use proptest::prelude::*;

fn b3(data: &[u8]) -> Hash {
    Hash(*blake3::hash(data).as_bytes())
}

struct Env {
    dir: tempfile::TempDir,
    store: FileStore,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path().join("store")).unwrap();
        Env { dir, store }
    }

    fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join("in").join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, data).unwrap();
        path
    }

    fn put(&self, name: &str, data: &[u8]) -> FileEntry {
        let path = self.write(name, data);
        self.store.put(&path).unwrap()
    }

    fn ingest(&self, inputs: &[PathBuf]) -> FilesIngestReport {
        ingest_files(inputs, &self.store, &mut |_| {}).unwrap()
    }

    fn blob_count(&self) -> usize {
        let mut n = 0;
        for shard in fs::read_dir(self.store.root()).unwrap() {
            let shard = shard.unwrap().path();
            if shard.is_dir() {
                n += fs::read_dir(shard).unwrap().count();
            }
        }
        n
    }
}

// ---- hand-built media -------------------------------------------------------------

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(body);
    out.extend_from_slice(&crc_input);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    out
}

/// A complete, valid 8-bit greyscale PNG (zlib stored block, real CRCs and Adler-32).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let raw: Vec<u8> = (0..height)
        .flat_map(|_| std::iter::once(0u8).chain((0..width).map(|x| x as u8)))
        .collect();
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    let len = raw.len() as u16;
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(b"IDAT", &zlib));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

fn gif(width: u16, height: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0x3B]);
    out
}

fn bmp(width: u32, height: u32) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let pixels = row * height;
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&(54 + pixels).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0; 24]);
    out.extend(std::iter::repeat_n(0x7Fu8, pixels as usize));
    out
}

/// A PCM WAV: `fmt ` chunk (optionally of a given declared size) then `data`.
fn wav(rate: u32, channels: u16, samples: u32, fmt_size: u32) -> Vec<u8> {
    let block = channels * 2;
    let data_len = samples * u32::from(block);
    let mut fmt = 1u16.to_le_bytes().to_vec();
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&rate.to_le_bytes());
    fmt.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    fmt.extend_from_slice(&block.to_le_bytes());
    fmt.extend_from_slice(&16u16.to_le_bytes());
    fmt.truncate(fmt_size as usize);
    let mut body = b"WAVE".to_vec();
    body.extend_from_slice(b"fmt ");
    body.extend_from_slice(&fmt_size.to_le_bytes());
    body.extend_from_slice(&fmt);
    body.extend_from_slice(b"data");
    body.extend_from_slice(&data_len.to_le_bytes());
    body.extend((0..data_len).map(|i| (i % 200) as u8));
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

fn flac(rate: u32, channels: u8, total_samples: u64) -> Vec<u8> {
    let mut out = b"fLaC".to_vec();
    out.push(0x80); // last metadata block, type 0 = STREAMINFO
    out.extend_from_slice(&[0, 0, 34]);
    out.extend_from_slice(&4096u16.to_be_bytes());
    out.extend_from_slice(&4096u16.to_be_bytes());
    out.extend_from_slice(&[0; 6]); // min/max frame size unknown
    let packed = (u64::from(rate) << 44)
        | (u64::from(channels - 1) << 41)
        | (15u64 << 36) // 16 bits per sample
        | total_samples;
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0xAB; 16]); // MD5
    out
}

/// An MPEG-1 layer III frame (128 kbit/s, 44.1 kHz, stereo) carrying a Xing frame count.
fn mp3_with_xing(frames: u32) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFB, 0x90, 0x00];
    out.extend_from_slice(&[0; 32]);
    out.extend_from_slice(b"Xing");
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&frames.to_be_bytes());
    out.resize(417, 0);
    out
}

// ---- detection -----------------------------------------------------------------------

#[test]
fn type_comes_from_bytes_not_extension() {
    let env = Env::new();
    let png_as_txt = env.put("photo.txt", &png(3, 2));
    assert_eq!(png_as_txt.media_type, "image/png");
    assert_eq!(png_as_txt.kind, FileKind::Image);
    assert!(png_as_txt.text.is_none());
    let text_as_png = env.put("notes.png", b"just some notes\n");
    assert_eq!(text_as_png.media_type, "text/plain; charset=utf-8");
    assert_eq!(text_as_png.kind, FileKind::Text);
    assert!(text_as_png.image.is_none());
}

fn dims(e: &FileEntry) -> (&str, Option<(u32, u32)>) {
    (&e.media_type, e.image.map(|i| (i.width, i.height)))
}

/// `(sample_rate, channels, duration_ms)`.
type Facts = (Option<u32>, Option<u16>, Option<u64>);

fn facts(a: Option<AudioInfo>) -> Option<Facts> {
    a.map(|a| (a.sample_rate, a.channels, a.duration_ms))
}

#[test]
fn image_dimensions_png_gif_bmp() {
    let env = Env::new();
    let p = env.put("a.png", &png(7, 5));
    assert_eq!(dims(&p), ("image/png", Some((7, 5))));
    assert_eq!(
        dims(&env.put("b.gif", &gif(320, 200))),
        ("image/gif", Some((320, 200)))
    );
    assert_eq!(
        dims(&env.put("c.bmp", &bmp(5, 3))),
        ("image/bmp", Some((5, 3)))
    );
    assert!(p.audio.is_none() && p.text.is_none());
}

#[test]
fn wav_duration_sample_rate_channels() {
    let env = Env::new();
    let mono = env.put("mono.wav", &wav(8000, 1, 4000, 16));
    assert_eq!(
        (mono.media_type.as_str(), mono.kind),
        ("audio/x-wav", FileKind::Audio)
    );
    assert_eq!(facts(mono.audio), Some((Some(8000), Some(1), Some(500))));
    let stereo = env.put("stereo.wav", &wav(44_100, 2, 66_150, 16));
    assert_eq!(
        facts(stereo.audio),
        Some((Some(44_100), Some(2), Some(1500)))
    );
    // A data chunk claiming more bytes than the file has is clamped to what is there.
    let mut cut = wav(8000, 1, 8000, 16);
    cut.truncate(44 + 8000);
    assert_eq!(
        facts(media::wav_info(&cut, cut.len() as u64)),
        Some((Some(8000), Some(1), Some(500)))
    );
}

#[test]
fn flac_streaminfo() {
    let env = Env::new();
    let e = env.put("song.flac", &flac(44_100, 2, 88_200));
    assert_eq!(e.media_type, "audio/x-flac");
    assert_eq!(facts(e.audio), Some((Some(44_100), Some(2), Some(2000))));
    // Unknown total samples: no duration, the rest still known.
    assert_eq!(
        facts(media::flac_info(&flac(96_000, 6, 0))),
        Some((Some(96_000), Some(6), None))
    );
    // Behind an ID3v2 tag (which infer calls MP3) it is still FLAC.
    let mut tagged = b"ID3\x04\x00\x00\x00\x00\x00\x05hello".to_vec();
    tagged.extend(flac(48_000, 1, 48_000));
    let e = env.put("tagged.mp3", &tagged);
    assert_eq!(e.media_type, "audio/x-flac");
    assert_eq!(facts(e.audio), Some((Some(48_000), Some(1), Some(1000))));
}

#[test]
fn mp3_frame_header_and_xing_count() {
    let env = Env::new();
    let e = env.put("x.bin", &mp3_with_xing(100));
    assert_eq!(e.media_type, "audio/mpeg");
    // 100 frames × 1152 samples / 44100 Hz = 2612 ms.
    assert_eq!(facts(e.audio), Some((Some(44_100), Some(2), Some(2612))));
    // No Xing header: rate and channels only, no duration guessed.
    let mut plain = mp3_with_xing(100);
    plain[36..40].copy_from_slice(b"\0\0\0\0");
    assert_eq!(
        facts(media::mp3_info(&plain)),
        Some((Some(44_100), Some(2), None))
    );
}

#[test]
fn utf8_text_is_stored_nfc_with_both_hashes() {
    let env = Env::new();
    let decomposed = "cafe\u{0301}\nna\u{0308}ive\n".as_bytes();
    let composed = "caf\u{e9}\nn\u{e4}ive\n".as_bytes();
    assert_ne!(decomposed, composed);
    let e = env.put("d.txt", decomposed);
    assert_eq!(e.blake3, b3(composed));
    assert_eq!(e.original_blake3, b3(decomposed));
    assert_eq!(
        (e.size, e.original_size),
        (composed.len() as u64, decomposed.len() as u64)
    );
    let t = e.text.unwrap();
    assert!(t.normalized);
    assert_eq!((t.chars, t.lines), (11, 2));
    let stored = fs::read(env.store.get_path(&e.blake3).unwrap()).unwrap();
    assert_eq!(stored, composed);
    assert!(env.store.get_path(&e.original_blake3).is_none());
    // Already NFC: unchanged, both hashes equal, and it is the same blob.
    let c = env.put("c.txt", composed);
    assert!(!c.text.unwrap().normalized);
    assert_eq!((c.blake3, c.original_blake3), (e.blake3, e.blake3));
    // Last line without a newline still counts.
    assert_eq!(env.put("n.txt", b"a\nb").text.unwrap().lines, 2);
}

#[test]
fn large_text_across_chunk_boundaries_normalises_like_in_memory() {
    use unicode_normalization::UnicodeNormalization;
    let env = Env::new();
    // > 2 chunks of 256 KiB; multi-byte and combining sequences straddle chunk boundaries.
    let unit = "x e\u{0301} \u{1F600} a\u{0308}\u{0301} \u{4E2D}\n";
    let text: String = (0..40_000)
        .map(|i| if i % 7 == 0 { "plain\n" } else { unit })
        .collect();
    assert!(text.len() > 600_000);
    let e = env.put("big.txt", text.as_bytes());
    let expected: String = text.nfc().collect();
    assert_eq!(e.blake3, b3(expected.as_bytes()));
    let t = e.text.unwrap();
    assert_eq!(t.chars, expected.chars().count() as u64);
    assert_eq!(t.lines, 40_000);
    assert_eq!(
        fs::read(env.store.get_path(&e.blake3).unwrap()).unwrap(),
        expected.as_bytes()
    );
}

#[test]
fn binary_garbage_is_octet_stream() {
    let env = Env::new();
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let e = env.put("data.csv", &garbage);
    assert_eq!(e.media_type, "application/octet-stream");
    assert_eq!(e.kind, FileKind::Other);
    assert!(e.text.is_none() && e.image.is_none() && e.audio.is_none());
    assert_eq!(e.blake3, b3(&garbage));
    // Valid UTF-8 but full of NUL bytes is binary too.
    assert_eq!(
        env.put("zeros", &[0u8; 64]).media_type,
        "application/octet-stream"
    );
}

#[test]
fn empty_file_is_fine() {
    let env = Env::new();
    let e = env.put("empty", b"");
    assert_eq!((e.size, e.blake3), (0, b3(b"")));
    assert_eq!(e.media_type, "text/plain; charset=utf-8");
    let t = e.text.unwrap();
    assert_eq!((t.chars, t.lines, t.normalized), (0, 0, false));
    assert_eq!(env.store.verify(&e.blake3).unwrap(), BlobCheck::Intact);
}

// ---- store and ingest ----------------------------------------------------------------

#[test]
fn identical_content_is_stored_once() {
    let env = Env::new();
    let a = env.write("a.bin", &png(4, 4));
    let b = env.write("b.bin", &png(4, 4));
    // Same text up to normalisation is the same content too.
    let c = env.write("c.txt", "e\u{0301}".as_bytes());
    let d = env.write("d.txt", "\u{e9}".as_bytes());
    let report = env.ingest(&[a.clone(), b, c, d]);
    assert_eq!(
        (report.files_read, report.unique_contents, report.duplicates),
        (4, 2, 2)
    );
    assert_eq!(env.blob_count(), 2);
    let blob = env.store.get_path(&report.entries[0].blake3).unwrap();
    let before = fs::metadata(&blob).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.store.put(&a).unwrap(); // a no-op
    assert_eq!(fs::metadata(&blob).unwrap().modified().unwrap(), before);
    assert_eq!(env.blob_count(), 2);
    // No temporary files left behind.
    let leftovers = fs::read_dir(env.store.root())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_file())
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn directory_walk_is_recursive_sorted_and_named_relatively() {
    let env = Env::new();
    env.write("root/z.txt", b"z");
    env.write("root/sub/b.bin", &[0, 1, 2]);
    env.write("root/sub/deeper/c.txt", b"c");
    env.write("root/.hidden", b"h");
    env.write("root/A.txt", b"A");
    let single = env.write("solo.gif", &gif(1, 1));
    let root = env.dir.path().join("in/root");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.join("z.txt"), root.join("link.txt")).unwrap();
    let mut seen = Vec::new();
    let report = ingest_files(&[root.clone(), single], &env.store, &mut |n| seen.push(n)).unwrap();
    let names: Vec<&str> = report.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            ".hidden",
            "A.txt",
            "solo.gif",
            "sub/b.bin",
            "sub/deeper/c.txt",
            "z.txt"
        ]
    );
    #[cfg(unix)]
    assert_eq!(report.skipped, vec![root.join("link.txt")]);
    assert_eq!(
        collect_files(std::slice::from_ref(&root)).unwrap()[3],
        root.join("sub/deeper/c.txt")
    );
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(seen.last().copied(), Some(report.bytes_read));
    assert_eq!(
        report.bytes_read,
        1 + 3 + 1 + 1 + 1 + gif(1, 1).len() as u64
    );
}

#[test]
fn missing_path_is_an_error_naming_it() {
    let env = Env::new();
    let ok = env.write("ok.txt", b"ok");
    let missing = env.dir.path().join("nope/not-here.csv");
    let err = ingest_files(&[ok, missing.clone()], &env.store, &mut |_| {}).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not-here.csv"), "{err}");
    assert!(collect_files(&[missing]).is_err());
}

#[test]
fn duplicate_names_and_empty_inputs_are_errors() {
    let env = Env::new();
    let a = env.write("x/same.txt", b"1");
    let b = env.write("y/same.txt", b"2");
    let err = ingest_files(&[a, b], &env.store, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("same.txt"), "{err}");
    let empty = env.dir.path().join("in/empty-dir");
    fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        ingest_files(&[empty], &env.store, &mut |_| {}),
        Err(DataError::Invalid(_))
    ));
    assert_eq!(env.blob_count(), 0);
}

#[test]
fn commitment_pins_the_encoding_and_tracks_names_and_bytes() {
    let env = Env::new();
    let dir = env.dir.path().join("in/set");
    env.write("set/a.txt", b"alpha");
    env.write("set/b.bin", &[9, 9, 9, 0]);
    let base = env.ingest(std::slice::from_ref(&dir));
    // Byte-exact: u32_be(len) || name || blake3, RFC 6962 root in name order.
    let leaf = |name: &str, data: &[u8]| {
        let mut l = (name.len() as u32).to_be_bytes().to_vec();
        l.extend_from_slice(name.as_bytes());
        l.extend_from_slice(&b3(data).0);
        l
    };
    let expected = merkle::root(&[leaf("a.txt", b"alpha"), leaf("b.bin", &[9, 9, 9, 0])]);
    assert_eq!(base.commitment, expected);
    let mut reversed = base.entries.clone();
    reversed.reverse();
    assert_eq!(files_commitment(&reversed), expected);

    fs::rename(dir.join("a.txt"), dir.join("a2.txt")).unwrap();
    let renamed = env.ingest(std::slice::from_ref(&dir));
    assert_ne!(renamed.commitment, base.commitment);
    assert_ne!(renamed.input_hash, base.input_hash);
    fs::rename(dir.join("a2.txt"), dir.join("a.txt")).unwrap();
    env.write("set/b.bin", &[9, 9, 9, 1]);
    let changed = env.ingest(std::slice::from_ref(&dir));
    assert_ne!(changed.commitment, base.commitment);
    env.write("set/b.bin", &[9, 9, 9, 0]);
    let again = env.ingest(&[dir]);
    assert_eq!(
        (again.commitment, again.input_hash),
        (base.commitment, base.input_hash)
    );
}

#[test]
fn verify_detects_a_corrupted_or_missing_blob() {
    let env = Env::new();
    let e = env.put("f.bin", &[1, 2, 3, 4, 0xFF]);
    assert_eq!(env.store.verify(&e.blake3).unwrap(), BlobCheck::Intact);
    let blob = env.store.get_path(&e.blake3).unwrap();
    fs::write(&blob, [1, 2, 3, 4, 0xFE]).unwrap();
    assert_eq!(
        env.store.verify(&e.blake3).unwrap(),
        BlobCheck::Corrupted {
            actual: b3(&[1, 2, 3, 4, 0xFE])
        }
    );
    fs::remove_file(&blob).unwrap();
    assert_eq!(env.store.verify(&e.blake3).unwrap(), BlobCheck::Missing);
    assert!(env.store.get_path(&e.blake3).is_none());
}

#[test]
fn entry_serde_round_trip() {
    let env = Env::new();
    let e = env.put("s.wav", &wav(8000, 1, 800, 16));
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["kind"], "audio");
    assert_eq!(json["blake3"], e.blake3.to_hex());
    assert!(json.get("image").is_none());
    assert_eq!(serde_json::from_value::<FileEntry>(json).unwrap(), e);
}

// ---- malformed headers -------------------------------------------------------------

#[test]
fn malformed_headers_give_none_fields() {
    let env = Env::new();
    let bad_fmt = env.put("bad.wav", &wav(8000, 1, 100, 4));
    assert_eq!(
        (bad_fmt.media_type.as_str(), bad_fmt.kind),
        ("audio/x-wav", FileKind::Audio)
    );
    assert!(bad_fmt.audio.is_none());
    let mut zero = wav(0, 0, 100, 16); // fmt with zero rate and channels
    zero[4..8].copy_from_slice(&0u32.to_le_bytes());
    assert!(env.put("zero.wav", &zero).audio.is_none());
    let png_bytes = png(10, 10);
    let truncated = env.put("t.png", &png_bytes[..20]); // IHDR cut inside the width
    assert_eq!(
        (truncated.media_type.as_str(), truncated.kind),
        ("image/png", FileKind::Image)
    );
    assert!(truncated.image.is_none());
    let mut not_streaminfo = flac(44_100, 2, 10);
    not_streaminfo[4] = 0x84;
    let f = env.put("f.flac", &not_streaminfo);
    assert_eq!(f.media_type, "audio/x-flac");
    assert!(f.audio.is_none());
    assert!(env
        .put("cut.flac", &flac(44_100, 2, 10)[..20])
        .audio
        .is_none());
    assert!(env.put("gif", &gif(3, 3)[..8]).image.is_none());
}

#[test]
fn text_check_handles_split_characters() {
    let bytes = "a\u{e9}\u{1F600}b".as_bytes();
    for cut in 0..=bytes.len() {
        let mut check = TextCheck::default();
        check.feed(&bytes[..cut]);
        check.feed(&bytes[cut..]);
        assert!(check.is_text(), "cut at {cut}");
    }
    let mut bytewise = TextCheck::default();
    for b in bytes {
        bytewise.feed(std::slice::from_ref(b));
    }
    assert!(bytewise.is_text());
    let mut partial = TextCheck::default();
    partial.feed(&bytes[..4]); // ends inside the emoji
    assert!(!partial.is_text());
}

fn exercise(bytes: &[u8]) {
    let _ = media::sniff(bytes, false);
    let _ = media::image_info(bytes);
    let _ = media::audio_info(bytes, bytes.len() as u64);
    let _ = media::audio_info(bytes, 0);
    let _ = media::wav_info(bytes, u64::MAX);
    let _ = media::flac_info(bytes);
    let _ = media::mp3_info(bytes);
    let _ = media::skip_id3v2(bytes);
    let mut check = TextCheck::default();
    check.feed(bytes);
    let _ = check.is_text();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn media_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
    }

    #[test]
    fn media_parsers_never_panic_behind_real_magic(
        magic in prop::sample::select(vec![
            b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec(),
            b"fLaC\x00\x00\x00\x22".to_vec(),
            b"ID3\x03\x00\x00\x00\x00\x01\x00".to_vec(),
            vec![0xFF, 0xFB],
            vec![0xFF, 0xF3],
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec(),
            b"GIF89a".to_vec(),
            b"BM".to_vec(),
            vec![0xFF, 0xD8, 0xFF],
            b"RIFF\x00\x00\x00\x00WEBPVP8".to_vec(),
            b"II*\x00".to_vec(),
        ]),
        tail in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = magic;
        bytes.extend(tail);
        exercise(&bytes);
    }

    #[test]
    fn text_check_agrees_with_std_for_any_split(bytes in proptest::collection::vec(any::<u8>(), 0..64), cut in 0usize..64) {
        let cut = cut.min(bytes.len());
        let mut check = TextCheck::default();
        check.feed(&bytes[..cut]);
        check.feed(&bytes[cut..]);
        let expected = std::str::from_utf8(&bytes).is_ok()
            && !bytes.iter().any(|b| *b < 0x20 && !matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x1B));
        prop_assert_eq!(check.is_text(), expected);
    }
}
