//! Unit tests of the pool's policy and of reservations.

use super::*;

const MIB: usize = 1 << 20;

fn exhausted(err: Error) -> (String, usize, usize, usize, String) {
    match err {
        Error::ResourcesExhausted {
            consumer,
            requested,
            budget,
            suggested,
            message,
        } => (consumer, requested, budget, suggested, message),
        other => panic!("expected ResourcesExhausted, got {other:?}"),
    }
}

#[test]
fn one_spillable_consumer_gets_three_quarters_of_the_budget() {
    let pool = MemoryPool::new(1000);
    let mut a = MemoryReservation::spillable(&pool, "a");
    a.try_grow(750).unwrap();
    assert!(a.try_grow(1).is_err(), "the fixed quarter stays free");
    assert_eq!(pool.reserved(), 750);
    assert_eq!(pool.fair_share(), 750);
    // a fixed consumer has its quarter
    let mut f = MemoryReservation::fixed(&pool, "f");
    f.try_grow(250).unwrap();
    assert_eq!(pool.reserved(), 1000);
    assert!(f.try_grow(1).is_err());
}

#[test]
fn fair_shares_split_the_spillable_limit_among_consumers_holding_memory() {
    let pool = MemoryPool::new(1200); // spillable limit 900
    let mut a = MemoryReservation::spillable(&pool, "a");
    let mut b = MemoryReservation::spillable(&pool, "b");
    let mut c = MemoryReservation::spillable(&pool, "c");
    // alone, `a` may take the whole limit (greedy while nobody else asks)
    a.try_grow(800).unwrap();
    // `b` holds nothing: its fair share is 900 / 2 and it is granted within it,
    // though the spillable limit is passed, but never past the budget
    b.try_grow(100).unwrap();
    assert!(!b.must_yield());
    assert!(b.try_grow(350).is_err(), "past the budget");
    // what `b` keeps after spilling is granted within its share anyway
    b.try_grow_within_share(350).unwrap(); // 450: its share
    assert_eq!(pool.reserved(), 1250);
    assert!(b.try_grow_within_share(1).is_err(), "beyond its share");
    // `a` is over its share and the limit is reached: refused, and asked to
    // spill at its next sync although it asks for nothing
    assert!(a.try_grow(1).is_err());
    assert!(a.must_yield());
    a.shrink(500); // a spill
    assert!(!a.must_yield(), "300 is within its share");
    assert_eq!(pool.fair_share(), 450);
    // `c` arrives: shares are 300 each; it is granted within its share
    c.try_grow(300).unwrap();
    assert_eq!(pool.reserved(), 300 + 450 + 300);
    // `b` is over its new share and the limit is passed
    assert!(b.try_grow(1).is_err());
    b.shrink(450);
    // an idle consumer (holding nothing) does not count: two consumers now
    assert_eq!(pool.fair_share(), 450);
    c.try_grow(150).unwrap();
    assert_eq!(pool.reserved_by(ConsumerKind::Spillable), 750);
    drop((a, b, c));
    assert_eq!(pool.reserved(), 0);
}

#[test]
fn fixed_consumers_keep_their_guaranteed_quarter() {
    let pool = MemoryPool::new(1000);
    let mut f = MemoryReservation::fixed(&pool, "read back");
    f.try_grow(100).unwrap();
    let mut s = MemoryReservation::spillable(&pool, "window");
    // the spillable limit is the budget less max(fixed held, quarter)
    s.try_grow(750).unwrap();
    assert!(s.try_grow(1).is_err());
    // the fixed quarter is there for fixed consumers
    f.try_grow(150).unwrap();
    // fixed consumers may pass their quarter while the budget lasts
    s.shrink(300);
    f.try_grow(200).unwrap();
    assert_eq!(pool.reserved_by(ConsumerKind::Fixed), 450);
    // and the spillable limit shrinks accordingly: 1000 - 450
    assert!(s.try_grow(101).is_err());
    s.try_grow(100).unwrap();
    assert_eq!(pool.reserved(), 1000);
}

