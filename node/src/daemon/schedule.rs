//! Owns the bookkeeping that keeps one step of the event loop proportional to
//! what the step touched, not to the number of instances: which instances an
//! input touched ([`Touched`]), and each instance's next deadline, kept in order
//! ([`Deadlines`]). With hundreds of instances and 100 ms adverts the loop turns
//! thousands of times a second; a scan of every instance per turn made the cost
//! per advert grow with the number of instances.

use std::collections::BTreeSet;
use std::time::Instant;

/// The instances touched since the last [`Touched::clear`], each once, in the
/// order they were first touched.
#[derive(Debug, Default)]
pub(super) struct Touched {
    flag: Vec<bool>,
    list: Vec<usize>,
}

impl Touched {
    pub fn new(n: usize) -> Self {
        Touched {
            flag: vec![false; n],
            list: Vec::new(),
        }
    }

    pub fn touch(&mut self, i: usize) {
        if let Some(f) = self.flag.get_mut(i)
            && !*f
        {
            *f = true;
            self.list.push(i);
        }
    }

    /// The touched instances so far (a copy: touching goes on while callers walk it).
    pub fn list(&self) -> Vec<usize> {
        self.list.clone()
    }

    pub fn clear(&mut self) {
        for &i in &self.list {
            self.flag[i] = false;
        }
        self.list.clear();
    }
}

/// Each instance's next deadline, ordered, so the earliest is at hand and the due
/// ones are found without looking at the others.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    order: BTreeSet<(Instant, usize)>,
    at: Vec<Option<Instant>>,
}

impl Deadlines {
    pub fn new(n: usize) -> Self {
        Deadlines {
            order: BTreeSet::new(),
            at: vec![None; n],
        }
    }

    /// Instance `i`'s deadline is now `at` (none: nothing due).
    pub fn set(&mut self, i: usize, at: Option<Instant>) {
        let Some(slot) = self.at.get_mut(i) else {
            return;
        };
        if *slot == at {
            return;
        }
        if let Some(old) = slot.take() {
            self.order.remove(&(old, i));
        }
        if let Some(t) = at {
            self.order.insert((t, i));
        }
        *slot = at;
    }

    /// The earliest deadline of any instance.
    pub fn first(&self) -> Option<Instant> {
        self.order.first().map(|&(t, _)| t)
    }

    /// The instances whose deadline is at or before `now`, earliest first.
    pub fn due(&self, now: Instant) -> Vec<usize> {
        self.order
            .range(..=(now, usize::MAX))
            .map(|&(_, i)| i)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn touched_lists_each_instance_once_until_cleared() {
        let mut t = Touched::new(4);
        t.touch(2);
        t.touch(0);
        t.touch(2);
        t.touch(9); // out of range: ignored, never a panic
        assert_eq!(t.list(), vec![2, 0]);
        t.clear();
        assert!(t.list().is_empty());
        t.touch(2);
        t.touch(1);
        assert_eq!(t.list(), vec![2, 1]);
    }

    #[test]
    fn deadlines_keep_the_earliest_and_the_due_ones() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = Deadlines::new(3);
        assert_eq!(d.first(), None);
        d.set(0, Some(ms(300)));
        d.set(1, Some(ms(100)));
        d.set(2, Some(ms(100)));
        assert_eq!(d.first(), Some(ms(100)));
        assert_eq!(d.due(ms(99)), Vec::<usize>::new());
        assert_eq!(d.due(ms(100)), vec![1, 2]);
        // Moving a deadline drops the old entry.
        d.set(1, Some(ms(400)));
        d.set(2, None);
        assert_eq!(d.first(), Some(ms(300)));
        assert_eq!(d.due(ms(350)), vec![0]);
        assert_eq!(d.due(ms(1000)), vec![0, 1]);
        d.set(7, Some(ms(1))); // out of range: ignored
        assert_eq!(d.first(), Some(ms(300)));
    }
}
