//! Twin queries (`SELECT ... FROM devices ...`) and twin conditions (configuration
//! `targetCondition`, job `queryCondition`), evaluated against twin JSON documents.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use crate::ast::{Expr, PathSegment};
use crate::error::{ParseError, Span};
use crate::eval::{Scope, evaluate, walk};
use crate::message::SystemProperty;
use crate::parser::{Dialect, Parser};
use crate::value::{Value, number_to_json};

/// The collection named after `FROM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// `devices`: device twins.
    Devices,
    /// `devices.modules`: module twins (each row carries `deviceId` and `moduleId`).
    Modules,
    /// `devices.jobs`: per-device job rows; only `SELECT *` is allowed.
    Jobs,
}

/// The `x-ms-item-type` of a query's result rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemType {
    /// Full twin documents (`SELECT *` over devices or modules).
    Twin,
    /// Projected or aggregated rows.
    Raw,
    /// Job rows (`SELECT * FROM devices.jobs`).
    DeviceJob,
}

impl ItemType {
    /// The value of the `x-ms-item-type` response header.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Twin => "twin",
            ItemType::Raw => "raw",
            ItemType::DeviceJob => "deviceJob",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectClause {
    /// `SELECT *`.
    All,
    Items(Vec<SelectItem>),
}

/// One entry of a select list with its output property name (the alias, the last path segment,
/// or `$<position>`).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub projection: Projection,
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    Expression(Expr),
    Aggregate(Aggregate),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    Count,
    Average(Vec<PathSegment>),
    Sum(Vec<PathSegment>),
    Minimum(Vec<PathSegment>),
    Maximum(Vec<PathSegment>),
}

/// A parsed twin query. Parse once, execute against any number of twin collections.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    select: SelectClause,
    top: Option<u64>,
    collection: Collection,
    condition: Option<Expr>,
    group_by: Vec<Vec<PathSegment>>,
}

impl Query {
    /// Parses `SELECT [TOP n] (* | items) FROM devices[.modules|.jobs] [WHERE cond] [GROUP BY paths]`.
    pub fn parse(source: &str) -> Result<Query, ParseError> {
        let parsed = Parser::new(source, Dialect::Document)?.parse_query()?;
        Ok(Query {
            select: parsed.select,
            top: parsed.top,
            collection: parsed.collection,
            condition: parsed.condition,
            group_by: parsed.group_by,
        })
    }

    pub fn collection(&self) -> Collection {
        self.collection
    }

    pub fn select(&self) -> &SelectClause {
        &self.select
    }

    pub fn top(&self) -> Option<u64> {
        self.top
    }

    pub fn item_type(&self) -> ItemType {
        match (&self.select, self.collection) {
            (SelectClause::All, Collection::Jobs) => ItemType::DeviceJob,
            (SelectClause::All, _) => ItemType::Twin,
            (SelectClause::Items(_), _) => ItemType::Raw,
        }
    }

    /// True when rows are aggregated (an aggregate in the select list or a `GROUP BY`).
    pub fn is_aggregate(&self) -> bool {
        !self.group_by.is_empty()
            || matches!(&self.select, SelectClause::Items(items)
                if items.iter().any(|item| matches!(item.projection, Projection::Aggregate(_))))
    }

    /// Whether `twin` passes the `WHERE` clause (always true without one).
    pub fn matches(&self, twin: &Json) -> bool {
        self.condition
            .as_ref()
            .is_none_or(|condition| evaluate(condition, &DocumentScope(twin)).is_true())
    }

