//! The README's section "Testing your own Rust gateway" shows
//! `tests/own_gateway.rs` verbatim, so the example there always compiles
//! and passes.

#[test]
fn the_readme_shows_the_example_test_verbatim() {
    let readme = include_str!("../../../README.md");
    let example = include_str!("own_gateway.rs");
    let block = format!("```rust\n{example}```");
    assert!(
        readme.contains(&block),
        "README.md must show examples/simple-gateway/tests/own_gateway.rs verbatim"
    );
}
