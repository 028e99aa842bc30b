//! Work spread over the cores, results in order: reading, parsing and rendering 10,000
//! restaurants is most of `validate` and of a plan's start, and no restaurant's depends on
//! another's.

/// `f` over `items` on every core (at most 8), results in `items`' order. A panic in `f` is
/// raised again on the caller's thread.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads <= 1 || items.len() < 64 {
        return items.iter().enumerate().map(|(i, t)| f(i, t)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(j, t)| f(c * chunk + j, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_with_their_index() {
        let items: Vec<u32> = (0..1000).collect();
        let out = par_map(&items, |i, v| (i, v * 2));
        assert_eq!(out.len(), 1000);
        assert!(out
            .iter()
            .enumerate()
            .all(|(i, (j, v))| i == *j && *v == 2 * i as u32));
        assert_eq!(par_map(&items[..3], |_, v| *v), vec![0, 1, 2]);
    }
}
