//! An order-independent sum of `f64` values ([`ExactSum`]): the float sums
//! and averages keep one, so a window's result is the same bits whichever
//! order its rows arrive in, however they were split between subtasks,
//! panes, spill runs and checkpoints.
//!
//! May use nothing but `std`.

/// Marks a sum that left exact mode (`lo` holds the `f64` bits).
const FLOAT: i32 = i32::MIN;

/// Magnitudes are kept below `2^HEADROOM` so two of them add without overflow.
const HEADROOM: u32 = 126;

/// A sum of `f64` values kept exactly: a 128-bit integer times a power of two.
///
/// Its [`value`](Self::value) is the exact sum rounded once, so it depends
/// only on the multiset of values added, never on their order or grouping.
///
/// ```text
///  x = ±m · 2^e  (m odd, at most 53 bits)          sum = acc · 2^lsb
///  empty (acc = 0)  → acc = ±m, lsb = e
///  e < lsb          → acc <<= lsb - e, lsb = e      (finer bits come in)
///  acc += ±m << (e - lsb)                           (checked, below 2^126)
///  value            → round(acc) · 2^lsb            (one rounding: exact sum, rounded)
///  does not fit     → a plain f64 sum from then on  (order-dependent again)
/// ```
/// Exact mode holds any values whose finest bit and largest partial sum
/// lie within 2^126 of each other: sensor readings, prices and the like
/// (values in `[0.01, 10^9]`, up to 2^40 of them, need about 109 bits).
/// Infinities, NaN, or a range wider than that fall back to `f64`
/// addition, which is what the sum was before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExactSum {
    lo: u64,
    hi: i64,
    /// The exponent of `acc`'s least bit, or [`FLOAT`].
    lsb: i32,
}

impl ExactSum {
    /// The empty sum (0).
    pub const ZERO: ExactSum = ExactSum {
        lo: 0,
        hi: 0,
        lsb: 0,
    };

    fn acc(&self) -> i128 {
        (i128::from(self.hi) << 64) | i128::from(self.lo)
    }

    fn set_acc(&mut self, acc: i128) {
        self.lo = acc as u64;
        self.hi = (acc >> 64) as i64;
    }

    fn is_float(&self) -> bool {
        self.lsb == FLOAT
    }

    fn set_float(&mut self, v: f64) {
        *self = ExactSum {
            lo: v.to_bits(),
            hi: 0,
            lsb: FLOAT,
        };
    }

    /// True while the sum is exact (no fallback happened).
    pub fn is_exact(&self) -> bool {
        !self.is_float()
    }

    /// Adds `x`.
    #[inline(always)]
    pub fn add(&mut self, x: f64) {
        let bits = x.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32;
        if self.is_float() || biased == 0x7ff {
            // after a fallback, or infinite / NaN
            self.set_float(self.value() + x);
            return;
        }
        let frac = bits & ((1u64 << 52) - 1);
        let (mut m, mut e) = if biased == 0 {
            if frac == 0 {
                return; // ±0
            }
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), biased - 1075)
        };
        let tz = m.trailing_zeros();
        m >>= tz;
        e += tz as i32;
        let term = if bits >> 63 == 1 {
            -i128::from(m)
        } else {
            i128::from(m)
        };
        // the common case: no finer bits than the sum has, a short shift
        // (|term << d| < 2^126 and |acc| < 2^126: the sum cannot overflow)
        let acc = self.acc();
        if acc != 0 && e >= self.lsb && e - self.lsb <= 72 {
            let sum = acc + (term << (e - self.lsb));
            if sum.unsigned_abs() < 1u128 << HEADROOM {
                self.set_acc(sum);
                return;
            }
        }
        if !self.add_exact(term, e) {
            self.set_float(self.value() + x);
        }
    }

    /// Adds the other sum (partial sums of a split group).
    pub fn merge(&mut self, other: &ExactSum) {
        if other.is_float() || self.is_float() || !self.add_exact(other.acc(), other.lsb) {
            self.set_float(self.value() + other.value());
        }
    }

    /// Adds `term · 2^e` exactly; false (and the sum unchanged) if it does not fit.
    #[inline]
    fn add_exact(&mut self, term: i128, e: i32) -> bool {
        if term == 0 {
            return true;
        }
        let mut acc = self.acc();
        if acc == 0 {
            if !fits(term, 0) {
                return false;
            }
            self.set_acc(term);
            self.lsb = e;
            return true;
        }
        let mut lsb = self.lsb;
        if e < lsb {
            let d = (lsb - e) as u32;
            if !fits(acc, d) {
                return false;
            }
            acc <<= d;
            lsb = e;
        }
        let d = (e - lsb) as u32;
        if !fits(term, d) {
            return false;
        }
        let sum = acc + (term << d);
        if !fits(sum, 0) {
            return false;
        }
        self.set_acc(sum);
        self.lsb = lsb;
        true
    }

    /// The sum, rounded once to the nearest `f64`.
    pub fn value(&self) -> f64 {
        if self.is_float() {
            return f64::from_bits(self.lo);
        }
        let acc = self.acc();
        if acc == 0 {
            return 0.0;
        }
        // i128 → f64 rounds to nearest; scaling by a power of two is exact
        // unless the result leaves the normal range
        scale(acc as f64, self.lsb)
    }

    /// The parts a partial state stores: high and low 64 bits of the
    /// integer and the exponent of its least bit ([`FLOAT`] after a fallback).
    pub fn to_parts(&self) -> (i64, i64, i32) {
        (self.hi, self.lo as i64, self.lsb)
    }

    /// The sum stored as [`to_parts`](Self::to_parts).
    pub fn from_parts(hi: i64, lo: i64, lsb: i32) -> ExactSum {
        ExactSum {
            lo: lo as u64,
            hi,
            lsb,
        }
    }
}

