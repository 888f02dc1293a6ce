//! Combining the watermarks of several input channels.

use crate::message::Watermark;

/// The watermark of an operator with several input channels: the minimum over
/// the channels that are not idle and not finished.
///
/// ```text
///  channel 0 ──wm 12──┐
///  channel 1 ──wm  9──┼──► min over active = 9  (emitted only when it rises)
///  channel 2 ──Idle───┘    (idle channels do not hold it back;
///                            all idle ⇒ Idle is forwarded)
/// ```
/// The combined watermark never goes backwards: an idle channel that wakes up
/// with an older watermark does not pull it down.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    // state
    channels: Vec<ChannelState>,
    emitted: Option<Watermark>,
    max_emitted: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ChannelState {
    At(i64),
    Idle,
    Ended,
}

impl WatermarkTracker {
    /// A tracker for `channels` inputs, all starting before any event time.
    pub fn new(channels: usize) -> Self {
        WatermarkTracker {
            channels: vec![ChannelState::At(i64::MIN); channels],
            emitted: None,
            max_emitted: i64::MIN,
        }
    }

    /// Records `wm` from `channel`; returns the watermark to forward if the
    /// combined value changed.
    pub fn update(&mut self, channel: usize, wm: Watermark) -> Option<Watermark> {
        self.channels[channel] = match (self.channels[channel], wm) {
            (ChannelState::Ended, _) => ChannelState::Ended,
            (ChannelState::At(old), Watermark::EventTime(t)) => ChannelState::At(old.max(t)),
            (_, Watermark::EventTime(t)) => ChannelState::At(t),
            (_, Watermark::Idle) => ChannelState::Idle,
        };
        self.recompute()
    }

    /// Marks `channel` finished: it no longer holds back the minimum.
    pub fn on_end(&mut self, channel: usize) -> Option<Watermark> {
        self.channels[channel] = ChannelState::Ended;
        self.recompute()
    }

    /// The last watermark forwarded.
    pub fn current(&self) -> Option<Watermark> {
        self.emitted
    }

    fn recompute(&mut self) -> Option<Watermark> {
        let mut min: Option<i64> = None;
        let mut any_idle = false;
        for c in &self.channels {
            match *c {
                ChannelState::At(t) => min = Some(min.map_or(t, |m| m.min(t))),
                ChannelState::Idle => any_idle = true,
                ChannelState::Ended => {}
            }
        }
        let next = match min {
            Some(t) if t > self.max_emitted => {
                self.max_emitted = t;
                Watermark::EventTime(t)
            }
            Some(_) if self.emitted == Some(Watermark::Idle) => {
                Watermark::EventTime(self.max_emitted)
            }
            Some(_) => return None,
            None if any_idle => Watermark::Idle,
            None => return None,
        };
        if self.emitted == Some(next) {
            return None;
        }
        self.emitted = Some(next);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Watermark::*;

    #[test]
    fn minimum_over_active_channels_and_never_backwards() {
        let mut t = WatermarkTracker::new(3);
        assert_eq!(t.update(0, EventTime(10)), None);
        assert_eq!(t.update(1, EventTime(5)), None);
        assert_eq!(t.update(2, EventTime(7)), Some(EventTime(5)));
        assert_eq!(t.update(1, EventTime(20)), Some(EventTime(7)));
        // a channel cannot move backwards
        assert_eq!(t.update(2, EventTime(1)), None);
        assert_eq!(t.update(2, EventTime(30)), Some(EventTime(10)));
        assert_eq!(t.on_end(0), Some(EventTime(20)));
    }

    #[test]
    fn idle_channels_do_not_hold_back_and_all_idle_forwards_idle() {
        let mut t = WatermarkTracker::new(2);
        assert_eq!(t.update(0, EventTime(10)), None);
        assert_eq!(t.update(1, Idle), Some(EventTime(10)));
        assert_eq!(t.update(0, Idle), Some(Idle));
        // waking up with an older time does not go backwards
        assert_eq!(t.update(1, EventTime(3)), Some(EventTime(10)));
        assert_eq!(t.update(1, EventTime(12)), Some(EventTime(12)));
        assert_eq!(t.update(0, EventTime(15)), None);
        assert_eq!(t.update(1, EventTime(40)), Some(EventTime(15)));
    }
}
