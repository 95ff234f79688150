//! Every relative link and anchor in the repository's Markdown leads somewhere: the file (or
//! directory) exists, and a `#fragment` names a heading of the page it points to, as GitHub
//! renders it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository root")
        .to_path_buf()
}

/// Every `.md` file of the repository, outside build output and hidden directories.
fn markdown_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .expect("a listed entry has a name")
            .to_string_lossy()
            .into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                markdown_files(&path, found);
            }
        } else if name.ends_with(".md") {
            found.push(path);
        }
    }
}

/// A heading's anchor as GitHub makes it: lower case, punctuation dropped except `-` and `_`,
/// spaces to `-`.
fn slug(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// What one page offers and asks: its anchors and its links (destination, line).
struct Page {
    anchors: BTreeSet<String>,
    links: Vec<(String, usize)>,
}

fn read_page(path: &Path) -> Page {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    let mut anchors = BTreeSet::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut links = Vec::new();
    let mut heading: Option<String> = None;
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for (event, range) in Parser::new_ext(&text, options).into_offset_iter() {
        let line = text[..range.start].matches('\n').count() + 1;
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                // GitHub numbers repeated headings: `name`, `name-1`, `name-2`...
                let count = seen.entry(base.clone()).or_insert(0);
                let anchor = if *count == 0 {
                    base.clone()
                } else {
                    format!("{base}-{count}")
                };
                *count += 1;
                anchors.insert(anchor);
            }
            Event::Text(part) | Event::Code(part) => {
                if let Some(heading) = heading.as_mut() {
                    heading.push_str(&part);
                }
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                links.push((dest_url.into_string(), line));
            }
            _ => {}
        }
    }
    Page { anchors, links }
}

/// `base/relative`, with `.` and `..` resolved lexically (a link cannot leave the repository).
fn resolve(base: &Path, relative: &str) -> PathBuf {
    let mut path = base.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::ParentDir => {
                path.pop();
            }
            Component::Normal(part) => path.push(part),
            _ => {}
        }
    }
    path
}

fn is_external(link: &str) -> bool {
    link.contains("://") || link.starts_with("mailto:") || link.starts_with("//")
}

/// The broken links of every Markdown file under `root`, one line each.
fn broken_links(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    let pages: BTreeMap<PathBuf, Page> = files
        .iter()
        .map(|file| (file.clone(), read_page(file)))
        .collect();
    let mut broken = Vec::new();
    for (file, page) in &pages {
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        for (link, line) in &page.links {
            if is_external(link) {
                continue;
            }
            let (target, fragment) = match link.split_once('#') {
                Some((target, fragment)) => (target, Some(fragment)),
                None => (link.as_str(), None),
            };
            let target = target.split('?').next().unwrap_or_default();
            let destination = if target.is_empty() {
                file.clone()
            } else if let Some(from_root) = target.strip_prefix('/') {
                resolve(root, from_root)
            } else {
                resolve(file.parent().unwrap_or(root), target)
            };
            if !destination.exists() {
                broken.push(format!("{shown}:{line}: {link}: no such file"));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            let Some(target_page) = pages.get(&destination) else {
                // An anchor into something other than Markdown (a line of a source file).
                continue;
            };
            if !target_page.anchors.contains(fragment) {
                broken.push(format!(
                    "{shown}:{line}: {link}: no heading with that anchor"
                ));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_and_anchor_in_the_markdown_leads_somewhere() {
    let broken = broken_links(&root());
    assert!(
        broken.is_empty(),
        "broken links in the repository's Markdown:\n{}",
        broken.join("\n")
    );
}

#[test]
fn a_missing_file_and_a_missing_anchor_are_both_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        "# Top\n\n## The `fleet` view, again!\n\n[ok](docs/a.md#second-part) \
         [ok](#the-fleet-view-again) [bad](docs/none.md) [bad](docs/a.md#nowhere) \
         [ok](https://example.com/x) `[code](not/a/link.md)`\n\n```\n[fenced](nor/this.md)\n```\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("docs/a.md"),
        "# A\n\n## Second part\n\n[up](../README.md#top) ![picture](missing.png)\n",
    )
    .unwrap();
    let broken = broken_links(dir.path());
    assert_eq!(
        broken,
        [
            "README.md:5: docs/none.md: no such file",
            "README.md:5: docs/a.md#nowhere: no heading with that anchor",
            "docs/a.md:5: missing.png: no such file",
        ],
        "{broken:#?}"
    );
}

#[test]
fn repeated_headings_get_numbered_anchors_as_on_github() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.md");
    std::fs::write(&page, "# Run\n\n## Run\n\n## Run\n").unwrap();
    let anchors = read_page(&page).anchors;
    assert_eq!(
        anchors.into_iter().collect::<Vec<_>>(),
        ["run", "run-1", "run-2"]
    );
}

#[test]
fn anchors_keep_letters_digits_dashes_and_underscores_of_the_heading_text() {
    assert_eq!(slug("Swarm and several nodes"), "swarm-and-several-nodes");
    assert_eq!(
        slug("gRPC health (`grpc.health.v1`)"),
        "grpc-health-grpchealthv1"
    );
}
