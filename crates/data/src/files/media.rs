//! Content sniffing for `files` datasets: the media type and kind from the bytes (never the
//! name), image pixel dimensions, audio headers (WAV, FLAC, MP3) and the UTF-8 text test.
//!
//! Every parser here takes a byte slice (the head of the file, at most [`HEAD_LIMIT`]
//! bytes) and returns `None` for anything it cannot read: truncated, malformed or
//! hostile input never panics, it only yields fewer facts.

use serde::{Deserialize, Serialize};

/// How many leading bytes of a file the sniffers look at.
pub const HEAD_LIMIT: usize = 1 << 20;

/// The media type given to valid UTF-8 text that no magic number matched.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
/// The media type given to anything else nothing matched.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The broad family of a file, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Image,
    Audio,
    Video,
    Text,
    Archive,
    Document,
    Other,
}

/// Pixel dimensions of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
}

/// What an audio header says; each field is `None` when the header does not give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AudioInfo {
    pub duration_ms: Option<u64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

impl AudioInfo {
    fn is_empty(&self) -> bool {
        self.duration_ms.is_none() && self.sample_rate.is_none() && self.channels.is_none()
    }
}

/// The media type and kind detected from a file's leading bytes.
///
/// `is_text` says whether the whole file is text (valid UTF-8 without binary control
/// bytes, see [`TextCheck`]); it only matters when no magic number matched.
pub fn sniff(head: &[u8], is_text: bool) -> (String, FileKind) {
    use ::infer::MatcherType as M;
    match ::infer::get(head) {
        Some(t) => {
            let kind = match t.matcher_type() {
                M::Image => FileKind::Image,
                M::Audio => FileKind::Audio,
                M::Video => FileKind::Video,
                M::Text => FileKind::Text,
                M::Archive => FileKind::Archive,
                M::Doc | M::Book => FileKind::Document,
                M::App | M::Font | M::Custom => FileKind::Other,
            };
            let mut mime = t.mime_type().to_string();
            // infer calls anything starting with an ID3v2 tag MP3; look behind the tag.
            if mime == "audio/mpeg" && flac_info(skip_id3v2(head)).is_some() {
                mime = "audio/x-flac".to_string();
            }
            (mime, kind)
        }
        None if is_text => (TEXT_PLAIN.to_string(), FileKind::Text),
        None => (OCTET_STREAM.to_string(), FileKind::Other),
    }
}

/// Pixel dimensions of an image (PNG, JPEG, GIF, BMP, WebP, TIFF, ...), `None` if the
/// header is missing, truncated or gives a zero or out-of-range dimension.
pub fn image_info(head: &[u8]) -> Option<ImageInfo> {
    let size = imagesize::blob_size(head).ok()?;
    let width = u32::try_from(size.width).ok().filter(|w| *w > 0)?;
    let height = u32::try_from(size.height).ok().filter(|h| *h > 0)?;
    Some(ImageInfo { width, height })
}

