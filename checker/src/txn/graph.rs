//! The dependency graph: transactions as nodes, edges labelled with every reason one
//! must precede the other. Stored as compressed rows (one offsets array, one targets
//! array, one label per edge) so a million transactions cost a few arrays, not a
//! million vectors; searched with an iterative Tarjan (no recursion to overflow) and a
//! breadth-first path search, both restricted to chosen labels.

/// Why one transaction precedes another; an edge may have several reasons.
pub type Labels = u8;
/// Write-write: the second overwrote (or appended after) the first's write.
pub const WW: Labels = 1;
/// Write-read: the second read what the first wrote.
pub const WR: Labels = 2;
/// Read-write: the second overwrote what the first read (an anti-dependency).
pub const RW: Labels = 4;
/// The same process ran the first, then the second.
pub const PROCESS: Labels = 8;
/// The first completed before the second was invoked.
pub const REALTIME: Labels = 16;
pub const DATA: Labels = WW | WR | RW;
pub const ALL: Labels = DATA | PROCESS | REALTIME;

/// One reason on its own, for explanations and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dependency {
    Ww,
    Wr,
    Rw,
    Process,
    Realtime,
}

impl Dependency {
    /// The weakest reason among `l` (what an edge is explained by), if any.
    pub fn of(l: Labels) -> Option<Dependency> {
        [
            (WW, Dependency::Ww),
            (WR, Dependency::Wr),
            (RW, Dependency::Rw),
            (PROCESS, Dependency::Process),
            (REALTIME, Dependency::Realtime),
        ]
        .into_iter()
        .find(|(bit, _)| l & bit != 0)
        .map(|(_, d)| d)
    }

    pub fn name(self) -> &'static str {
        match self {
            Dependency::Ww => "ww",
            Dependency::Wr => "wr",
            Dependency::Rw => "rw",
            Dependency::Process => "process",
            Dependency::Realtime => "realtime",
        }
    }
}

/// The graph over nodes `0..n`.
#[derive(Debug, Default)]
pub struct Graph {
    offsets: Vec<u32>,
    targets: Vec<u32>,
    labels: Vec<Labels>,
}

