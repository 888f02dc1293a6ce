//! Unit tests of `crates/weir-core/src/time/assigner.rs`.

use super::*;

fn brute_windows(w: &Window, t: i64) -> Vec<(i64, i64)> {
    // every candidate window over a generous range, filtered by containment
    let mut v = Vec::new();
    for s in (t - 100_000)..=t {
        let ok = match *w {
            Window::Tumbling { size_ms, offset_ms } => {
                (s - offset_ms).rem_euclid(size_ms) == 0 && t < s + size_ms
            }
            Window::Sliding {
                size_ms,
                slide_ms,
                offset_ms,
            } => (s - offset_ms).rem_euclid(slide_ms) == 0 && t < s + size_ms,
            Window::Cumulative { .. } | Window::Session { .. } => false,
        };
        if ok {
            let size = match *w {
                Window::Tumbling { size_ms, .. } | Window::Sliding { size_ms, .. } => size_ms,
                _ => 0,
            };
            v.push((s, s + size));
        }
    }
    v.sort_by_key(|&(s, e)| (e, s));
    v
}

#[test]
fn pane_windows_match_brute_force_containment() {
    let cases = [
        Window::tumbling(Duration::from_millis(1000)),
        Window::sliding(Duration::from_millis(3000), Duration::from_millis(1000)),
        Window::sliding(Duration::from_millis(1000), Duration::from_millis(400)),
        Window::sliding(Duration::from_millis(1000), Duration::from_millis(400))
            .with_offset(Duration::from_millis(100)),
    ];
    for w in cases {
        w.validate().unwrap();
        for t in [-2500i64, -1, 0, 1, 999, 1000, 4321, 99_999] {
            // a row's windows = windows of its pane
            assert_eq!(
                w.windows_of_pane(w.pane_of(t)),
                brute_windows(&w, t),
                "{w:?} t={t}"
            );
            let p = w.pane_of(t);
            assert_eq!(
                Some(w.last_window_of_pane(p)),
                w.windows_of_pane(p).last().copied()
            );
        }
    }
}

/// Every window (start, end) of `t` in 128-bit arithmetic, by containment.
fn wide_windows(w: &Window, t: i64) -> Vec<(i128, i128)> {
    let t = i128::from(t);
    let (period, len, off, grow) = match *w {
        Window::Tumbling { size_ms, offset_ms } => (size_ms, size_ms, offset_ms, None),
        Window::Sliding {
            size_ms,
            slide_ms,
            offset_ms,
        } => (slide_ms, size_ms, offset_ms, None),
        Window::Cumulative {
            step_ms,
            max_size_ms,
            offset_ms,
        } => (max_size_ms, max_size_ms, offset_ms, Some(step_ms)),
        Window::Session { gap_ms } => return vec![(t, t + i128::from(gap_ms))],
    };
    let (p, l) = (i128::from(period), i128::from(len));
    let mut s = t - (t - i128::from(off)).rem_euclid(p);
    let mut v = Vec::new();
    while s + l > t {
        match grow {
            None => v.push((s, s + l)),
            Some(step) => {
                let step = i128::from(step);
                let mut e = s + step;
                while e <= s + l {
                    if e > t {
                        v.push((s, e));
                    }
                    e += step;
                }
            }
        }
        s -= p;
    }
    v
}

#[test]
fn valid_times_are_exactly_those_whose_windows_fit_in_i64() {
    let fits = |w: &Window, t: i64| {
        wide_windows(w, t)
            .iter()
            .all(|&(s, e)| s >= i128::from(i64::MIN) && e <= i128::from(i64::MAX))
    };
    let ms = Duration::from_millis;
    for w in [
        Window::tumbling(ms(1000)),
        Window::tumbling(ms(1000)).with_offset(ms(250)),
        Window::tumbling(ms(7)),
        Window::sliding(ms(3000), ms(1000)),
        Window::sliding(ms(1000), ms(400)).with_offset(ms(100)),
        Window::cumulative(ms(500), ms(2000)).with_offset(ms(30)),
        Window::session(ms(700)),
    ] {
        let (lo, hi) = w.valid_times();
        assert!(lo < hi, "{w:?}");
        for t in [lo, lo + 1, hi - 1, hi] {
            assert!(fits(&w, t), "{w:?} {t} should fit");
            // and the operators' arithmetic is exact there
            if !w.is_session() {
                let got: Vec<(i128, i128)> = w
                    .windows_of_pane(w.pane_of(t))
                    .into_iter()
                    .map(|(s, e)| (i128::from(s), i128::from(e)))
                    .collect();
                let mut want = wide_windows(&w, t);
                want.sort_by_key(|&(s, e)| (e, s));
                assert_eq!(got, want, "{w:?} t={t}");
            }
        }
        if lo > i64::MIN {
            assert!(!fits(&w, lo - 1), "{w:?} {} should not fit", lo - 1);
        }
        assert!(!fits(&w, hi + 1), "{w:?} {} should not fit", hi + 1);
        assert!(w.check_times(&[lo, 0, hi], "t", "op").is_ok());
        let err = w.check_times(&[0, hi + 1], "t", "op").unwrap_err();
        assert!(err.to_string().contains(&(hi + 1).to_string()), "{err}");
    }
    let w = Window::tumbling(ms(1000));
    assert_eq!(w.valid_times().0, i64::MIN + 808);
}

#[test]
fn the_first_window_of_a_time_is_the_first_of_its_pane() {
    let ms = Duration::from_millis;
    for w in [
        Window::tumbling(ms(1000)).with_offset(ms(250)),
        Window::sliding(ms(3000), ms(1000)),
        Window::sliding(ms(1000), ms(400)).with_offset(ms(100)),
        Window::cumulative(ms(500), ms(2000)).with_offset(ms(30)),
    ] {
        let (lo, hi) = w.valid_times();
        for t in [lo, lo + 1, -2500, -1, 0, 1, 999, 1000, 4321, hi - 1, hi] {
            let first = w.windows_of_pane(w.pane_of(t))[0];
            assert_eq!(
                w.first_window_max_timestamp(t),
                Some(first.1 - 1),
                "{w:?} t={t}"
            );
        }
        if lo > i64::MIN {
            assert_eq!(w.first_window_max_timestamp(lo - 1), None);
        }
    }
    assert_eq!(Window::session(ms(5)).first_window_max_timestamp(0), None);
}

#[test]
fn cumulative_windows_grow_by_step_within_max() {
    let w = Window::cumulative(Duration::from_secs(1), Duration::from_secs(3));
    assert_eq!(w.pane_of(4500), 4000);
    assert_eq!(w.windows_of_pane(4000), vec![(3000, 5000), (3000, 6000)]);
    assert_eq!(
        w.windows_of_pane(3000),
        vec![(3000, 4000), (3000, 5000), (3000, 6000)]
    );
    assert_eq!(w.windows_of_pane(5000), vec![(3000, 6000)]);
    for p in [3000, 4000, 5000, i64::MAX - 10, i64::MIN] {
        let p = w.pane_of(p);
        assert_eq!(
            Some(w.last_window_of_pane(p)),
            w.windows_of_pane(p).last().copied()
        );
    }
    assert!(
        Window::cumulative(Duration::from_secs(2), Duration::from_secs(3))
            .validate()
            .is_err()
    );
    assert!(
        Window::sliding(Duration::from_secs(1), Duration::from_secs(2))
            .validate()
            .is_err()
    );
    assert_eq!(
        Window::sliding(Duration::from_secs(10), Duration::from_secs(4)).pane_ms(),
        2000
    );
}
