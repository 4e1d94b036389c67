//! Locating and reading the shared test corpus (`WEBHOOK_CORPUS_DIR`, default
//! `<workspace>/../shared/corpus`). The corpus is read in place, never copied.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

/// The corpus directory.
pub(crate) fn corpus_dir() -> PathBuf {
    std::env::var_os("WEBHOOK_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"))
        })
}

/// Reads a file of the corpus, with a message naming the path when it is missing.
pub(crate) fn read(relative: &str) -> Vec<u8> {
    let path = corpus_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read corpus file {} ({e}); set WEBHOOK_CORPUS_DIR",
            path.display()
        )
    })
}

/// `(file, event, action)` rows of `github-payloads/MANIFEST.tsv`.
pub(crate) fn manifest() -> Vec<(String, String, String)> {
    let text = String::from_utf8(read("github-payloads/MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_owned(), cols[1].to_owned(), cols[2].to_owned())
        })
        .collect()
}
