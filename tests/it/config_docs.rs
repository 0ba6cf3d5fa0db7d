//! The configuration reference in the README is the code's: every `KILN_*`
//! variable a binary reads is documented, and every row of the README's
//! Configuration table names a variable something still reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `"KILN_…"` string literal in the binaries' and libraries' sources.
fn variables_read() -> BTreeSet<String> {
    let mut files = Vec::new();
    for crate_dir in ["api", "worker", "cli", "infra", "core"] {
        rust_files(&root().join(crate_dir).join("src"), &mut files);
    }
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (at, _) in text.match_indices("\"KILN_") {
            let name: String = text[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            // A prefix built on (`"KILN_HTTP_"` + a suffix) is not a variable.
            if !name.ends_with('_') {
                names.insert(name);
            }
        }
    }
    names
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

#[test]
fn every_variable_the_code_reads_is_documented() {
    let readme = readme();
    let read = variables_read();
    assert!(read.len() > 80, "found only {} variables", read.len());
    let undocumented: Vec<_> = read
        .iter()
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "read by the code, not in README.md: {undocumented:?}"
    );
}

#[test]
fn every_documented_setting_is_still_read() {
    let readme = readme();
    let table = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Configuration section");
    let read = variables_read();
    let rows: Vec<&str> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| `KILN_"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert!(rows.len() > 80, "found only {} rows", rows.len());
    let stale: Vec<_> = rows
        .iter()
        .map(|suffix| format!("KILN_{suffix}"))
        .filter(|name| !read.contains(name))
        .collect();
    assert!(
        stale.is_empty(),
        "documented but read by nothing: {stale:?}"
    );
}
