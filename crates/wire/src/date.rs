//! Calendar dates and UTC timestamps, without a time-zone database: postkey works in UTC only.

use core::fmt;

use minicbor::{Decode, Encode};

use crate::WireError;

/// A calendar date written `YYYYMMDD` (a mailing date, a meter registration date).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// A real calendar date between years 2000 and 9999.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, WireError> {
        let bad = |reason| WireError::InvalidField { field: "date", reason };
        if !(2000..=9999).contains(&year) {
            return Err(bad("year must be 2000 to 9999"));
        }
        if !(1..=12).contains(&month) {
            return Err(bad("month must be 01 to 12"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(bad("no such day in that month"));
        }
        Ok(Self { year, month, day })
    }

    /// Parses `YYYYMMDD`.
    pub fn parse(s: &str) -> Result<Self, WireError> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WireError::InvalidField { field: "date", reason: "must be YYYYMMDD" });
        }
        let n = |r: core::ops::Range<usize>| s.get(r).and_then(|x| x.parse().ok()).unwrap_or(0);
        Self::new(n(0..4), n(4..6) as u8, n(6..8) as u8)
    }

    /// The month this date falls in: the token-key period.
    pub fn period(&self) -> Period {
        Period { year: self.year, month: self.month }
    }

    /// The year.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month.
    pub fn day(&self) -> u8 {
        self.day
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Debug for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Date({self})")
    }
}

crate::codec::cbor_as_text!(Date, "invalid date");

/// A month written `YYYYMM`: the period of a token key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    year: u16,
    month: u8,
}

impl Period {
    /// Parses `YYYYMM`.
    pub fn parse(s: &str) -> Result<Self, WireError> {
        if s.len() != 6 {
            return Err(WireError::InvalidField { field: "period", reason: "must be YYYYMM" });
        }
        Date::parse(&format!("{s}01"))
            .map(|d| d.period())
            .map_err(|_| WireError::InvalidField { field: "period", reason: "must be YYYYMM" })
    }
}

impl Period {
    /// Months since January of year 0: consecutive months have consecutive indices.
    pub fn index(self) -> u32 {
        u32::from(self.year) * 12 + u32::from(self.month) - 1
    }
}

crate::codec::cbor_as_text!(Period, "invalid period");

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}", self.year, self.month)
    }
}

impl fmt::Debug for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Period({self})")
    }
}

fn is_leap(y: u16) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// How far a time from another clock (the PSR's, a box's, a meter's calendar) may lie on the
/// wrong side of a KMS time and still count as in order: five minutes, in microseconds. KMS
/// times are compared exactly (protocol §6.6).
pub const CLOCK_SKEW_TOLERANCE_MICROS: u64 = 5 * 60 * 1_000_000;

/// A UTC instant in microseconds since 1970-01-01T00:00:00Z. Boxes are handed the time by their
/// runtime; they never read a clock themselves.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
#[cbor(transparent)]
pub struct Timestamp(#[n(0)] u64);

impl Timestamp {
    /// The instant `micros` microseconds after the Unix epoch.
    pub fn from_unix_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> u64 {
        self.0
    }

    /// The UTC calendar day of this instant.
    pub fn utc_date(self) -> (i64, u8, u8) {
        civil_from_days((self.0 / 86_400_000_000) as i64)
    }

    /// RFC 3339 with microseconds, e.g. `2026-11-29T18:37:14.000000Z`.
    pub fn to_rfc3339(self) -> String {
        let (y, m, d) = self.utc_date();
        let secs_of_day = (self.0 / 1_000_000) % 86_400;
        let micros = self.0 % 1_000_000;
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_real_calendar_days() {
        assert_eq!(Date::parse("20261129").unwrap().to_string(), "20261129");
        assert!(Date::parse("20240229").is_ok());
        assert!(Date::parse("20250229").is_err());
        assert!(Date::parse("21000229").is_err());
        assert!(Date::parse("20000229").is_ok());
        for bad in ["2026113", "202611290", "20261131", "20261300", "2026-11-2", "19991231"] {
            assert!(Date::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Date::parse("20261231").unwrap().period().to_string(), "202612");
        assert_eq!(Period::parse("202701").unwrap().to_string(), "202701");
        assert!(Period::parse("202713").is_err());
    }

    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(Timestamp::from_unix_micros(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        // 2026-11-29T18:37:14Z
        let t = Timestamp::from_unix_micros(1_795_977_434_000_001);
        assert_eq!(t.to_rfc3339(), "2026-11-29T18:37:14.000001Z");
        let t = Timestamp::from_unix_micros(951_782_400_000_000); // 2000-02-29
        assert_eq!(t.utc_date(), (2000, 2, 29));
    }
}