    /// The twins that pass `WHERE`, limited by `TOP`, for non-aggregate queries. Callers that
    /// page through results can combine this with [`Query::project`] lazily.
    pub fn filter<'q, 't, I>(&'q self, twins: I) -> impl Iterator<Item = &'t Json> + 'q
    where
        I: IntoIterator<Item = &'t Json>,
        I::IntoIter: 'q,
        't: 'q,
    {
        let limit = self
            .top
            .map_or(usize::MAX, |top| usize::try_from(top).unwrap_or(usize::MAX));
        twins
            .into_iter()
            .filter(move |twin| self.matches(twin))
            .take(limit)
    }

    /// The result row for one matching twin of a non-aggregate query: the twin itself for
    /// `SELECT *`, else an object with one property per select item whose value is defined.
    pub fn project(&self, twin: &Json) -> Json {
        let SelectClause::Items(items) = &self.select else {
            return twin.clone();
        };
        let scope = DocumentScope(twin);
        let mut row = Map::new();
        for item in items {
            if let Projection::Expression(expression) = &item.projection
                && let Some(value) = evaluate(expression, &scope).to_json()
            {
                row.insert(item.name.clone(), value);
            }
        }
        Json::Object(row)
    }

    /// Runs the query over `twins` and returns all result rows (after `TOP`).
    pub fn execute<'t, I>(&self, twins: I) -> Vec<Json>
    where
        I: IntoIterator<Item = &'t Json>,
    {
        self.execute_borrowed(twins)
            .into_iter()
            .map(Cow::into_owned)
            .collect()
    }

    /// Like [`Query::execute`], but `SELECT *` rows borrow the input twins instead of cloning
    /// them, which is what a caller that serializes one page at a time wants.
    pub fn execute_borrowed<'t, I>(&self, twins: I) -> Vec<Cow<'t, Json>>
    where
        I: IntoIterator<Item = &'t Json>,
    {
        if self.is_aggregate() {
            return self
                .execute_aggregate(twins)
                .into_iter()
                .map(Cow::Owned)
                .collect();
        }
        match &self.select {
            SelectClause::All => self.filter(twins).map(Cow::Borrowed).collect(),
            SelectClause::Items(_) => self
                .filter(twins)
                .map(|twin| Cow::Owned(self.project(twin)))
                .collect(),
        }
    }

    fn execute_aggregate<'t, I>(&self, twins: I) -> Vec<Json>
    where
        I: IntoIterator<Item = &'t Json>,
    {
        let SelectClause::Items(items) = &self.select else {
            return Vec::new();
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut group_index_by_key: HashMap<String, usize> = HashMap::new();
        if self.group_by.is_empty() {
            // Without GROUP BY there is exactly one row, even over no twins (`COUNT()` is 0).
            groups.push(Group::new(Vec::new(), items));
        }
        for twin in twins {
            if !self.matches(twin) {
                continue;
            }
            let group_index = if self.group_by.is_empty() {
                0
            } else {
                let key_values: Vec<Option<Json>> = self
                    .group_by
                    .iter()
                    .map(|path| walk(twin, path).cloned())
                    .collect();
                let key = group_key(&key_values);
                *group_index_by_key.entry(key).or_insert_with(|| {
                    groups.push(Group::new(key_values, items));
                    groups.len() - 1
                })
            };
            let group = &mut groups[group_index];
            for (accumulator, item) in group.accumulators.iter_mut().zip(items) {
                if let Projection::Aggregate(aggregate) = &item.projection {
                    accumulator.add(aggregate, twin);
                }
            }
        }
        let limit = self
            .top
            .map_or(usize::MAX, |top| usize::try_from(top).unwrap_or(usize::MAX));
        groups
            .into_iter()
            .take(limit)
            .map(|group| self.group_row(group, items))
            .collect()
    }

    fn group_row(&self, group: Group, items: &[SelectItem]) -> Json {
        let mut row = Map::new();
        for (item, accumulator) in items.iter().zip(&group.accumulators) {
            let value = match &item.projection {
                Projection::Aggregate(_) => accumulator.result(),
                Projection::Expression(expression) => match &expression.kind {
                    crate::ast::ExprKind::Property(crate::ast::Property::Document(path)) => self
                        .group_by
                        .iter()
                        .position(|grouped| grouped == path)
                        .and_then(|index| group.key_values.get(index).cloned().flatten()),
                    _ => None,
                },
            };
            if let Some(value) = value {
                row.insert(item.name.clone(), value);
            }
        }
        Json::Object(row)
    }
}

/// A parsed twin condition, such as a configuration `targetCondition` or a job
/// `queryCondition`: the `WHERE` part of a twin query, or `*` for "every twin".
#[derive(Debug, Clone, PartialEq)]
pub struct TwinCondition {
    expression: Option<Expr>,
}

impl TwinCondition {
    pub fn parse(source: &str) -> Result<TwinCondition, ParseError> {
        if source.trim() == "*" {
            return Ok(TwinCondition { expression: None });
        }
        let expression = Parser::new(source, Dialect::Document)?.parse_condition()?;
        Ok(TwinCondition {
            expression: Some(expression),
        })
    }

    /// Only a boolean `true` result matches.
    pub fn matches(&self, twin: &Json) -> bool {
        self.expression
            .as_ref()
            .is_none_or(|expression| evaluate(expression, &DocumentScope(twin)).is_true())
    }
}

pub(crate) struct DocumentScope<'d>(pub(crate) &'d Json);

impl Scope for DocumentScope<'_> {
    fn document(&self) -> Option<&Json> {
        Some(self.0)
    }

