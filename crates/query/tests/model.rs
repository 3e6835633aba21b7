//! Property tests: the evaluator against a deliberately naive reference evaluator written here,
//! on random conditions from a small grammar and random twins; and "never panics" on arbitrary
//! text.

use proptest::prelude::*;
use query::{Query, TwinCondition};
use serde_json::{Map, Value, json};

/// A condition in the test's own small grammar.
#[derive(Debug, Clone)]
enum Model {
    Path(&'static str),
    Number(i64),
    Text(&'static str),
    Bool(bool),
    Null,
    Undefined,
    Compare(&'static str, Box<Model>, Box<Model>),
    Arithmetic(&'static str, Box<Model>, Box<Model>),
    And(Box<Model>, Box<Model>),
    Or(Box<Model>, Box<Model>),
    Not(Box<Model>),
    In(bool, Box<Model>, Vec<Model>),
    IsDefined(Box<Model>),
    Lower(Box<Model>),
    StartsWith(Box<Model>, Box<Model>),
}

/// The reference evaluator's values; `Other` stands for objects and arrays.
#[derive(Debug, Clone, PartialEq)]
enum Naive {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    Other,
}

const PATHS: &[&str] = &[
    "deviceId",
    "tags.a",
    "tags.b",
    "tags.n",
    "tags.missing",
    "tags",
    "properties.reported.x",
    "properties.reported.s",
];
const TEXTS: &[&str] = &["", "a", "A", "ab", "US", "eu"];

fn render(model: &Model) -> String {
    match model {
        Model::Path(path) => path.to_string(),
        Model::Number(number) if *number < 0 => format!("({number})"),
        Model::Number(number) => number.to_string(),
        Model::Text(text) => format!("'{text}'"),
        Model::Bool(flag) => flag.to_string(),
        Model::Null => "null".to_string(),
        Model::Undefined => "undefined".to_string(),
        Model::Compare(operator, left, right) | Model::Arithmetic(operator, left, right) => {
            format!("({} {operator} {})", render(left), render(right))
        }
        Model::And(left, right) => format!("({} AND {})", render(left), render(right)),
        Model::Or(left, right) => format!("({} or {})", render(left), render(right)),
        Model::Not(inner) => format!("(NOT {})", render(inner)),
        Model::In(negated, needle, items) => format!(
            "({} {} [{}])",
            render(needle),
            if *negated { "NIN" } else { "IN" },
            items.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        Model::IsDefined(inner) => format!("is_defined({})", render(inner)),
        Model::Lower(inner) => format!("LOWER({})", render(inner)),
        Model::StartsWith(text, prefix) => {
            format!("StartsWith({}, {})", render(text), render(prefix))
        }
    }
}

fn lookup(twin: &Value, path: &str) -> Naive {
    let pointer = format!("/{}", path.replace('.', "/"));
    match twin.pointer(&pointer) {
        None => Naive::Undefined,
        Some(Value::Null) => Naive::Null,
        Some(Value::Bool(flag)) => Naive::Bool(*flag),
        Some(Value::Number(number)) => Naive::Number(number.as_f64().unwrap_or(f64::NAN)),
        Some(Value::String(text)) => Naive::Text(text.clone()),
        Some(_) => Naive::Other,
    }
}

fn naive_equals(left: &Naive, right: &Naive) -> Naive {
    match (left, right) {
        (Naive::Undefined | Naive::Other, _) | (_, Naive::Undefined | Naive::Other) => {
            Naive::Undefined
        }
        (Naive::Null, Naive::Null) => Naive::Bool(true),
        (Naive::Bool(left), Naive::Bool(right)) => Naive::Bool(left == right),
        (Naive::Number(left), Naive::Number(right)) => Naive::Bool(left == right),
        (Naive::Text(left), Naive::Text(right)) => Naive::Bool(left == right),
        _ => Naive::Bool(false),
    }
}

fn naive(model: &Model, twin: &Value) -> Naive {
    match model {
        Model::Path(path) => lookup(twin, path),
        Model::Number(number) => Naive::Number(*number as f64),
        Model::Text(text) => Naive::Text(text.to_string()),
        Model::Bool(flag) => Naive::Bool(*flag),
        Model::Null => Naive::Null,
        Model::Undefined => Naive::Undefined,
        Model::Compare(operator, left, right) => {
            let left = naive(left, twin);
            let right = naive(right, twin);
            match *operator {
                "=" => naive_equals(&left, &right),
                "!=" => match naive_equals(&left, &right) {
                    Naive::Bool(flag) => Naive::Bool(!flag),
                    other => other,
                },
                _ => {
                    let ordering = match (&left, &right) {
                        (Naive::Number(left), Naive::Number(right)) => left.partial_cmp(right),
                        (Naive::Text(left), Naive::Text(right)) => Some(left.cmp(right)),
                        _ => None,
                    };
                    match ordering {
                        None => Naive::Undefined,
                        Some(ordering) => Naive::Bool(match *operator {
                            "<" => ordering.is_lt(),
                            "<=" => ordering.is_le(),
                            ">" => ordering.is_gt(),
                            _ => ordering.is_ge(),
                        }),
                    }
                }
            }
        }
        Model::Arithmetic(operator, left, right) => match (naive(left, twin), naive(right, twin)) {
            (Naive::Number(left), Naive::Number(right)) => {
                let result = match *operator {
                    "+" => left + right,
                    "-" => left - right,
                    "*" => left * right,
                    "/" => left / right,
                    _ => left % right,
                };
                if result.is_finite() {
                    Naive::Number(result)
                } else {
                    Naive::Undefined
                }
            }
            _ => Naive::Undefined,
        },
        Model::And(left, right) => match (naive(left, twin), naive(right, twin)) {
            (Naive::Bool(false), _) | (_, Naive::Bool(false)) => Naive::Bool(false),
            (Naive::Bool(true), Naive::Bool(true)) => Naive::Bool(true),
            _ => Naive::Undefined,
        },
        Model::Or(left, right) => match (naive(left, twin), naive(right, twin)) {
            (Naive::Bool(true), _) | (_, Naive::Bool(true)) => Naive::Bool(true),
            (Naive::Bool(false), Naive::Bool(false)) => Naive::Bool(false),
            _ => Naive::Undefined,
        },
        Model::Not(inner) => match naive(inner, twin) {
            Naive::Bool(flag) => Naive::Bool(!flag),
            _ => Naive::Undefined,
        },
        Model::In(negated, needle, items) => {
            let needle = naive(needle, twin);
            if matches!(needle, Naive::Undefined | Naive::Other) {
                return Naive::Undefined;
            }
            let found = items
                .iter()
                .any(|item| naive_equals(&needle, &naive(item, twin)) == Naive::Bool(true));
            Naive::Bool(found != *negated)
        }
        Model::IsDefined(inner) => Naive::Bool(naive(inner, twin) != Naive::Undefined),
        Model::Lower(inner) => match naive(inner, twin) {
            Naive::Text(text) => Naive::Text(text.to_lowercase()),
            _ => Naive::Undefined,
        },
        Model::StartsWith(text, prefix) => match (naive(text, twin), naive(prefix, twin)) {
            (Naive::Text(text), Naive::Text(prefix)) => Naive::Bool(text.starts_with(&prefix)),
            _ => Naive::Undefined,
        },
    }
}

/// Converts a projected JSON value back to the reference representation.
fn from_projection(value: Option<&Value>) -> Naive {
    match value {
        None => Naive::Undefined,
        Some(Value::Null) => Naive::Null,
        Some(Value::Bool(flag)) => Naive::Bool(*flag),
        Some(Value::Number(number)) => Naive::Number(number.as_f64().unwrap_or(f64::NAN)),
        Some(Value::String(text)) => Naive::Text(text.clone()),
        Some(_) => Naive::Other,
    }
}

fn leaf() -> impl Strategy<Value = Model> {
    prop_oneof![
        3 => prop::sample::select(PATHS).prop_map(Model::Path),
        2 => (-3_i64..4).prop_map(Model::Number),
        2 => prop::sample::select(TEXTS).prop_map(Model::Text),
        1 => any::<bool>().prop_map(Model::Bool),
        1 => Just(Model::Null),
        1 => Just(Model::Undefined),
    ]
}

fn model() -> impl Strategy<Value = Model> {
    leaf().prop_recursive(5, 48, 4, |inner| {
        let boxed = || inner.clone().prop_map(Box::new);
        prop_oneof![
            (
                prop::sample::select(&["=", "!=", "<", "<=", ">", ">="][..]),
                boxed(),
                boxed()
            )
                .prop_map(|(operator, left, right)| Model::Compare(operator, left, right)),
            (
                prop::sample::select(&["+", "-", "*", "/", "%"][..]),
                boxed(),
                boxed()
            )
                .prop_map(|(operator, left, right)| Model::Arithmetic(operator, left, right)),
            (boxed(), boxed()).prop_map(|(left, right)| Model::And(left, right)),
            (boxed(), boxed()).prop_map(|(left, right)| Model::Or(left, right)),
            boxed().prop_map(Model::Not),
            (any::<bool>(), boxed(), prop::collection::vec(leaf(), 0..4))
                .prop_map(|(negated, needle, items)| Model::In(negated, needle, items)),
            boxed().prop_map(Model::IsDefined),
            boxed().prop_map(Model::Lower),
            (boxed(), boxed()).prop_map(|(text, prefix)| Model::StartsWith(text, prefix)),
        ]
    })
}

fn scalar() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Value::Null)),
        1 => any::<bool>().prop_map(|flag| Some(json!(flag))),
        2 => (-3_i64..4).prop_map(|number| Some(json!(number))),
        1 => (-30_i64..30).prop_map(|tenths| Some(json!(tenths as f64 / 10.0))),
        2 => prop::sample::select(TEXTS).prop_map(|text| Some(json!(text))),
        1 => Just(Some(json!([1, "a"]))),
    ]
}

fn twin() -> impl Strategy<Value = Value> {
    (
        0_u32..1000,
        scalar(),
        scalar(),
        scalar(),
        scalar(),
        scalar(),
    )
        .prop_map(|(id, a, b, n, x, s)| {
            let mut tags = Map::new();
            let mut reported = Map::new();
            for (key, value) in [("a", a), ("b", b), ("n", n)] {
                if let Some(value) = value {
                    tags.insert(key.to_string(), value);
                }
            }
            for (key, value) in [("x", x), ("s", s)] {
                if let Some(value) = value {
                    reported.insert(key.to_string(), value);
                }
            }
            json!({
                "deviceId": format!("d{id}"),
                "status": "enabled",
                "tags": tags,
                "properties": {"desired": {"$version": 1}, "reported": reported}
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn evaluator_agrees_with_naive_model(condition in model(), twin in twin()) {
        let text = render(&condition);
        let expected = naive(&condition, &twin);

        let parsed = TwinCondition::parse(&text).map_err(|error| TestCaseError::fail(error.render(&text)))?;
        prop_assert_eq!(parsed.matches(&twin), expected == Naive::Bool(true), "condition {}", text);

        let query_text = format!("SELECT {text} AS v FROM devices");
        let query = Query::parse(&query_text).map_err(|error| TestCaseError::fail(error.render(&query_text)))?;
        let row = query.project(&twin);
        prop_assert_eq!(from_projection(row.get("v")), expected, "projection {}", text);
    }

    #[test]
    fn query_execution_agrees_with_naive_filter(
        condition in model(),
        twins in prop::collection::vec(twin(), 0..12),
        top in prop::option::of(0_u64..8),
    ) {
        let text = render(&condition);
        let top_clause = top.map(|top| format!("TOP {top} ")).unwrap_or_default();
        let query_text = format!("SELECT {top_clause}deviceId FROM devices WHERE {text}");
        let query = Query::parse(&query_text).map_err(|error| TestCaseError::fail(error.render(&query_text)))?;
        let actual: Vec<Value> = query.execute(&twins);
        let expected: Vec<Value> = twins
            .iter()
            .filter(|twin| naive(&condition, twin) == Naive::Bool(true))
            .take(top.map_or(usize::MAX, |top| top as usize))
            .map(|twin| json!({"deviceId": twin["deviceId"]}))
            .collect();
        prop_assert_eq!(actual, expected);

        let count_text = format!("SELECT COUNT() AS n FROM devices WHERE {text}");
        let count = Query::parse(&count_text).map_err(|error| TestCaseError::fail(error.render(&count_text)))?;
        let matching = twins.iter().filter(|twin| naive(&condition, twin) == Naive::Bool(true)).count();
        prop_assert_eq!(count.execute(&twins), vec![json!({"n": matching})]);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        query::fuzz_one_input(text.as_bytes());
    }

    #[test]
    fn mutated_valid_queries_never_panic(condition in model(), cut in 0_usize..400, insert in ".{0,3}") {
        let text = format!("SELECT * FROM devices WHERE {}", render(&condition));
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mutated = format!("{}{insert}{}", &text[..cut], &text[cut..]);
        query::fuzz_one_input(mutated.as_bytes());
    }
}
