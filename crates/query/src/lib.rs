//! The IoT Hub query language: twin queries, routing conditions and edge route statements (pure, no I/O).
//!
//! One hand-written lexer and Pratt parser produce one syntax tree, which one evaluator runs in
//! four settings:
//!
//! - [`Query`]: `SELECT ... FROM devices | devices.modules [WHERE ...] [GROUP BY ...]` over twin
//!   JSON documents, returning full twins, projected rows or aggregated rows;
//! - [`TwinCondition`]: the `WHERE` part alone, as used by configuration `targetCondition` and
//!   job `queryCondition`;
//! - [`Condition`]: message-routing conditions over a caller-supplied [`MessageView`] (system
//!   properties, application properties, `$body` and `$twin`), compiled once and evaluated many
//!   times without allocating;
//! - [`Route`]: edge hub route statements `FROM /messages/... [WHERE ...] INTO ...`.
//!
//! **Architecture invariant:** this crate performs no I/O and never panics on any input text;
//! input length ([`MAX_SOURCE_LENGTH`]) and nesting depth ([`MAX_NESTING_DEPTH`]) are bounded.
//! Errors are [`ParseError`]s with a byte [`Span`] and a caret diagram from [`ParseError::render`].
//!
//! Semantics, where IoT Hub's documentation leaves room:
//!
//! - Logic is three-valued. A missing property is `undefined`; a comparison with an undefined,
//!   object or array side is undefined; `NOT undefined` is undefined; `false AND x` is false and
//!   `true OR x` is true for any `x`. Only boolean `true` passes a `WHERE` or routes a message.
//! - `=`/`!=` between primitives of different types are `false`/`true`; `<`, `<=`, `>`, `>=`
//!   order numbers, and strings by code point; other pairs are undefined.
//! - Arithmetic needs numbers and yields undefined on infinity or NaN (e.g. division by zero).
//!   `||` concatenates strings and `??` yields its right side when the left is undefined, as in
//!   the edge hub's grammar.
//! - Twin property names are case-sensitive; keywords, function names and (in routing
//!   conditions) application and system property names are not.
//! - `SUM`/`AVG`/`MIN`/`MAX` skip undefined values; any other non-number makes the aggregate
//!   undefined, and undefined values are left out of result rows.
//!
//! ```
//! use query::{Condition, MessageSource, Query, Route, SimpleMessage, SystemProperty};
//! use serde_json::json;
//!
//! let twins = [json!({"deviceId": "d1", "tags": {"location": {"region": "US"}}})];
//! let query = Query::parse("SELECT deviceId FROM devices WHERE tags.location.region = 'US'")?;
//! assert_eq!(query.execute(&twins), vec![json!({"deviceId": "d1"})]);
//! assert_eq!(query.item_type().as_str(), "raw");
//!
//! let condition = Condition::parse("alert = 'high' AND $connectionDeviceId = 'dev1'")?;
//! let message = SimpleMessage::new()
//!     .with_application_property("Alert", "high")
//!     .with_system_property(SystemProperty::ConnectionDeviceId, "dev1");
//! assert!(condition.evaluate(&message));
//!
//! let route = Route::parse("FROM /messages/modules/sensor/outputs/* INTO $upstream")?;
//! let source = MessageSource::ModuleOutput { device_id: "edge1", module_id: "sensor", output_name: Some("out") };
//! assert!(route.matches(&source, &message));
//!
//! let error = Query::parse("SELECT * FROM devices WHERE").unwrap_err();
//! assert!(error.render("SELECT * FROM devices WHERE").contains('^'));
//! # Ok::<(), query::ParseError>(())
//! ```

#![forbid(unsafe_code)]

pub mod ast;
mod error;
mod eval;
mod functions;
mod fuzz_support;
mod lexer;
mod message;
mod parser;
mod route;
mod twin_query;
mod value;

pub use error::{ParseError, ParseErrorKind, Span};
pub use functions::Function;
#[doc(hidden)]
pub use fuzz_support::fuzz_one_input;
pub use message::{
    Condition, ConditionOutcome, MessageView, SimpleMessage, SystemProperty, decode_json_body,
};
pub use route::{MessageSource, Route, RouteSink, RouteSource};
pub use twin_query::{
    Aggregate, Collection, ItemType, Projection, Query, SelectClause, SelectItem, TwinCondition,
};
pub use value::Value;

/// The longest accepted query, condition or route text, in bytes.
pub const MAX_SOURCE_LENGTH: usize = 128 * 1024;

/// The deepest accepted nesting of parentheses, arrays, calls and unary operators, and the
/// greatest height of an expression tree (`AND`/`OR` chains count once, however long).
pub const MAX_NESTING_DEPTH: usize = 64;