#[test]
fn the_fixed_quarter_is_granted_even_while_spillable_consumers_overshoot() {
    let pool = MemoryPool::new(1000);
    let mut a = MemoryReservation::spillable(&pool, "a");
    a.try_grow(700).unwrap();
    // `b` within its fair share (375) eats into the unused fixed quarter
    let mut b = MemoryReservation::spillable(&pool, "b");
    b.try_grow(300).unwrap();
    assert_eq!(pool.reserved(), 1000);
    // a fixed consumer still gets its quarter: the pool passes its budget
    // until `a` (over its share) spills at its next request
    let mut f = MemoryReservation::fixed(&pool, "f");
    f.try_grow(250).unwrap();
    assert_eq!(pool.reserved(), 1250);
    assert!(
        f.try_grow(1).is_err(),
        "beyond the quarter the budget counts"
    );
    assert!(a.try_grow(1).is_err());
}

#[test]
fn the_error_names_consumer_share_budget_and_a_budget_that_works() {
    let pool = MemoryPool::new(64 * MIB);
    let mut other = MemoryReservation::spillable(&pool, "window[0]");
    other.try_grow(20 * MIB).unwrap();
    let mut w = MemoryReservation::spillable(&pool, "window[1]");
    w.try_grow(24 * MIB).unwrap();
    let err = w.try_grow(8 * MIB).unwrap_err();
    assert!(err.is_resources_exhausted());
    let text = err.to_string();
    let (consumer, requested, budget, suggested, message) = exhausted(err);
    assert_eq!(consumer, "window[1]");
    assert_eq!((requested, budget), (8 * MIB, 64 * MIB));
    // 2 consumers × 32 MiB, plus the fixed quarter: 85.3 MiB, rounded up
    assert_eq!(suggested, 128 * MIB);
    for part in [
        "resources exhausted in window[1]",
        "spillable consumer asked for 8.0 MiB more on top of the 24.0 MiB it holds",
        "64.0 MiB budget",
        "its fair share is 24.0 MiB",
        "2 spillable consumers holding memory share 48.0 MiB",
        "the pool holds 44.0 MiB",
        "--memory 128MiB",
    ] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    assert!(message.starts_with("spillable consumer"), "{message}");

    let mut f = MemoryReservation::fixed(&pool, "alignment");
    let text = f.try_grow(30 * MIB).unwrap_err().to_string();
    for part in [
        "resources exhausted in alignment",
        "fixed consumer asked for 30.0 MiB",
        "guaranteed 16.0 MiB",
        // the fixed quarter must hold 30 MiB: 120 MiB, rounded up
        "--memory 128MiB",
    ] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    assert_eq!(f.size(), 0, "a refusal leaves no trace");
    assert_eq!(pool.reserved(), 44 * MIB);
}

#[test]
fn unopened_reservations_hold_nothing_and_say_why() {
    let mut r = MemoryReservation::unopened(ConsumerKind::Spillable);
    let err = r.try_grow(1).unwrap_err();
    assert!(err.to_string().contains("(not opened)"), "{err}");
    r.try_grow(0).unwrap();
}

#[test]
fn consumers_are_listed_largest_first_and_leave_when_dropped() {
    let pool = MemoryPool::new(1000);
    let mut a = MemoryReservation::spillable(&pool, "a");
    let mut b = MemoryReservation::fixed(&pool, "b");
    a.try_grow(10).unwrap();
    b.try_grow(30).unwrap();
    assert_eq!(
        pool.consumers(),
        vec![
            ("b".to_string(), ConsumerKind::Fixed, 30),
            ("a".to_string(), ConsumerKind::Spillable, 10)
        ]
    );
    drop(b);
    assert_eq!(pool.consumers().len(), 1);
}

