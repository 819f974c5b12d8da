//! The Csv reader alone, on any bytes: every record is read or rejected, or the file is
//! refused with an error, never a panic. (`data_inputs` runs the whole pipeline over all
//! formats; a target per reader lets libFuzzer's coverage guidance focus on one parser.)
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use consort_data::formats::{open_reader, Format, Tally};
use libfuzzer_sys::fuzz_target;

/// One scratch file for the whole run: the readers take a path.
fn scratch() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("input");
        Some((dir, path))
    })
    .as_ref()
    .map(|(_, path)| path)
}

/// Records read before stopping (inputs are small; this bounds a reader that loops).
const MAX_ITEMS: usize = 100_000;

fuzz_target!(|data: &[u8]| {
    let Some(path) = scratch() else { return };
    if std::fs::write(path, data).is_err() {
        return;
    }
    let Ok(mut reader) = open_reader(path, Format::Csv, Tally::default()) else {
        return;
    };
    let _ = reader.columns();
    for _ in 0..MAX_ITEMS {
        match reader.next_item() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
