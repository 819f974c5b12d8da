//! The fixed-width text SQLite stores dates and timestamps as (`YYYY-MM-DD`,
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ`), formatted without allocating, for years 1 to 9999 (the
//! only ones the SQLite rules admit). Fixed width makes the text sort chronologically;
//! reading back parses the same forms.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

pub(super) const DATE_LEN: usize = 10;
pub(super) const TIMESTAMP_LEN: usize = 27;

fn put_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Two decimal digits of `value` (below 100).
fn put_two(out: &mut [u8], value: u32) {
    if let [tens, ones] = out {
        *tens = b'0' + (value / 10 % 10) as u8;
        *ones = b'0' + (value % 10) as u8;
    }
}

/// Writes `d` into the first [`DATE_LEN`] bytes of `out` (which has at least that many).
pub(super) fn put_date(out: &mut [u8], d: NaiveDate) {
    if out.len() < DATE_LEN {
        return;
    }
    let year = d.year().clamp(0, 9999) as u32;
    put_two(&mut out[0..2], year / 100);
    put_two(&mut out[2..4], year % 100);
    out[4] = b'-';
    put_two(&mut out[5..7], d.month());
    out[7] = b'-';
    put_two(&mut out[8..10], d.day());
}

/// Writes `t` into the first [`TIMESTAMP_LEN`] bytes of `out` (which has at least that
/// many).
pub(super) fn put_timestamp(out: &mut [u8], t: &DateTime<Utc>) {
    if out.len() < TIMESTAMP_LEN {
        return;
    }
    // The UTC fields directly: `date_naive()` and `time()` add the (zero) offset first.
    let utc = t.naive_utc();
    put_date(&mut out[0..10], utc.date());
    let time = utc.time();
    out[10] = b'T';
    put_two(&mut out[11..13], time.hour());
    out[13] = b':';
    put_two(&mut out[14..16], time.minute());
    out[16] = b':';
    // chrono keeps a leap second as nanoseconds past 10^9 and prints it as second 60.
    let leap = u32::from(time.nanosecond() >= 1_000_000_000);
    put_two(&mut out[17..19], time.second() + leap);
    out[19] = b'.';
    put_digits(&mut out[20..26], (time.nanosecond() % 1_000_000_000) / 1000);
    out[26] = b'Z';
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_text_matches_the_store_forms() {
        let mut date = [0u8; DATE_LEN];
        let mut timestamp = [0u8; TIMESTAMP_LEN];
        for (y, m, d) in [(1, 1, 1), (999, 12, 31), (2024, 2, 29), (9999, 12, 31)] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            put_date(&mut date, day);
            assert_eq!(date, day.format("%Y-%m-%d").to_string().as_bytes());
            for (h, mi, s, micro) in [
                (0, 0, 0, 0),
                (23, 59, 59, 999_999),
                (7, 5, 3, 120),
                (23, 59, 59, 1_999_999),
            ] {
                let t = day.and_hms_micro_opt(h, mi, s, micro).unwrap().and_utc();
                put_timestamp(&mut timestamp, &t);
                let reference = t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                assert_eq!(timestamp, reference.as_bytes());
            }
        }
    }

    #[test]
    fn short_buffers_are_left_alone() {
        let day = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
        let mut short = [b'x'; DATE_LEN - 1];
        put_date(&mut short, day);
        assert_eq!(short, [b'x'; DATE_LEN - 1]);
        let mut short = [b'x'; TIMESTAMP_LEN - 1];
        put_timestamp(&mut short, &day.and_hms_opt(1, 2, 3).unwrap().and_utc());
        assert_eq!(short, [b'x'; TIMESTAMP_LEN - 1]);
    }
}