#[test]
fn drop_returns_bytes_and_peak_is_kept() {
    let pool = MemoryPool::new(1000);
    {
        let mut a = MemoryReservation::spillable(&pool, "a");
        a.try_grow(400).unwrap();
        let mut b = MemoryReservation::fixed(&pool, "b");
        b.grow(300);
        assert_eq!(pool.reserved(), 700);
        b.shrink(100);
        assert_eq!(pool.reserved(), 600);
    }
    assert_eq!(pool.reserved(), 0);
    assert_eq!(pool.peak(), 700);
    assert!(pool.consumers().is_empty());
}

#[test]
fn grow_may_exceed_budget_and_is_counted() {
    let pool = MemoryPool::new(10);
    let mut a = MemoryReservation::fixed(&pool, "a");
    a.grow(25);
    assert_eq!(pool.reserved(), 25);
    assert_eq!(pool.peak(), 25);
    assert!(a.try_grow(1).is_err());
    assert_eq!(a.free(), 25);
    assert_eq!(pool.reserved(), 0);
    assert_eq!(a.free(), 0);
}

#[test]
fn refusals_of_huge_requests_do_not_wrap_around() {
    let pool = MemoryPool::unbounded();
    let mut c = MemoryReservation::fixed(&pool, "c");
    c.try_grow(10).unwrap();
    assert!(c.try_grow(usize::MAX).is_err());
    let mut s = MemoryReservation::spillable(&pool, "s");
    assert!(s.try_grow(usize::MAX).is_err());
    assert_eq!(pool.reserved(), 10);
}

#[test]
fn resize_and_split_keep_the_pool_total_and_the_kind() {
    let pool = MemoryPool::new(100);
    let mut a = MemoryReservation::fixed(&pool, "a");
    a.try_resize(60).unwrap();
    assert_eq!(pool.reserved(), 60);
    assert!(a.try_resize(101).is_err());
    assert_eq!(a.size(), 60);
    a.try_resize(20).unwrap();
    assert_eq!(pool.reserved(), 20);
    a.resize(150);
    assert_eq!(pool.reserved(), 150);
    a.resize(50);
    let part = a.split(30, "part");
    assert_eq!((a.size(), part.size()), (20, 30));
    assert_eq!(
        (part.consumer(), part.kind()),
        ("part", ConsumerKind::Fixed)
    );
    assert_eq!(pool.reserved(), 50);
    assert_eq!(pool.reserved_by(ConsumerKind::Fixed), 50);
    drop(part);
    assert_eq!(pool.reserved(), 20);
    drop(a);
    assert_eq!(pool.reserved(), 0);
}

#[test]
#[should_panic(expected = "at most its size")]
fn shrinking_more_than_held_is_a_bug() {
    let pool = MemoryPool::new(100);
    let mut a = MemoryReservation::fixed(&pool, "a");
    a.try_grow(10).unwrap();
    a.shrink(11);
}

#[test]
fn concurrent_growth_never_exceeds_the_budget() {
    const BUDGET: usize = 1_000;
    let pool = MemoryPool::new(BUDGET);
    let max_seen = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let pool = Arc::clone(&pool);
            let max_seen = Arc::clone(&max_seen);
            std::thread::spawn(move || {
                // try_grow of a spillable consumer never passes the budget
                let mut r = MemoryReservation::spillable(&pool, format!("t{t}"));
                let mut granted = 0usize;
                for i in 0..20_000usize {
                    let bytes = 1 + (i * 7 + t) % 97;
                    if r.try_grow(bytes).is_ok() {
                        granted += 1;
                    }
                    max_seen.fetch_max(pool.reserved(), Ordering::Relaxed);
                    if i % 8 == 0 {
                        r.shrink(r.size() / 2);
                    }
                }
                granted
            })
        })
        .collect();
    let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(granted > 0);
    assert!(max_seen.load(Ordering::Relaxed) <= BUDGET);
    assert!(pool.peak() <= BUDGET, "peak {} > budget", pool.peak());
    assert!(
        pool.peak() > BUDGET / 2,
        "the test should get near the limit"
    );
    assert_eq!(pool.reserved(), 0);
}
