//! `booking_now(show)`, `booking_xid(show)` (migration V13) and `booking_event_id(show)` (V17) are IMMUTABLE on Citus
//! so that Citus ships them to the show's node; that lie is harmless only while their
//! argument is a column: a constant or parameter argument could be folded into a plan
//! by the planner of the coordinator, and give its clock or transaction id. This test
//! reads every source file of the library and fails on any other argument.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `show_id`, `s.show_id`, `sh.id`: a column, optionally qualified by its table.
fn is_column(arg: &str) -> bool {
    let mut parts = arg.split('.');
    let ident = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
    };
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), None, None) => ident(a),
        (Some(a), Some(b), None) => ident(a) && ident(b),
        _ => false,
    }
}

#[test]
fn node_functions_take_a_column_never_a_parameter_or_constant() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut calls = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for name in ["booking_now(", "booking_xid(", "booking_event_id("] {
            for (at, _) in text.match_indices(name) {
                let rest = &text[at + name.len()..];
                let arg = rest.split(')').next().unwrap_or("").trim();
                calls += 1;
                if !is_column(arg) {
                    wrong.push(format!("{}: {name}{arg})", file.display()));
                }
            }
        }
    }
    assert!(calls > 0, "no calls found: the test reads the wrong place");
    assert!(wrong.is_empty(), "not a column: {wrong:#?}");
}

#[test]
fn the_column_rule_refuses_parameters_and_constants() {
    for ok in ["show_id", "s.show_id", "sh.id"] {
        assert!(is_column(ok), "{ok}");
    }
    for bad in ["$1", "$1::bigint", "1", "'7'", "", "show_id + 0", "a.b.c"] {
        assert!(!is_column(bad), "{bad}");
    }
}