/// True if `v << d` stays below `2^HEADROOM` in magnitude.
#[inline]
fn fits(v: i128, d: u32) -> bool {
    d < HEADROOM && v.unsigned_abs().leading_zeros() >= 128 - HEADROOM + d
}

/// `v · 2^e`, by at most three exact multiplications by powers of two.
fn scale(mut v: f64, mut e: i32) -> f64 {
    while e != 0 {
        let step = e.clamp(-1000, 1000);
        v *= f64::from_bits(((step + 1023) as u64) << 52);
        e -= step;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[f64]) -> ExactSum {
        let mut s = ExactSum::ZERO;
        for &v in values {
            s.add(v);
        }
        s
    }

    #[test]
    fn small_integers_and_halves_sum_exactly() {
        let s = sum(&[1.0, 2.5, -0.25, 3.0]);
        assert!(s.is_exact());
        assert_eq!(s.value(), 6.25);
    }

    #[test]
    fn the_sum_does_not_depend_on_order_where_f64_does() {
        let values = [0.1, 1e16, 0.2, -1e16, 0.3];
        // plain f64 addition: the order decides
        let f = |v: &[f64]| v.iter().fold(0.0, |a, b| a + b);
        let mut reversed = values;
        reversed.reverse();
        assert_ne!(f(&values), f(&reversed));
        // the exact sum of the doubles 0.1 + 0.2 + 0.3 (as stored), rounded once
        let want = sum(&[0.1, 0.2, 0.3]).value();
        assert_eq!(sum(&values).value(), want);
        assert_eq!(sum(&reversed).value(), want);
        // 0.1 + 0.2 + 0.3 as stored is 0.60000000000000000555…: nearest is 0.6
        assert_eq!(want, 0.6);
        assert_eq!(f(&[0.1, 0.2, 0.3]), 0.6000000000000001);
    }

    proptest::proptest! {
        /// Oracle: multiples of 2^-10 summed as integers are exact.
        #[test]
        fn dyadic_values_sum_to_the_integer_oracle(
            ns in proptest::collection::vec(-(1i64 << 40)..(1i64 << 40), 0..200),
        ) {
            let values: Vec<f64> = ns.iter().map(|&n| n as f64 / 1024.0).collect();
            let exact: i128 = ns.iter().map(|&n| i128::from(n)).sum();
            let want = exact as f64 / 1024.0;
            proptest::prop_assert_eq!(sum(&values).value(), want);
        }

        /// Any order and any split give the same bits.
        #[test]
        fn order_and_grouping_do_not_change_the_bits(
            values in proptest::collection::vec(-1e9f64..1e9, 1..200),
            seed in 0u64..1000,
            cut in 0usize..200,
        ) {
            let whole = sum(&values).value();
            let mut shuffled = values.clone();
            // a seeded Fisher-Yates
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            for i in (1..shuffled.len()).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (x >> 33) as usize % (i + 1));
            }
            let (a, b) = shuffled.split_at(cut.min(shuffled.len()));
            let mut merged = sum(b);
            merged.merge(&sum(a));
            proptest::prop_assert_eq!(merged.value().to_bits(), whole.to_bits());
        }
    }

    #[test]
    fn merged_partial_sums_equal_one_sum() {
        let values: Vec<f64> = (0..1000).map(|i| (i as f64) * 0.37 - 120.01).collect();
        let whole = sum(&values);
        let (a, b) = values.split_at(377);
        let mut merged = sum(b);
        merged.merge(&sum(a));
        assert_eq!(merged.value().to_bits(), whole.value().to_bits());
        let (hi, lo, lsb) = merged.to_parts();
        assert_eq!(ExactSum::from_parts(hi, lo, lsb).value(), whole.value());
    }

    #[test]
    fn a_range_too_wide_falls_back_to_f64_addition() {
        let s = sum(&[1e300, 1e-300]);
        assert!(!s.is_exact());
        assert_eq!(s.value(), 1e300);
        let s = sum(&[1.0, f64::INFINITY]);
        assert_eq!(s.value(), f64::INFINITY);
        let s = sum(&[1.0, f64::NAN, 2.0]);
        assert!(s.value().is_nan());
    }

    #[test]
    fn subnormal_and_huge_values_scale_back_exactly() {
        let tiny = f64::from_bits(1); // 2^-1074
        assert_eq!(sum(&[tiny, tiny]).value(), 2.0 * tiny);
        assert_eq!(sum(&[1e308, -1e308, 5.0]).value(), 5.0);
        assert_eq!(sum(&[f64::MAX]).value(), f64::MAX);
    }

    #[test]
    fn cancelling_to_zero_starts_over() {
        let mut s = sum(&[1e-200, -1e-200]);
        assert_eq!(s.value(), 0.0);
        s.add(1e200);
        assert!(s.is_exact());
        assert_eq!(s.value(), 1e200);
    }
}
