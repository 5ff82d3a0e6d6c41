//! Clock formats of nginx's logs, in UTC (switchyard does not read the
//! system time zone; containers run in UTC and so does our output).

use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day 1..=31.
    pub day: u32,
    /// Hour 0..=23.
    pub hour: u32,
    /// Minute 0..=59.
    pub minute: u32,
    /// Second 0..=59.
    pub second: u32,
    /// Milliseconds 0..=999.
    pub millis: u32,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Civil {
    /// Breaks `time` down (times before 1970 clamp to the epoch).
    pub fn from_system(time: SystemTime) -> Civil {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        Civil::from_unix_millis(since.as_millis() as i64)
    }

    /// The current time.
    pub fn now() -> Civil {
        Civil::from_system(SystemTime::now())
    }

    /// Breaks down milliseconds since the epoch (days-from-civil inverse,
    /// after Howard Hinnant's public-domain algorithm).
    pub fn from_unix_millis(ms: i64) -> Civil {
        let secs = ms.div_euclid(1000);
        let millis = ms.rem_euclid(1000) as u32;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            millis,
        }
    }

    fn month_name(&self) -> &'static str {
        MONTHS[(self.month.clamp(1, 12) - 1) as usize]
    }

    /// `$time_local`: `27/Dec/2020:17:31:50 +0000`.
    pub fn time_local(&self) -> String {
        format!(
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            self.day,
            self.month_name(),
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }

    /// `$time_iso8601`: `2020-12-27T17:31:50+00:00`.
    pub fn iso8601(&self) -> String {
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// The error log's stamp: `2020/12/27 17:31:50`.
    pub fn error_log(&self) -> String {
        format!(
            "{}/{:02}/{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Werkzeug's stamp, used by the echo server: `27/Dec/2020 17:31:50`.
    pub fn werkzeug(&self) -> String {
        format!(
            "{:02}/{}/{} {:02}:{:02}:{:02}",
            self.day,
            self.month_name(),
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instant() {
        // 2020-12-27T17:31:50Z, the seed's first request.
        let c = Civil::from_unix_millis(1_609_090_310_123);
        assert_eq!(c.time_local(), "27/Dec/2020:17:31:50 +0000");
        assert_eq!(c.iso8601(), "2020-12-27T17:31:50+00:00");
        assert_eq!(c.error_log(), "2020/12/27 17:31:50");
        assert_eq!(c.werkzeug(), "27/Dec/2020 17:31:50");
        assert_eq!(c.millis, 123);
    }

    #[test]
    fn leap_day() {
        let c = Civil::from_unix_millis(1_709_164_800_000); // 2024-02-29
        assert_eq!((c.year, c.month, c.day), (2024, 2, 29));
    }
}
