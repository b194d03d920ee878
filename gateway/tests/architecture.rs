//! The gateway's module graph, read from its sources: `crate::` paths between top-level
//! modules and `super::`/`crate::dir::` paths between sibling files of one directory. The
//! graph must have no cycle, and only the front ends may import the transport.
//!
//! See it: `cargo test -p meshgate --test architecture -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` module and without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments named after `prefix` (`crate::`, `super::`), including each item
/// of a `prefix{a, b::c}` group.
fn segments_after(code: &str, prefix: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Items at the group's top level.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        out.push(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out
}

/// Top-level modules and the top-level modules each one names.
fn top_level_graph() -> Graph {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top_module(&root, f))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut graph = Graph::new();
    for f in &files {
        let from = top_module(&root, f);
        if from == "lib" || from == "main" {
            continue;
        }
        let to = graph.entry(from.clone()).or_default();
        for m in segments_after(&code(f), "crate::") {
            if modules.contains(&m) && m != from {
                to.insert(m);
            }
        }
    }
    graph
}

fn top_module(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// For each directory module (`catalog`, `flight`, ...): its files (not `mod.rs`) and the
/// siblings each names through `super::` or `crate::<dir>::`.
fn sibling_graphs() -> BTreeMap<String, Graph> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut graphs = BTreeMap::<String, Graph>::new();
    for f in &files {
        let Some(dir) = f.parent().filter(|d| *d != root) else {
            continue;
        };
        let name = f.file_stem().expect("stem").to_string_lossy().to_string();
        if name == "mod" {
            continue;
        }
        let dir_path = dir
            .strip_prefix(&root)
            .expect("under src")
            .to_string_lossy()
            .replace('/', "::");
        let siblings: BTreeSet<String> = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(|e| {
                let p = e.ok()?.path();
                let stem = p.file_stem()?.to_string_lossy().to_string();
                (stem != "mod").then_some(stem)
            })
            .collect();
        let text = code(f);
        let mut named = segments_after(&text, "super::");
        named.extend(segments_after(&text, &format!("crate::{dir_path}::")));
        let to = graphs
            .entry(dir_path)
            .or_default()
            .entry(name.clone())
            .or_default();
        for m in named {
            if siblings.contains(&m) && m != name {
                to.insert(m);
            }
        }
    }
    graphs
}

/// A cycle of `graph`, if it has one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        node: &str,
        state: &mut BTreeMap<String, bool>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), false);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next) {
                Some(false) => {
                    let start = path.iter().position(|n| n == next).unwrap_or(0);
                    let mut c = path[start..].to_vec();
                    c.push(next.clone());
                    return Some(c);
                }
                Some(true) => {}
                None => {
                    if let Some(c) = visit(graph, next, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(node.to_string(), true);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node) {
            if let Some(c) = visit(graph, node, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn show(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(m, to)| {
            format!(
                "{m} -> {}",
                to.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = top_level_graph();
    println!("{}", show(&graph));
    assert!(graph.len() > 10, "the scan found the modules: {graph:?}");
    assert!(
        graph["state"].contains("query"),
        "the scan sees imports: {graph:?}"
    );
    if let Some(c) = cycle(&graph) {
        panic!("import cycle: {}\n{}", c.join(" -> "), show(&graph));
    }
}

#[test]
fn files_of_one_directory_form_no_cycle() {
    for (dir, graph) in sibling_graphs() {
        println!("{dir}/\n  {}", show(&graph).replace('\n', "\n  "));
        if let Some(c) = cycle(&graph) {
            panic!("import cycle in {dir}/: {}", c.join(" -> "));
        }
    }
}

#[test]
fn only_front_ends_import_the_transport() {
    let front_ends = ["server", "cli"];
    for (module, imports) in top_level_graph() {
        for transport in ["flight", "http", "catalog_service", "server"] {
            assert!(
                !imports.contains(transport) || front_ends.contains(&module.as_str()),
                "`{module}` imports the transport `{transport}`; move what it needs below \
                 (state, request, catalog, query)"
            );
        }
    }
}

#[test]
fn the_scanner_reads_groups_and_nested_paths() {
    let found = segments_after(
        "use crate::{a::{b, c}, d, e::f};\nlet x = crate::g::h(); let y = notcrate::i;",
        "crate::",
    );
    assert_eq!(found, vec!["a", "d", "e", "g"]);
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("a".into());
    assert!(cycle(&g).is_some());
    g.get_mut("b").expect("b").clear();
    assert!(cycle(&g).is_none());
}
