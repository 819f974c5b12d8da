//! Generated hospital visits for the demo, the query benchmark and the tests: realistic
//! enough to make grouped answers interesting, and deterministic per (member, seed), so a
//! plaintext reference can be computed from the same files.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The header of a visits CSV.
pub const HEADER: &str = "patient,age,region,ward,diagnosis,amount,admitted";

pub const REGIONS: [&str; 5] = ["north", "south", "east", "west", "central"];
const WARDS: [&str; 4] = ["cardiology", "oncology", "maternity", "orthopaedics"];
const DIAGNOSES: [&str; 6] = ["I10", "E11", "J45", "M54", "C50", "O80"];

/// Writes `rows` visits of member number `member` to `path`. With `rare_ward`, the member
/// also has two visits in the `burns` ward, a group too small to be revealed.
pub fn write_csv(
    path: &Path,
    member: usize,
    rows: usize,
    seed: u64,
    rare_ward: bool,
) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut rng =
        StdRng::seed_from_u64(seed ^ (member as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    writeln!(out, "{HEADER}")?;
    for p in 0..rows {
        // Members differ: each leans towards its own regions and price level.
        let region = if rng.gen_bool(0.5) {
            REGIONS[member % REGIONS.len()]
        } else {
            REGIONS[rng.gen_range(0..REGIONS.len())]
        };
        let age: u32 = rng.gen_range(18..95);
        let ward = WARDS[rng.gen_range(0..WARDS.len())];
        let diagnosis = DIAGNOSES[rng.gen_range(0..DIAGNOSES.len())];
        let cents: u64 = rng.gen_range(5_000..(400_000 + 50_000 * member as u64));
        let month: u32 = rng.gen_range(1..13);
        let day: u32 = rng.gen_range(1..29);
        writeln!(
            out,
            "h{member}-{p},{age},{region},{ward},{diagnosis},{}.{:02},2024-{month:02}-{day:02}",
            cents / 100,
            cents % 100
        )?;
    }
    if rare_ward {
        for p in 0..2 {
            writeln!(
                out,
                "h{member}-burns-{p},{},north,burns,T30,1234.50,2024-06-0{}",
                40 + p,
                p + 1
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
