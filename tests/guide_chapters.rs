//! Every chapter of the guide is compiled as doctests (`src/lib.rs` includes each one), so a chapter added without
//! being included there would have examples nobody compiles.

#[test]
fn every_guide_chapter_is_compiled_as_doctests() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let includes = std::fs::read_to_string(root.join("src/lib.rs")).expect("read src/lib.rs");
    let mut chapters: Vec<String> = std::fs::read_dir(root.join("docs/guide"))
        .expect("read docs/guide")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .collect();
    chapters.sort();
    assert!(chapters.len() > 10, "the guide has its chapters: {chapters:?}");
    let missing: Vec<&String> = chapters
        .iter()
        .filter(|chapter| !includes.contains(&format!("include_str!(\"../docs/guide/{chapter}\")")))
        .collect();
    assert!(missing.is_empty(), "chapters whose examples are not compiled (add them to src/lib.rs): {missing:?}");
}
