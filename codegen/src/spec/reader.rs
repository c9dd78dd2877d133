//! A typed, schema-checking walk over a TOML document that keeps spans.
//!
//! Each getter records the key as known; `finish` then reports every key that no
//! getter asked for. Problems are collected, never thrown, so a run reports all of
//! them at once and no input can make the loader panic.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::{closest, Diagnostic, Loc, SourceFile};

/// A value with the place it came from.
#[derive(Clone, Debug)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Where it is written.
    pub loc: Loc,
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Shared state of one file's walk: the file and the problems found so far.
pub struct Cx<'d> {
    pub(crate) file: Arc<SourceFile>,
    pub(crate) diags: &'d RefCell<Vec<Diagnostic>>,
}

impl Cx<'_> {
    pub(crate) fn loc(&self, span: Range<usize>) -> Loc {
        Loc {
            file: self.file.clone(),
            span,
        }
    }

    pub(crate) fn push(&self, d: Diagnostic) {
        self.diags.borrow_mut().push(d);
    }
}

/// One TOML table under a schema.
pub struct Table<'a, 'i, 'd> {
    cx: &'a Cx<'d>,
    table: &'a DeTable<'i>,
    span: Range<usize>,
    /// How the table is named in messages, e.g. `[[member]]`.
    what: String,
    known: RefCell<Vec<&'static str>>,
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i, 'd> Table<'a, 'i, 'd> {
    pub(crate) fn new(
        cx: &'a Cx<'d>,
        table: &'a DeTable<'i>,
        span: Range<usize>,
        what: impl Into<String>,
    ) -> Self {
        Table {
            cx,
            table,
            span,
            what: what.into(),
            known: RefCell::new(Vec::new()),
        }
    }

    /// The place of the whole table.
    pub fn loc(&self) -> Loc {
        self.cx.loc(self.span.clone())
    }

    /// The walk's context.
    pub fn cx(&self) -> &'a Cx<'d> {
        self.cx
    }

    fn raw(&self, key: &'static str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.known.borrow_mut().push(key);
        self.table.get(key)
    }

    fn wrong_type(&self, key: &str, v: &Spanned<DeValue<'_>>, want: &str, example: &str) {
        self.cx.push(
            self.cx
                .loc(v.span())
                .error(format!(
                    "`{key}` in {} must be {want}, not {}",
                    self.what,
                    type_name(v.get_ref())
                ))
                .hint(format!("write it as {key} = {example}")),
        );
    }

    fn missing(&self, key: &str, example: &str) {
        self.cx.push(
            self.loc()
                .error(format!("{} has no `{key}`", self.what))
                .hint(format!("add {key} = {example}")),
        );
    }

    /// Whether the key is present (does not mark it as known).
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// An optional string.
    pub fn str_opt(&self, key: &'static str) -> Option<Sp<String>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Sp {
                value: s.to_string(),
                loc: self.cx.loc(v.span()),
            }),
            _ => {
                self.wrong_type(key, v, "a string", "\"...\"");
                None
            }
        }
    }

    /// A required string.
    pub fn str_req(&self, key: &'static str) -> Option<Sp<String>> {
        let present = self.table.contains_key(key);
        let v = self.str_opt(key);
        if !present {
            self.missing(key, "\"...\"");
        }
        v
    }

    /// An optional non-negative integer that fits a `u32`.
    pub fn u32_opt(&self, key: &'static str) -> Option<Sp<u32>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                match u32::from_str_radix(&digits, i.radix()) {
                    Ok(n) => Some(Sp {
                        value: n,
                        loc: self.cx.loc(v.span()),
                    }),
                    Err(_) => {
                        self.cx.push(
                            self.cx
                                .loc(v.span())
                                .error(format!(
                                    "`{key}` in {} must be from 0 to {}",
                                    self.what,
                                    u32::MAX
                                ))
                                .hint(format!("write it as {key} = 127")),
                        );
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(key, v, "an integer", "127");
                None
            }
        }
    }

    /// An optional boolean.
    pub fn bool_opt(&self, key: &'static str) -> Option<Sp<bool>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(Sp {
                value: *b,
                loc: self.cx.loc(v.span()),
            }),
            _ => {
                self.wrong_type(key, v, "a boolean", "true");
                None
            }
        }
    }

    /// An optional list of strings.
    pub fn str_list(&self, key: &'static str) -> Vec<Sp<String>> {
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(key, v, "an array of strings", "[\"...\"]");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Sp {
                    value: s.to_string(),
                    loc: self.cx.loc(item.span()),
                }),
                _ => self.wrong_type(key, item, "an array of strings", "[\"...\"]"),
            }
        }
        out
    }

    /// An optional sub-table (`[key]` or `key = { ... }`).
    pub fn table_opt(&self, key: &'static str) -> Option<Table<'a, 'i, 'd>> {
        let v = self.raw(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(self.cx, t, v.span(), format!("[{key}]"))),
            _ => {
                self.wrong_type(key, v, "a table", "{ ... }");
                None
            }
        }
    }

    /// A required sub-table.
    pub fn table_req(&self, key: &'static str) -> Option<Table<'a, 'i, 'd>> {
        let present = self.table.contains_key(key);
        let t = self.table_opt(key);
        if !present {
            self.cx.push(
                self.loc()
                    .error(format!("{} has no [{key}] table", self.what))
                    .hint(format!("add a [{key}] table")),
            );
        }
        t
    }

    /// An optional array of tables (`[[key]]` or `key = [{ ... }, ...]`).
    pub fn tables(&self, key: &'static str) -> Vec<Table<'a, 'i, 'd>> {
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(key, v, "an array of tables", "[{ ... }]");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => {
                    out.push(Table::new(self.cx, t, item.span(), format!("[[{key}]]")))
                }
                _ => self.wrong_type(key, item, "an array of tables", "[{ ... }]"),
            }
        }
        out
    }

    /// Reports every key of the table that no getter asked for.
    pub fn finish(&self) {
        let known = self.known.borrow();
        for (k, _) in self.table.iter() {
            let key: &str = k.get_ref();
            if known.contains(&key) {
                continue;
            }
            let hint = match closest(key, known.iter().copied()) {
                Some(c) => format!("did you mean `{c}`?"),
                None if known.is_empty() => format!("{} takes no keys", self.what),
                None => format!("{} takes: {}", self.what, known.join(", ")),
            };
            self.cx.push(
                self.cx
                    .loc(k.span())
                    .error(format!("unknown key `{key}` in {}", self.what))
                    .hint(hint),
            );
        }
    }
}
