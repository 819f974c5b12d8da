//! Any bytes handed to `dataset add` as CSV, JSON, NDJSON or Parquet, and any recipe file,
//! must ingest or fail with an error — never panic.
#![no_main]

use consort_data::formats::Format;
use consort_data::pipeline::{ingest, IngestOptions};
use consort_data::recipe::Recipe;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Recipe::parse(data);
    let Ok(dir) = tempfile::tempdir() else { return };
    let input = dir.path().join("input");
    if std::fs::write(&input, data).is_err() {
        return;
    }
    for format in [Format::Csv, Format::Json, Format::Ndjson, Format::Parquet] {
        let options = IngestOptions {
            format: Some(format),
            reject_path: dir.path().join("rejects.ndjson"),
            ..Default::default()
        };
        let _ = ingest(&[input.clone()], &options, &mut |_rows| Ok(()), &mut |_| {});
    }
});
