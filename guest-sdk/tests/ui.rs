//! Compile tests for `#[transform]`: accepted signatures build, rejected ones fail with
//! the message in the matching `.stderr` file (regenerate with `TRYBUILD=overwrite`).

#[test]
fn transform_signatures() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
