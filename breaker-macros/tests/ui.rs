//! Compile tests: every accepted form builds, every misuse is an error with
//! the message and span checked in. Regenerate with `TRYBUILD=overwrite`.

#[rustversion::stable]
#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
