//! The dependency graph of a stamp's entries: a topological order and each entry's wave.
//!
//! Pure functions over indices so they can be property-tested without stamps.

use std::collections::BTreeSet;

/// Topological order (dependencies first, ties broken by declaration order) and, per entry,
/// its wave: 0 without dependencies, else one more than its deepest dependency. The wave is
/// Argo CD's `sync-wave`; Flux gets the edges themselves as `dependsOn`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    order: Vec<usize>,
    waves: Vec<usize>,
}

/// A dependency cycle, as the indices along it; the first index is repeated at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle(pub Vec<usize>);

impl Graph {
    /// `deps[i]` lists the indices entry `i` depends on. Indices out of range are ignored
    /// (unknown dependencies are reported by validation, not here).
    pub fn build(deps: &[Vec<usize>]) -> Result<Graph, Cycle> {
        let n = deps.len();
        let mut remaining: Vec<usize> = vec![0; n];
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            let unique: BTreeSet<usize> = ds.iter().copied().filter(|&d| d < n).collect();
            remaining[i] = unique.len();
            for d in unique {
                dependents[d].push(i);
            }
        }
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        let mut waves = vec![0; n];
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &j in &dependents[i] {
                waves[j] = waves[j].max(waves[i] + 1);
                remaining[j] -= 1;
                if remaining[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        if order.len() < n {
            return Err(find_cycle(deps, &remaining));
        }
        Ok(Graph { order, waves })
    }

    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub fn wave(&self, index: usize) -> usize {
        self.waves[index]
    }

    pub fn max_wave(&self) -> usize {
        self.waves.iter().copied().max().unwrap_or(0)
    }
}

/// Finds one cycle among the nodes Kahn's algorithm could not order (those with
/// `remaining > 0`): walking from any of them along unresolved dependencies must revisit a node.
fn find_cycle(deps: &[Vec<usize>], remaining: &[usize]) -> Cycle {
    let n = deps.len();
    let stuck = |i: usize| i < n && remaining[i] > 0;
    let Some(start) = (0..n).find(|&i| stuck(i)) else {
        return Cycle(Vec::new());
    };
    let mut path = vec![start];
    let mut position = vec![usize::MAX; n];
    position[start] = 0;
    let mut current = start;
    loop {
        // A stuck node always has at least one stuck dependency, else it would have been ordered.
        let Some(next) = deps[current].iter().copied().filter(|&d| stuck(d)).min() else {
            return Cycle(path);
        };
        if position[next] != usize::MAX {
            let mut cycle = path[position[next]..].to_vec();
            cycle.push(next);
            return Cycle(cycle);
        }
        position[next] = path.len();
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn graph_orders_dependencies_first_and_keeps_declaration_order_for_ties() {
        // 0 <- 2, 1 <- 2, 3 independent: among ready entries the first declared goes first.
        let g = Graph::build(&[vec![], vec![], vec![0, 1], vec![]]).unwrap();
        assert_eq!(g.order(), &[0, 1, 2, 3]);
        assert_eq!((0..4).map(|i| g.wave(i)).collect::<Vec<_>>(), [0, 0, 1, 0]);
        // A dependency declared later still comes first.
        let g = Graph::build(&[vec![1], vec![], vec![]]).unwrap();
        assert_eq!(g.order(), &[1, 0, 2]);
    }

    #[test]
    fn graph_wave_is_longest_path_depth() {
        // 0 <- 1 <- 2, and 3 depends on 0 and 2: wave 3, not 1
        let g = Graph::build(&[vec![], vec![0], vec![1], vec![0, 2]]).unwrap();
        assert_eq!(g.wave(3), 3);
        assert_eq!(g.max_wave(), 3);
    }

    #[test]
    fn graph_reports_the_cycle_path() {
        // 0 -> 1 -> 2 -> 0, 3 depends on the cycle
        let err = Graph::build(&[vec![1], vec![2], vec![0], vec![0]]).unwrap_err();
        assert_eq!(err.0, vec![0, 1, 2, 0]);
    }

    #[test]
    fn graph_self_dependency_is_a_cycle() {
        let err = Graph::build(&[vec![], vec![1]]).unwrap_err();
        assert_eq!(err.0, vec![1, 1]);
    }

    /// Random DAGs: edges only point to lower indices, then the nodes are shuffled.
    fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
        (1usize..40).prop_flat_map(|n| {
            let edges =
                proptest::collection::vec(proptest::collection::vec(any::<usize>(), 0..4), n);
            (edges, Just(n)).prop_flat_map(|(edges, n)| {
                let deps: Vec<Vec<usize>> = edges
                    .into_iter()
                    .enumerate()
                    .map(|(i, es)| {
                        if i == 0 {
                            vec![]
                        } else {
                            es.into_iter().map(|e| e % i).collect()
                        }
                    })
                    .collect();
                Just((0..n).collect::<Vec<_>>())
                    .prop_shuffle()
                    .prop_map(move |perm| {
                        // node i is renamed perm[i]
                        let mut shuffled = vec![Vec::new(); n];
                        for (i, ds) in deps.iter().enumerate() {
                            shuffled[perm[i]] = ds.iter().map(|&d| perm[d]).collect();
                        }
                        shuffled
                    })
            })
        })
    }

    proptest! {
        #[test]
        fn graph_order_respects_every_dependency(deps in dag()) {
            let g = Graph::build(&deps).unwrap();
            prop_assert_eq!(g.order().len(), deps.len());
            let mut pos = vec![0; deps.len()];
            for (p, &i) in g.order().iter().enumerate() { pos[i] = p; }
            for (i, ds) in deps.iter().enumerate() {
                for &d in ds { prop_assert!(pos[d] < pos[i], "{} ordered before its dependency {}", i, d); }
            }
        }

        #[test]
        fn graph_waves_strictly_increase_along_edges(deps in dag()) {
            let g = Graph::build(&deps).unwrap();
            for (i, ds) in deps.iter().enumerate() {
                for &d in ds { prop_assert!(g.wave(d) < g.wave(i)); }
                if ds.is_empty() { prop_assert_eq!(g.wave(i), 0); }
                else { prop_assert_eq!(g.wave(i), 1 + ds.iter().map(|&d| g.wave(d)).max().unwrap()); }
            }
        }

        #[test]
        fn graph_cycles_are_always_detected(mut deps in dag(), a in any::<usize>(), b in any::<usize>()) {
            // Close a cycle: pick a dependency chain b -> ... and add an edge back.
            let n = deps.len();
            let (a, b) = (a % n, b % n);
            deps[a].push(b);
            // Is there a path b ->* a in the original DAG (or a == b)? Then the graph has a cycle.
            let mut seen = vec![false; n];
            let mut stack = vec![b];
            let mut reaches = false;
            while let Some(x) = stack.pop() {
                if x == a { reaches = true; break; }
                if seen[x] { continue; }
                seen[x] = true;
                stack.extend(deps[x].iter().copied());
            }
            match Graph::build(&deps) {
                Ok(_) => prop_assert!(!reaches, "cycle through {} and {} not detected", a, b),
                Err(Cycle(c)) => {
                    prop_assert!(reaches);
                    prop_assert!(c.len() >= 2);
                    prop_assert_eq!(c.first(), c.last());
                    for w in c.windows(2) { prop_assert!(deps[w[0]].contains(&w[1]), "{:?} is not a path", c); }
                }
            }
        }
    }
}
