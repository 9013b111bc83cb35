#![no_main]
//! Arbitrary text as schema JSON, as the registry receives it: an error or
//! a schema, never a panic or a stack overflow. A schema that parses must
//! have a canonical form that parses again to the same form, and must be
//! compatible with itself unless it is beyond the checker's bounds.
//!
//! One exception to the round trip is the Parsing Canonical Form's own: a
//! type in the null namespace (`".Name"`) inside a namespaced one prints
//! as a bare name, which reads back in the enclosing namespace.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(s) = schema::Schema::parse_str(text) else { return };
    let canonical = schema::canonical_form(&s);
    let namespaced = s.named.keys().filter(|n| n.contains('.')).count();
    if namespaced == 0 || namespaced == s.named.len() {
        let again = schema::Schema::parse_str(&canonical).expect("the canonical form parses");
        assert_eq!(schema::canonical_form(&again), canonical);
    }
    let problems = schema::check(&s, &s);
    assert!(
        problems
            .iter()
            .all(|p| p.kind == schema::IncompatibilityKind::TooComplex),
        "a schema must read its own data: {problems:?}"
    );
});
