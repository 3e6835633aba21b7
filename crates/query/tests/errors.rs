//! Parse errors: every kind renders a caret diagram at the right span, and the limits on input
//! length and nesting depth are errors rather than crashes.

use expect_test::{Expect, expect};
use query::{Condition, MAX_NESTING_DEPTH, MAX_SOURCE_LENGTH, ParseErrorKind, Query};

fn check(query: &str, expect: Expect) {
    let rendered = match Query::parse(query) {
        Ok(_) => "parsed\n".to_string(),
        Err(error) => error.render(query),
    };
    expect.assert_eq(&rendered);
}

#[test]
fn syntax_errors_render_caret_diagrams() {
    check(
        "SELECT * FROM devices WHERE",
        expect![[r#"
            error: expected expression, found end of input
             --> 1:28
              |
            1 | SELECT * FROM devices WHERE
              |                            ^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.x = 'unterminated",
        expect![[r#"
            error: unterminated string literal
             --> 1:38
              |
            1 | SELECT * FROM devices WHERE tags.x = 'unterminated
              |                                      ^^^^^^^^^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.x = 'bad \\q escape'",
        expect![[r#"
            error: invalid escape sequence in string literal
             --> 1:43
              |
            1 | SELECT * FROM devices WHERE tags.x = 'bad \q escape'
              |                                           ^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.x = '\\ud800'",
        expect![[r#"
            error: invalid escape sequence in string literal
             --> 1:39
              |
            1 | SELECT * FROM devices WHERE tags.x = '\ud800'
              |                                       ^^^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.x = 12abc",
        expect![[r#"
            error: invalid number literal
             --> 1:38
              |
            1 | SELECT * FROM devices WHERE tags.x = 12abc
              |                                      ^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.x = 0x",
        expect![[r#"
            error: invalid number literal
             --> 1:38
              |
            1 | SELECT * FROM devices WHERE tags.x = 0x
              |                                      ^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.x # 1",
        expect![[r#"
            error: unexpected character '#'
             --> 1:36
              |
            1 | SELECT * FROM devices WHERE tags.x # 1
              |                                    ^
        "#]],
    );
    check(
        "SELECT * FROM devices /* never closed",
        expect![[r#"
            error: unterminated comment
             --> 1:23
              |
            1 | SELECT * FROM devices /* never closed
              |                       ^^^^^^^^^^^^^^^
        "#]],
    );
    check(
        "SELECT *\nFROM devices\nWHERE (tags.x = 1",
        expect![[r#"
            error: expected `)`, found end of input
             --> 3:18
              |
            3 | WHERE (tags.x = 1
              |                  ^
        "#]],
    );
    check(
        "SELECT * FROM things",
        expect![[r#"
            error: expected `devices`, `devices.modules` or `devices.jobs`, found `things`
             --> 1:15
              |
            1 | SELECT * FROM things
              |               ^^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices.configurations",
        expect![[r#"
            error: expected `modules` or `jobs`, found `configurations`
             --> 1:23
              |
            1 | SELECT * FROM devices.configurations
              |                       ^^^^^^^^^^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.x = 1 tags.y = 2",
        expect![[r#"
            error: expected an operator, `GROUP BY` or end of input, found `tags`
             --> 1:40
              |
            1 | SELECT * FROM devices WHERE tags.x = 1 tags.y = 2
              |                                        ^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.x = €",
        expect![[r#"
            error: unexpected character '€'
             --> 1:38
              |
            1 | SELECT * FROM devices WHERE tags.x = €
              |                                      ^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.['x'] = 1",
        expect![[r#"
            error: expected property name after `.`, found `[`
             --> 1:34
              |
            1 | SELECT * FROM devices WHERE tags.['x'] = 1
              |                                  ^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE tags.list[-1] = 1",
        expect![[r#"
            error: expected array index or quoted property name, found `-`
             --> 1:39
              |
            1 | SELECT * FROM devices WHERE tags.list[-1] = 1
              |                                       ^
        "#]],
    );
}

#[test]
fn semantic_errors() {
    check(
        "SELECT deviceId, COUNT() AS n FROM devices",
        expect![[r#"
            error: a plain projection cannot be mixed with aggregates without GROUP BY
             --> 1:8
              |
            1 | SELECT deviceId, COUNT() AS n FROM devices
              |        ^^^^^^^^
        "#]],
    );
    check(
        "SELECT deviceId, COUNT() AS n FROM devices GROUP BY status",
        expect![[r#"
            error: a projection next to aggregates must be one of the GROUP BY paths
             --> 1:8
              |
            1 | SELECT deviceId, COUNT() AS n FROM devices GROUP BY status
              |        ^^^^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices GROUP BY status",
        expect![[r#"
            error: GROUP BY cannot be used with SELECT *
             --> 1:23
              |
            1 | SELECT * FROM devices GROUP BY status
              |                       ^^^^^^^^^^^^^^^
        "#]],
    );
    check(
        "SELECT deviceId FROM devices.jobs",
        expect![[r#"
            error: devices.jobs supports only SELECT *
             --> 1:8
              |
            1 | SELECT deviceId FROM devices.jobs
              |        ^^^^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE COUNT() > 1",
        expect![[r#"
            error: aggregate `COUNT` is only allowed in a SELECT list
             --> 1:29
              |
            1 | SELECT * FROM devices WHERE COUNT() > 1
              |                             ^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE frobnicate(tags.x)",
        expect![[r#"
            error: unknown function `frobnicate`
             --> 1:29
              |
            1 | SELECT * FROM devices WHERE frobnicate(tags.x)
              |                             ^^^^^^^^^^
        "#]],
    );
    check(
        "SELECT * FROM devices WHERE SUBSTRING('a', 1, 2, 3) = 'a'",
        expect![[r#"
            error: function `SUBSTRING` takes 2 or 3 arguments, found 4
             --> 1:29
              |
            1 | SELECT * FROM devices WHERE SUBSTRING('a', 1, 2, 3) = 'a'
              |                             ^^^^^^^^^^^^^^^^^^^^^^^
        "#]],
    );
    check(
        "SELECT TOP 1.5 * FROM devices",
        expect![[r#"
            error: TOP needs a non-negative integer
             --> 1:12
              |
            1 | SELECT TOP 1.5 * FROM devices
              |            ^^^
        "#]],
    );
}

#[test]
fn nesting_depth_is_bounded() {
    let nested_parentheses = format!(
        "{}1{}",
        "(".repeat(MAX_NESTING_DEPTH),
        ")".repeat(MAX_NESTING_DEPTH)
    );
    assert!(Condition::parse(&nested_parentheses).is_ok());
    let too_deep = format!(
        "{}1{}",
        "(".repeat(MAX_NESTING_DEPTH + 1),
        ")".repeat(MAX_NESTING_DEPTH + 1)
    );
    let error = Condition::parse(&too_deep).expect_err("too deep");
    assert_eq!(
        error.kind,
        ParseErrorKind::TooDeep {
            limit: MAX_NESTING_DEPTH
        }
    );

    let many_nots = format!("{}true", "NOT ".repeat(30_000));
    let error = Condition::parse(&many_nots).expect_err("too deep");
    assert_eq!(
        error.kind,
        ParseErrorKind::TooDeep {
            limit: MAX_NESTING_DEPTH
        }
    );

    let long_arithmetic_chain = format!("1{}", " + 1".repeat(10_000));
    let error = Condition::parse(&long_arithmetic_chain).expect_err("too tall");
    assert_eq!(
        error.kind,
        ParseErrorKind::TooDeep {
            limit: MAX_NESTING_DEPTH
        }
    );

    // Long AND/OR chains are flattened, so realistic device lists stay well within the limit.
    let long_or_chain = (0..5_000)
        .map(|index| format!("deviceId = 'd{index}'"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert!(Query::parse(&format!("SELECT * FROM devices WHERE {long_or_chain}")).is_ok());
    let long_in_list = (0..5_000)
        .map(|index| format!("'d{index}'"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(
        Query::parse(&format!(
            "SELECT * FROM devices WHERE deviceId IN [{long_in_list}]"
        ))
        .is_ok()
    );
}

#[test]
fn input_length_is_bounded() {
    let too_long = format!(
        "SELECT * FROM devices WHERE tags.x = '{}'",
        "a".repeat(MAX_SOURCE_LENGTH)
    );
    let error = Query::parse(&too_long).expect_err("too long");
    assert!(matches!(error.kind, ParseErrorKind::InputTooLong { .. }));
    assert!(error.render(&too_long).starts_with("error: input is"));
}

#[test]
fn render_clamps_spans() {
    let error = Query::parse("SELECT * FROM devices WHERE tags.x = 'é").expect_err("unterminated");
    let mut shifted = error.clone();
    shifted.span.start += 2;
    shifted.span.end += 100;
    expect![[r#"
        error: unterminated string literal
         --> 1:39
          |
        1 | SELECT * FROM devices WHERE tags.x = 'é
          |                                       ^
    "#]]
    .assert_eq(&shifted.render("SELECT * FROM devices WHERE tags.x = 'é"));
}
