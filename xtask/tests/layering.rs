//! No import circles: in each crate, a top-level module uses only modules below it, never one
//! that (directly or through others) uses it back. Read from the sources, so a new circle fails
//! `cargo test --workspace` instead of waiting for a reviewer to notice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose modules must form layers, relative to the repository root.
const CRATES: [&str; 4] = [
    "crates/accountservice/src",
    "crates/health/src",
    "crates/healthchecker/src",
    "xtask/src",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository root")
        .to_path_buf()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a readable source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The code of a file without its `#[cfg(test)] mod tests` (tests may reach anywhere) and
/// without comments (a doc link is not an import).
fn code(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate's top-level modules named after `crate::` in `code`, including those inside
/// `use crate::{a, b::c}` groups.
fn referenced(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find("};").unwrap_or(group.len());
            // Only the first path segment of each item of the group is a top-level module.
            let mut depth = 0;
            let mut start = true;
            let mut word = String::new();
            for c in group[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 && start && (c.is_alphanumeric() || c == '_') {
                    word.push(c);
                    continue;
                }
                if !word.is_empty() {
                    found.insert(std::mem::take(&mut word));
                }
                if depth == 0 && c == ',' {
                    start = true;
                } else if !c.is_whitespace() {
                    start = false;
                }
            }
            if !word.is_empty() {
                found.insert(word);
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(word);
        }
    }
    found.retain(|m| modules.contains(m));
    found
}

/// The import graph between a crate's top-level modules.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let top = |file: &Path| -> Option<String> {
        let relative = file.strip_prefix(src).ok()?;
        let first = relative.components().next()?.as_os_str().to_str()?;
        let name = first.trim_end_matches(".rs");
        (!matches!(name, "lib" | "main")).then(|| name.to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = top(file) else { continue };
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let mut uses = referenced(&code(&text), &modules);
        uses.remove(&module);
        graph.entry(module).or_default().extend(uses);
    }
    graph
}

/// A circle in `graph`, if there is one: the modules on it, in order.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_circle_between_its_top_level_modules() {
    let root = root();
    let mut circles = Vec::new();
    for krate in CRATES {
        let graph = graph(&root.join(krate));
        assert!(graph.len() > 1, "{krate}: no modules found");
        if let Some(found) = circle(&graph) {
            circles.push(format!("{krate}: {}", found.join(" -> ")));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn a_circle_is_found_and_named() {
    let modules: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let a = referenced("use crate::{b::Thing, other};\nfn f() {}", &modules);
    assert_eq!(a, ["b".to_owned()].into());
    let b = referenced("fn g() { crate::c::h() }", &modules);
    let c = referenced("use crate::{\n    a,\n    b::{x, y},\n};", &modules);
    assert_eq!(c, ["a".to_owned(), "b".to_owned()].into());
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a".into(), a), ("b".into(), b), ("c".into(), c)].into();
    assert_eq!(
        circle(&graph),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
    let layered: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), BTreeSet::new()),
    ]
    .into();
    assert_eq!(circle(&layered), None);
}

#[test]
fn comments_and_unit_tests_are_not_imports() {
    let text = "//! see [`crate::b`]\nfn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\n";
    let modules: BTreeSet<String> = ["b".to_owned()].into();
    assert!(referenced(&code(text), &modules).is_empty());
}
