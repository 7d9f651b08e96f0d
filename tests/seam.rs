//! The seam holds: the harness and the seam crate depend on no gateway, so
//! a gateway is only ever plugged in from outside (the CLI, tests).

fn dependencies(manifest: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(manifest);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.contains("dependencies");
            continue;
        }
        if in_deps {
            if let Some((name, _)) = line.split_once('=') {
                out.push(name.trim().split('.').next().unwrap_or("").to_string());
            }
        }
    }
    out
}

#[test]
fn neither_the_harness_nor_the_seam_depends_on_a_gateway() {
    for manifest in ["harness/Cargo.toml", "sut/Cargo.toml", "fakes/Cargo.toml"] {
        let deps = dependencies(manifest);
        assert!(!deps.is_empty(), "{manifest} read no dependencies");
        for gateway in ["mcpsim-gateway", "mcpsim-simple-gateway"] {
            assert!(
                !deps.iter().any(|d| d == gateway),
                "{manifest} depends on {gateway}"
            );
        }
    }
    let harness = dependencies("harness/Cargo.toml");
    assert!(harness.iter().any(|d| d == "mcpsim-sut"));
}