impl Graph {
    /// Builds the graph from edges in any order; parallel edges merge their labels and
    /// self-loops are dropped (a transaction does not depend on itself).
    pub fn build(n: usize, mut edges: Vec<(u32, u32, Labels)>) -> Graph {
        edges.retain(|e| e.0 != e.1);
        edges.sort_unstable_by_key(|e| (e.0, e.1));
        let mut offsets = vec![0u32; n + 1];
        let mut targets = Vec::with_capacity(edges.len());
        let mut labels: Vec<Labels> = Vec::with_capacity(edges.len());
        let mut last: Option<(u32, u32)> = None;
        for (a, b, l) in edges {
            if last == Some((a, b)) {
                *labels.last_mut().expect("an edge was pushed") |= l;
                continue;
            }
            last = Some((a, b));
            targets.push(b);
            labels.push(l);
            offsets[a as usize + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Graph {
            offsets,
            targets,
            labels,
        }
    }

    pub fn nodes(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn edges(&self) -> usize {
        self.targets.len()
    }

    /// The edges out of `a` carrying any of `mask`: (target, its labels).
    pub fn out(&self, a: u32, mask: Labels) -> impl Iterator<Item = (u32, Labels)> + '_ {
        let (s, e) = (
            self.offsets[a as usize] as usize,
            self.offsets[a as usize + 1] as usize,
        );
        self.targets[s..e]
            .iter()
            .zip(&self.labels[s..e])
            .filter(move |(_, l)| **l & mask != 0)
            .map(|(t, l)| (*t, *l))
    }

    /// The labels of the edge `a → b`, 0 if there is none.
    pub fn labels(&self, a: u32, b: u32) -> Labels {
        let (s, e) = (
            self.offsets[a as usize] as usize,
            self.offsets[a as usize + 1] as usize,
        );
        match self.targets[s..e].binary_search(&b) {
            Ok(i) => self.labels[s + i],
            Err(_) => 0,
        }
    }

    /// Strongly connected components over the edges carrying `mask`: each node's
    /// component id, and for each component its size. Iterative Tarjan.
    pub fn components(&self, mask: Labels) -> Components {
        const NONE: u32 = u32::MAX;
        let n = self.nodes();
        let mut index = vec![NONE; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut comp = vec![NONE; n];
        let mut sizes: Vec<u32> = Vec::new();
        let mut stack: Vec<u32> = Vec::new();
        // The call stack: a node and how far through its edges it is.
        let mut calls: Vec<(u32, usize)> = Vec::new();
        let mut next = 0u32;
        for root in 0..n as u32 {
            if index[root as usize] != NONE {
                continue;
            }
            calls.push((root, self.offsets[root as usize] as usize));
            index[root as usize] = next;
            low[root as usize] = next;
            next += 1;
            stack.push(root);
            on_stack[root as usize] = true;
            while let Some(&(v, from)) = calls.last() {
                let end = self.offsets[v as usize + 1] as usize;
                let mut at = from;
                let mut child = None;
                while at < end {
                    let (w, l) = (self.targets[at], self.labels[at]);
                    at += 1;
                    if l & mask == 0 {
                        continue;
                    }
                    if index[w as usize] == NONE {
                        child = Some(w);
                        break;
                    } else if on_stack[w as usize] {
                        low[v as usize] = low[v as usize].min(index[w as usize]);
                    }
                }
                let top = calls.len() - 1;
                calls[top].1 = at;
                if let Some(w) = child {
                    index[w as usize] = next;
                    low[w as usize] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w as usize] = true;
                    calls.push((w, self.offsets[w as usize] as usize));
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    low[parent as usize] = low[parent as usize].min(low[v as usize]);
                }
                if low[v as usize] == index[v as usize] {
                    let id = sizes.len() as u32;
                    let mut size = 0;
                    loop {
                        let w = stack.pop().expect("v is on the stack");
                        on_stack[w as usize] = false;
                        comp[w as usize] = id;
                        size += 1;
                        if w == v {
                            break;
                        }
                    }
                    sizes.push(size);
                }
            }
        }
        Components { comp, sizes }
    }

    /// The shortest path from `from` to `to` over edges carrying `mask`, staying inside
    /// `from`'s component of `within`: the nodes after `from`, ending with `to`. `steps`
    /// is charged one per edge looked at; `None` when there is no path or `steps` ran
    /// out (then `steps` is 0).
    pub fn path(
        &self,
        from: u32,
        to: u32,
        mask: Labels,
        within: &Components,
        steps: &mut u64,
    ) -> Option<Vec<u32>> {
        let c = within.comp[from as usize];
        let mut parent: rustc_hash::FxHashMap<u32, u32> = Default::default();
        let mut queue = std::collections::VecDeque::new();
        queue.push_back(from);
        parent.insert(from, from);
        while let Some(v) = queue.pop_front() {
            for (w, _) in self.out(v, mask) {
                if *steps == 0 {
                    return None;
                }
                *steps -= 1;
                if within.comp[w as usize] != c || parent.contains_key(&w) {
                    continue;
                }
                parent.insert(w, v);
                if w == to {
                    let mut path = vec![to];
                    let mut at = to;
                    while parent[&at] != from {
                        at = parent[&at];
                        path.push(at);
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(w);
            }
        }
        None
    }
}

/// Strongly connected components: `comp[node]` and `sizes[comp]`.
#[derive(Debug)]
pub struct Components {
    pub comp: Vec<u32>,
    pub sizes: Vec<u32>,
}

impl Components {
    /// Whether `a` and `b` lie on a common cycle.
    pub fn together(&self, a: u32, b: u32) -> bool {
        self.comp[a as usize] == self.comp[b as usize]
            && self.sizes[self.comp[a as usize] as usize] > 1
    }

    /// Whether any component holds a cycle.
    pub fn any_cycle(&self) -> bool {
        self.sizes.iter().any(|s| *s > 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_paths_follow_only_the_labels_asked_for() {
        // 0 -ww-> 1 -wr-> 2 -rw-> 0, and 2 -ww-> 3 (no way back).
        let g = Graph::build(
            4,
            vec![
                (0, 1, WW),
                (1, 2, WR),
                (2, 0, RW),
                (2, 3, WW),
                (0, 1, PROCESS),
            ],
        );
        assert_eq!(g.labels(0, 1), WW | PROCESS);
        let all = g.components(DATA);
        assert!(all.together(0, 2));
        assert!(!all.together(2, 3));
        let no_rw = g.components(WW | WR);
        assert!(!no_rw.any_cycle());
        let mut steps = 100;
        assert_eq!(g.path(0, 2, DATA, &all, &mut steps), Some(vec![1, 2]));
        let mut none = 0;
        assert_eq!(g.path(0, 2, DATA, &all, &mut none), None);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 1_000_000u32;
        let mut edges: Vec<_> = (0..n - 1).map(|i| (i, i + 1, WW)).collect();
        edges.push((n - 1, 0, RW));
        let g = Graph::build(n as usize, edges);
        let c = g.components(ALL);
        assert_eq!(c.sizes, vec![n]);
        assert!(!g.components(WW).any_cycle());
    }
}