    fn application_property(&self, _lowercase_name: &str) -> Option<&str> {
        None
    }

    fn system_property(&self, _property: SystemProperty) -> Option<&str> {
        None
    }

    fn body(&self) -> Option<&Json> {
        None
    }

    fn twin(&self) -> Option<&Json> {
        None
    }
}

struct Group {
    key_values: Vec<Option<Json>>,
    accumulators: Vec<Accumulator>,
}

impl Group {
    fn new(key_values: Vec<Option<Json>>, items: &[SelectItem]) -> Group {
        let accumulators = items
            .iter()
            .map(|item| match &item.projection {
                Projection::Aggregate(Aggregate::Count) => Accumulator::Count(0),
                Projection::Aggregate(Aggregate::Sum(_)) => Accumulator::Sum {
                    total: 0.0,
                    poisoned: false,
                },
                Projection::Aggregate(Aggregate::Average(_)) => Accumulator::Average {
                    total: 0.0,
                    count: 0,
                    poisoned: false,
                },
                Projection::Aggregate(Aggregate::Minimum(_)) => Accumulator::Extreme {
                    best: None,
                    poisoned: false,
                    maximum: false,
                },
                Projection::Aggregate(Aggregate::Maximum(_)) => Accumulator::Extreme {
                    best: None,
                    poisoned: false,
                    maximum: true,
                },
                Projection::Expression(_) => Accumulator::None,
            })
            .collect();
        Group {
            key_values,
            accumulators,
        }
    }
}

/// A running aggregate. Undefined inputs are skipped; any other non-number input makes
/// `SUM`/`AVG`/`MIN`/`MAX` undefined ("poisoned"), so the property is left out of the row.
enum Accumulator {
    None,
    Count(u64),
    Sum {
        total: f64,
        poisoned: bool,
    },
    Average {
        total: f64,
        count: u64,
        poisoned: bool,
    },
    Extreme {
        best: Option<f64>,
        poisoned: bool,
        maximum: bool,
    },
}

impl Accumulator {
    fn add(&mut self, aggregate: &Aggregate, twin: &Json) {
        let path = match aggregate {
            Aggregate::Count => {
                if let Accumulator::Count(count) = self {
                    *count += 1;
                }
                return;
            }
            Aggregate::Average(path)
            | Aggregate::Sum(path)
            | Aggregate::Minimum(path)
            | Aggregate::Maximum(path) => path,
        };
        let number = match Value::from_optional_json(walk(twin, path)) {
            Value::Undefined => return,
            Value::Number(number) => Some(number),
            _ => None,
        };
        match (self, number) {
            (Accumulator::Sum { poisoned, .. }, None)
            | (Accumulator::Average { poisoned, .. }, None)
            | (Accumulator::Extreme { poisoned, .. }, None) => *poisoned = true,
            (Accumulator::Sum { total, .. }, Some(number)) => *total += number,
            (Accumulator::Average { total, count, .. }, Some(number)) => {
                *total += number;
                *count += 1;
            }
            (Accumulator::Extreme { best, maximum, .. }, Some(number)) => {
                let replace = match best {
                    None => true,
                    Some(current) if *maximum => number > *current,
                    Some(current) => number < *current,
                };
                if replace {
                    *best = Some(number);
                }
            }
            _ => {}
        }
    }

    fn result(&self) -> Option<Json> {
        let number = match self {
            Accumulator::None => return None,
            Accumulator::Count(count) => return Some(Json::from(*count)),
            Accumulator::Sum { poisoned: true, .. }
            | Accumulator::Average { poisoned: true, .. }
            | Accumulator::Extreme { poisoned: true, .. } => return None,
            Accumulator::Sum { total, .. } => *total,
            Accumulator::Average { count: 0, .. } => return None,
            Accumulator::Average { total, count, .. } => *total / *count as f64,
            Accumulator::Extreme { best, .. } => (*best)?,
        };
        number.is_finite().then(|| number_to_json(number))
    }
}

/// A hashable key for a group: the JSON text of each key value, with `undefined` marked apart.
fn group_key(values: &[Option<Json>]) -> String {
    let mut key = String::new();
    for value in values {
        match value {
            None => key.push('U'),
            Some(value) => {
                key.push('D');
                key.push_str(&value.to_string());
            }
        }
        key.push('\u{0}');
    }
    key
}
