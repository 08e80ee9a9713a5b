//! Builds and orders the stage graph; does not read files or decide freshness.
//!
//! Stages are nodes, an edge `a -> b` means `b` reads an output of `a`. The order is
//! topological with ties broken by declaration order, so plans and tables are stable.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::config::{InputRef, StageConfig};

/// The stage graph, by index into the configuration's stage list.
#[derive(Debug, Clone)]
pub struct Dag {
    names: Vec<String>,
    kinds: Vec<String>,
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    order: Vec<usize>,
}

/// How `pipeline dag` prints the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DagFormat {
    /// One line per stage with the stages it reads from.
    Text,
    /// Graphviz.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

impl Dag {
    /// Builds the graph; on a cycle returns its path (first stage repeated at the end).
    pub fn build(stages: &[StageConfig]) -> Result<Self, Vec<String>> {
        let names: Vec<String> = stages.iter().map(|s| s.id.0.clone()).collect();
        let index = |name: &str| names.iter().position(|n| n == name);
        let mut upstream = vec![Vec::new(); stages.len()];
        let mut downstream = vec![Vec::new(); stages.len()];
        for (i, stage) in stages.iter().enumerate() {
            for input in &stage.inputs {
                if let InputRef::Upstream { stage: up, .. } = input {
                    if let Some(j) = index(up.as_str()) {
                        if !upstream[i].contains(&j) {
                            upstream[i].push(j);
                            downstream[j].push(i);
                        }
                    }
                }
            }
        }
        let mut dag = Dag {
            kinds: stages.iter().map(|s| s.kind.name().to_owned()).collect(),
            names,
            upstream,
            downstream,
            order: Vec::new(),
        };
        dag.order = dag.topological()?;
        Ok(dag)
    }

    fn topological(&self) -> Result<Vec<usize>, Vec<String>> {
        // Kahn's algorithm, always taking the earliest-declared ready stage.
        let n = self.names.len();
        let mut pending: Vec<usize> = self.upstream.iter().map(Vec::len).collect();
        let mut ready: BTreeSet<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(next) = ready.pop_first() {
            order.push(next);
            for &d in &self.downstream[next] {
                pending[d] -= 1;
                if pending[d] == 0 {
                    ready.insert(d);
                }
            }
        }
        if order.len() == n {
            return Ok(order);
        }
        Err(self.find_cycle(&pending))
    }

    fn find_cycle(&self, pending: &[usize]) -> Vec<String> {
        // Every stage still pending lies on or behind a cycle; walk upstream edges among
        // pending stages until one repeats.
        let Some(start) = (0..pending.len()).find(|&i| pending[i] > 0) else {
            return Vec::new();
        };
        let mut path = vec![start];
        let mut current = start;
        loop {
            let Some(&next) = self.upstream[current].iter().find(|&&u| pending[u] > 0) else {
                return Vec::new();
            };
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle: Vec<usize> = path[pos..].to_vec();
                // `path` follows "reads from" edges; print in data-flow order, starting
                // at the stage declared first.
                cycle.reverse();
                if let Some(first) = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &i)| i)
                    .map(|(p, _)| p)
                {
                    cycle.rotate_left(first);
                }
                let mut names: Vec<String> = cycle.iter().map(|&i| self.names[i].clone()).collect();
                names.push(names[0].clone());
                return names;
            }
            path.push(next);
            current = next;
        }
    }

    /// Stage indices in topological order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The stages `index` reads from.
    pub fn upstream(&self, index: usize) -> &[usize] {
        &self.upstream[index]
    }

    /// The stages that read from `index`.
    pub fn downstream(&self, index: usize) -> &[usize] {
        &self.downstream[index]
    }

    /// `targets` plus every stage they depend on, transitively.
    pub fn with_ancestors(&self, targets: &[usize]) -> BTreeSet<usize> {
        self.closure(targets, &self.upstream)
    }

    /// Every stage that depends on one of `sources`, transitively (sources excluded).
    pub fn descendants(&self, sources: &[usize]) -> BTreeSet<usize> {
        let mut all = self.closure(sources, &self.downstream);
        for s in sources {
            all.remove(s);
        }
        all
    }

    fn closure(&self, start: &[usize], edges: &[Vec<usize>]) -> BTreeSet<usize> {
        let mut seen: BTreeSet<usize> = start.iter().copied().collect();
        let mut stack: Vec<usize> = start.to_vec();
        while let Some(i) = stack.pop() {
            for &j in &edges[i] {
                if seen.insert(j) {
                    stack.push(j);
                }
            }
        }
        seen
    }

    /// Renders the graph for `pipeline dag`.
    pub fn render(&self, format: DagFormat) -> String {
        let mut out = String::new();
        match format {
            DagFormat::Text => {
                let width = self.names.iter().map(String::len).max().unwrap_or(0);
                for &i in &self.order {
                    let ups: Vec<&str> = self.upstream[i]
                        .iter()
                        .map(|&u| self.names[u].as_str())
                        .collect();
                    let from = if ups.is_empty() {
                        String::new()
                    } else {
                        format!(" <- {}", ups.join(", "))
                    };
                    let _ = writeln!(out, "{:width$}  ({}){from}", self.names[i], self.kinds[i]);
                }
            }
            DagFormat::Dot => {
                out.push_str("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];\n");
                for &i in &self.order {
                    let _ = writeln!(
                        out,
                        "  \"{}\" [label=\"{}\\n({})\"];",
                        self.names[i], self.names[i], self.kinds[i]
                    );
                }
                for &i in &self.order {
                    for &d in &self.downstream[i] {
                        let _ = writeln!(out, "  \"{}\" -> \"{}\";", self.names[i], self.names[d]);
                    }
                }
                out.push_str("}\n");
            }
            DagFormat::Mermaid => {
                out.push_str("flowchart LR\n");
                for &i in &self.order {
                    let _ = writeln!(
                        out,
                        "  {}[\"{}<br/>({})\"]",
                        mermaid_id(&self.names[i]),
                        self.names[i],
                        self.kinds[i]
                    );
                }
                for &i in &self.order {
                    for &d in &self.downstream[i] {
                        let _ = writeln!(
                            out,
                            "  {} --> {}",
                            mermaid_id(&self.names[i]),
                            mermaid_id(&self.names[d])
                        );
                    }
                }
            }
        }
        out
    }
}

fn mermaid_id(name: &str) -> String {
    name.replace('-', "_")
}
