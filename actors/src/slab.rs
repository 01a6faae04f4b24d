//! Values in numbered slots that are reused once freed: what a worker's
//! per-thread tables of waiting futures (coarse timeouts, shutdown waits)
//! are kept in, so that arming and disarming allocate nothing once warm.

/// Values in numbered, reused slots.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self { slots: Vec::new(), free: Vec::new() }
    }
}

impl<T> Slab<T> {
    /// Stores `value` in a free slot (a new one if none is free); its number.
    pub(crate) fn insert(&mut self, value: T) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(value);
                i
            }
            None => {
                self.slots.push(Some(value));
                self.slots.len() - 1
            }
        }
    }

    /// Empties slot `i` for reuse; its value, if it held one.
    pub(crate) fn remove(&mut self, i: usize) -> Option<T> {
        let value = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        Some(value)
    }

    /// The value in slot `i`.
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i)?.as_mut()
    }

    /// Every stored value.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten()
    }

    /// Number of stored values.
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether no value is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of slots made so far, used or free (tests check reuse).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slots_are_reused() {
        let mut slab = Slab::default();
        let (a, b) = (slab.insert('a'), slab.insert('b'));
        assert_eq!((slab.len(), slab.slots()), (2, 2));
        assert_eq!(slab.remove(a), Some('a'));
        assert_eq!(slab.remove(a), None, "a slot is freed once");
        assert_eq!(slab.get_mut(a), None);
        assert_eq!(slab.insert('c'), a, "the freed slot is taken first");
        assert_eq!((slab.len(), slab.slots()), (2, 2));
        assert_eq!(slab.get_mut(b), Some(&mut 'b'));
        let mut all: Vec<char> = slab.iter_mut().map(|c| *c).collect();
        all.sort_unstable();
        assert_eq!(all, ['b', 'c']);
    }
}