/// Audio facts for a file whose content is WAV, FLAC or MP3 (an ID3v2 tag in front is
/// skipped); `None` for other audio or when the header gives nothing. `file_size` bounds a
/// WAV `data` chunk that claims more bytes than the file has.
pub fn audio_info(head: &[u8], file_size: u64) -> Option<AudioInfo> {
    let info = if head.starts_with(b"RIFF") {
        wav_info(head, file_size)?
    } else {
        let body = skip_id3v2(head);
        if body.starts_with(b"fLaC") {
            flac_info(body)?
        } else {
            mp3_info(body)?
        }
    };
    (!info.is_empty()).then_some(info)
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// WAV (`RIFF` … `WAVE`): sample rate and channels from the `fmt ` chunk (at least 16
/// bytes), duration = `data` bytes × 1000 / the `fmt ` byte rate. A `data` size of 0 or
/// `0xFFFFFFFF` (streamed WAV), or one larger than the file, is replaced by the bytes that
/// follow the chunk header. Chunks are only found within `head`.
pub fn wav_info(head: &[u8], file_size: u64) -> Option<AudioInfo> {
    if head.get(0..4)? != b"RIFF" || head.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut info = AudioInfo::default();
    let mut byte_rate = None;
    let mut data_len = None;
    let mut pos = 12usize;
    while let (Some(id), Some(size)) = (
        head.get(pos..pos.saturating_add(4)),
        u32_le(head, pos.saturating_add(4)),
    ) {
        let body = pos + 8;
        match id {
            b"fmt " if size >= 16 && head.len() >= body + 16 => {
                info.channels = u16_le(head, body + 2).filter(|c| *c > 0);
                info.sample_rate = u32_le(head, body + 4).filter(|r| *r > 0);
                byte_rate = u32_le(head, body + 8).filter(|r| *r > 0);
            }
            b"data" => {
                let available = file_size.saturating_sub(body as u64);
                let declared = u64::from(size);
                data_len = Some(if size == 0 || size == u32::MAX || declared > available {
                    available
                } else {
                    declared
                });
                break;
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        let padded = usize::try_from(size)
            .ok()?
            .checked_add((size & 1) as usize)?;
        pos = body.checked_add(padded)?;
    }
    // Without a valid fmt chunk the data chunk cannot be turned into a duration.
    if info.sample_rate.is_some() && info.channels.is_some() {
        if let (Some(rate), Some(len)) = (byte_rate, data_len) {
            info.duration_ms = Some(mul_div(len, 1000, u64::from(rate)));
        }
    }
    Some(info)
}

/// FLAC (`fLaC` then a STREAMINFO block, which must come first): sample rate (20 bits),
/// channels (3 bits + 1) and total samples (36 bits, 0 = unknown) → duration.
pub fn flac_info(head: &[u8]) -> Option<AudioInfo> {
    if head.get(0..4)? != b"fLaC" {
        return None;
    }
    // Block header: 1 bit last-block flag, 7 bits type (0 = STREAMINFO), 24 bits length.
    let header = *head.get(4)?;
    let len = u32_be(head, 4)? & 0x00FF_FFFF;
    if header & 0x7F != 0 || len < 34 {
        return None;
    }
    let si = head.get(8..8 + 34)?;
    // Bytes 10..18 of STREAMINFO: 20 bits rate, 3 bits channels-1, 5 bits bps-1, 36 bits
    // total samples.
    let packed = u64::from_be_bytes(si.get(10..18)?.try_into().ok()?);
    let rate = (packed >> 44) as u32;
    let channels = ((packed >> 41) & 0x7) as u16 + 1;
    let total = packed & 0xF_FFFF_FFFF;
    let sample_rate = (rate > 0).then_some(rate);
    Some(AudioInfo {
        duration_ms: sample_rate
            .filter(|_| total > 0)
            .map(|r| mul_div(total, 1000, u64::from(r))),
        sample_rate,
        channels: Some(channels),
    })
}

/// MPEG audio (MP3 and layers I/II): the frame header at the start of `head` (zero padding
/// skipped) gives the sample rate and channels; the duration comes only from a Xing/Info or
/// VBRI frame count (no guess from the file size and bitrate).
pub fn mp3_info(head: &[u8]) -> Option<AudioInfo> {
    let start = head.iter().take(4096).position(|b| *b != 0)?;
    let frame = head.get(start..)?;
    let h = u32_be(frame, 0)?;
    if h >> 21 != 0x7FF {
        return None;
    }
    let version = (h >> 19) & 0x3; // 0 = MPEG 2.5, 1 reserved, 2 = MPEG 2, 3 = MPEG 1
    let layer = (h >> 17) & 0x3; // 1 = III, 2 = II, 3 = I, 0 reserved
    let bitrate_index = (h >> 12) & 0xF;
    let rate_index = (h >> 10) & 0x3;
    let mono = (h >> 6) & 0x3 == 3;
    if version == 1 || layer == 0 || bitrate_index == 0xF || rate_index == 3 {
        return None;
    }
    let base = [44_100u32, 48_000, 32_000][rate_index as usize];
    let sample_rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    let samples_per_frame: u64 = match (layer, version) {
        (3, _) => 384,
        (2, _) | (1, 3) => 1152,
        _ => 576,
    };
    // Xing/Info sits after the side information; VBRI at a fixed offset of 36.
    let side = match (version == 3, mono) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    };
    let frames = match (frame.get(4 + side..8 + side), frame.get(36..40)) {
        (Some(b"Xing" | b"Info"), _) => {
            let flags = u32_be(frame, 8 + side)?;
            (flags & 1 == 1).then(|| u32_be(frame, 12 + side)).flatten()
        }
        (_, Some(b"VBRI")) => u32_be(frame, 36 + 14),
        _ => None,
    };
    Some(AudioInfo {
        duration_ms: frames.filter(|f| *f > 0).map(|f| {
            mul_div(
                u64::from(f) * samples_per_frame,
                1000,
                u64::from(sample_rate),
            )
        }),
        sample_rate: Some(sample_rate),
        channels: Some(if mono { 1 } else { 2 }),
    })
}

/// The bytes after an ID3v2 tag (`ID3`, version, flags, 28-bit syncsafe size, optional
/// 10-byte footer), or `head` itself when there is no tag or it runs past `head`.
pub fn skip_id3v2(head: &[u8]) -> &[u8] {
    let tag_len = (|| {
        if head.get(0..3)? != b"ID3" {
            return None;
        }
        let size = head.get(6..10)?.iter().try_fold(0usize, |acc, b| {
            (b & 0x80 == 0).then_some((acc << 7) | usize::from(*b))
        })?;
        let footer = if head.get(5)? & 0x10 != 0 { 10 } else { 0 };
        Some(10 + size + footer)
    })();
    tag_len.and_then(|n| head.get(n..)).unwrap_or(head)
}

/// `a * b / c` without overflow (128-bit intermediate), saturating at `u64::MAX`.
fn mul_div(a: u64, b: u64, c: u64) -> u64 {
    if c == 0 {
        return 0;
    }
    u64::try_from(u128::from(a) * u128::from(b) / u128::from(c)).unwrap_or(u64::MAX)
}

/// Streaming test for "this file is text": valid UTF-8 throughout, and no C0 control
/// bytes other than tab, line feed, vertical tab, form feed, carriage return and escape
/// (so a file of NUL bytes, which is valid UTF-8, is still binary). Feed the file in any
/// chunking; a character split across chunks is carried over.
#[derive(Debug, Clone)]
pub struct TextCheck {
    carry: Vec<u8>,
    ok: bool,
}

impl Default for TextCheck {
    fn default() -> Self {
        TextCheck {
            carry: Vec::new(),
            ok: true,
        }
    }
}

impl TextCheck {
    pub fn feed(&mut self, mut data: &[u8]) {
        if !self.ok {
            return;
        }
        // C0 bytes never occur inside a multi-byte UTF-8 sequence, so check them bytewise.
        if data
            .iter()
            .any(|b| *b < 0x20 && !matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0x1B))
        {
            self.ok = false;
            return;
        }
        while !self.carry.is_empty() {
            let Some((first, rest)) = data.split_first() else {
                return;
            };
            self.carry.push(*first);
            data = rest;
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_some() || self.carry.len() >= 4 => {
                    self.ok = false;
                    return;
                }
                Err(_) => {}
            }
        }
        if let Err(e) = std::str::from_utf8(data) {
            if e.error_len().is_some() {
                self.ok = false;
            } else {
                self.carry = data[e.valid_up_to()..].to_vec();
            }
        }
    }

    /// Whether everything fed so far is text, with no character left incomplete.
    pub fn is_text(&self) -> bool {
        self.ok && self.carry.is_empty()
    }
}
