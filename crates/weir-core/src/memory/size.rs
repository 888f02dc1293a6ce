//! Human-written byte sizes: parsing `--memory 256MiB` and formatting
//! byte counts for reports. May use only [`crate::error`].

use crate::error::{Error, Result};

/// The size forms [`parse_size`] accepts, for error messages.
const ACCEPTED_SIZES: &str = "a byte count such as `1048576`, a number with a unit \
     (B, KB, MB, GB, TB = powers of 1000; KiB, MiB, GiB, TiB = powers of 1024; \
     case-insensitive, e.g. `256MiB`, `1.5 GiB`, `512kb`), or `unlimited`";

/// Parses a human-written byte size for `option` (named in the error).
///
/// Accepts `"1048576"`, `"256MiB"`, `"1GiB"`, `"512kb"`, `"2 GB"`, `"1.5GiB"`
/// and `"unlimited"` (which is `usize::MAX`). KiB/MiB/GiB/TiB are powers of
/// 1024, B/KB/MB/GB/TB powers of 1000; units are case-insensitive. Fractions
/// are rounded down to whole bytes.
///
/// # Errors
///
/// [`Error::InvalidOption`] naming the text and the accepted forms.
pub fn parse_size(option: &str, text: &str) -> Result<usize> {
    let invalid = |why: &str| {
        Error::option(
            option,
            format!("`{text}` is not a size ({why}); expected {ACCEPTED_SIZES}"),
        )
    };
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    if lower == "unlimited" {
        return Ok(usize::MAX);
    }
    let number_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(number_end);
    let multiplier: u128 = match unit.trim_start() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(invalid("unknown unit")),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if whole.is_empty() && fraction.is_empty() {
        return Err(invalid("no number"));
    }
    if fraction.contains('.') {
        return Err(invalid("more than one decimal point"));
    }
    let too_large = || invalid("too large");
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole_value.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        // Only the digits that can matter for a whole byte count: 1 TiB < 10^13.
        let digits = &fraction[..fraction.len().min(18)];
        let numerator: u128 = digits.parse().map_err(|_| too_large())?;
        let denominator = 10u128.pow(digits.len() as u32);
        bytes += numerator * multiplier / denominator;
    }
    usize::try_from(bytes).map_err(|_| too_large())
}

/// Formats a byte count for reports: `"512 B"`, `"1.5 MiB"`, `"2.0 GiB"`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_size_table() {
        let ok = [
            ("1048576", 1_048_576),
            ("0", 0),
            ("256MiB", 256 << 20),
            ("1GiB", 1 << 30),
            ("1gib", 1 << 30),
            ("512kb", 512_000),
            ("512KiB", 512 << 10),
            ("2 GB", 2_000_000_000),
            ("  3 mb ", 3_000_000),
            ("1.5GiB", 3 << 29),
            ("1TiB", 1 << 40),
            ("7B", 7),
            ("unlimited", usize::MAX),
            ("UNLIMITED", usize::MAX),
        ];
        for (text, want) in ok {
            assert_eq!(parse_size("memory", text).unwrap(), want, "{text}");
        }
        for text in [
            "",
            "MiB",
            "12 parsecs",
            "-5",
            "1..5GB",
            "99999999999999999999999TiB",
        ] {
            let err = parse_size("memory", text).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::InvalidOption { .. }), "{text}: {msg}");
            assert!(msg.contains("option `memory`"), "{msg}");
            assert!(msg.contains(&format!("`{text}`")), "{msg}");
            assert!(msg.contains("MiB") && msg.contains("unlimited"), "{msg}");
        }
    }

    #[test]
    fn format_bytes_table() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(3 << 19), "1.5 MiB");
        assert_eq!(format_bytes(5 << 30), "5.0 GiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }
}
