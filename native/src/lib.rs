//! Columns of a block of JSON lines, one row per line, for slicewatch's decoder.
//!
//! `read_block(block, schema)` parses every line of `block` with serde_json (strict RFC 8259:
//! no `NaN`, no trailing junk, correctly rounded floats) straight into column builders,
//! without the GIL and without a Python object per value, and returns the columns as Arrow
//! buffers (`monitor/ingest/native_block.py` wraps them into a `pyarrow.Table`). It builds
//! what Arrow's own JSON reader builds for the same block, and nothing else: types are
//! inferred the way Arrow infers them (null, bool, int64, double, string, struct, a list of
//! scalars; fields in order of first appearance; an int64 field that meets a float becomes
//! double) or fixed by the
//! schema the caller gives. Whatever Arrow might read another way, or that this reader does
//! not model, makes it return `None` and the caller reads the block with Arrow: a list of
//! lists or objects, a
//! value that changes kind, duplicate keys, an integer beyond int64, `-0.0`, a string that
//! could be a date (Arrow infers timestamps), an empty object, anything that is not one
//! object per line.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Str,
    Struct,
    List,
}

/// One column being built: its kind, whether the caller fixed it, and its values so far
/// (`len` rows; a row not reached yet is filled with a null when the next value or the end
/// of the block comes).
struct Node {
    kind: Kind,
    given: bool,
    len: usize,
    valid: Vec<bool>,
    bools: Vec<bool>,
    ints: Vec<i64>,
    floats: Vec<f64>,
    offsets: Vec<i32>,
    text: Vec<u8>,
    names: Vec<String>,
    children: Vec<Node>,
    index: HashMap<String, usize>,
    cursor: usize,
}

type Irregular = &'static str;

impl Node {
    fn new(kind: Kind, given: bool) -> Node {
        Node {
            kind,
            given,
            len: 0,
            valid: Vec::new(),
            bools: Vec::new(),
            ints: Vec::new(),
            floats: Vec::new(),
            offsets: vec![0],
            text: Vec::new(),
            names: Vec::new(),
            children: Vec::new(),
            index: HashMap::new(),
            cursor: 0,
        }
    }

    /// Nulls up to `row` (exclusive).
    fn pad(&mut self, row: usize) {
        if self.len >= row {
            return;
        }
        match self.kind {
            Kind::Null | Kind::Struct => {}
            Kind::Bool => self.bools.resize(row, false),
            Kind::Int => self.ints.resize(row, 0),
            Kind::Float => self.floats.resize(row, 0.0),
            Kind::Str | Kind::List => {
                let last = *self.offsets.last().unwrap();
                self.offsets.resize(row + 1, last);
            }
        }
        if self.kind != Kind::Null {
            self.valid.resize(row, false);
        }
        self.len = row;
    }

    /// Ready for the value of `row`: nulls before it; a second value for it is a duplicate key.
    fn start(&mut self, row: usize) -> Result<(), Irregular> {
        if self.len > row {
            return Err("a key twice in one object");
        }
        self.pad(row);
        Ok(())
    }

    /// From all-null so far to `kind` (the rows so far null).
    fn become_kind(&mut self, kind: Kind) {
        let n = self.len;
        self.kind = kind;
        self.valid = vec![false; n];
        match kind {
            Kind::Bool => self.bools = vec![false; n],
            Kind::Int => self.ints = vec![0; n],
            Kind::Float => self.floats = vec![0.0; n],
            Kind::Str => self.offsets = vec![0; n + 1],
            Kind::List => {
                self.offsets = vec![0; n + 1];
                self.add_child("item".to_owned(), Node::new(Kind::Null, false));
            }
            Kind::Null | Kind::Struct => {}
        }
    }

    /// The kind for a value of `kind` (a null column takes it; else it must be the same).
    fn accept(&mut self, kind: Kind) -> Result<(), Irregular> {
        if self.kind == Kind::Null && !self.given {
            self.become_kind(kind);
        } else if self.kind != kind {
            return Err("a value of another kind");
        }
        Ok(())
    }

    fn null(&mut self, row: usize) -> Result<(), Irregular> {
        self.start(row)?;
        self.pad(row + 1);
        Ok(())
    }

    fn boolean(&mut self, row: usize, v: bool) -> Result<(), Irregular> {
        self.start(row)?;
        self.accept(Kind::Bool)?;
        self.bools.push(v);
        self.done()
    }

    fn int(&mut self, row: usize, v: i64) -> Result<(), Irregular> {
        self.start(row)?;
        if self.kind == Kind::Float {
            self.floats.push(v as f64); // round to nearest, as Arrow's parse of the digits
        } else {
            self.accept(Kind::Int)?;
            self.ints.push(v);
        }
        self.done()
    }

    fn float(&mut self, row: usize, v: f64) -> Result<(), Irregular> {
        if v == 0.0 && v.is_sign_negative() {
            return Err("-0"); // serde_json reads the integer -0 as -0.0; Arrow as int64 0
        }
        self.start(row)?;
        if self.kind == Kind::Int && !self.given {
            self.floats = self.ints.iter().map(|&i| i as f64).collect();
            self.ints = Vec::new();
            self.kind = Kind::Float;
        }
        self.accept(Kind::Float)?;
        self.floats.push(v);
        self.done()
    }

    fn string(&mut self, row: usize, v: &str) -> Result<(), Irregular> {
        self.start(row)?;
        if !self.given && may_be_time(v.as_bytes()) {
            return Err("a string Arrow may read as a timestamp");
        }
        self.accept(Kind::Str)?;
        self.text.extend_from_slice(v.as_bytes());
        let end = i32::try_from(self.text.len()).map_err(|_| "text over 2 GiB")?;
        self.offsets.push(end);
        self.done()
    }

    /// A list's row closed at the item column's length.
    fn close_list(&mut self) -> Result<(), Irregular> {
        let end = i32::try_from(self.children[0].len).map_err(|_| "a list column over 2**31")?;
        self.offsets.push(end);
        self.done()
    }

    fn open_struct(&mut self, row: usize) -> Result<(), Irregular> {
        self.start(row)?;
        self.accept(Kind::Struct)?;
        self.done()
    }

    /// The value of the row is in: valid, one row more.
    fn done(&mut self) -> Result<(), Irregular> {
        self.valid.push(true);
        self.len += 1;
        Ok(())
    }

    fn has_nulls(&self) -> bool {
        if self.kind == Kind::Null {
            self.len > 0
        } else {
            self.valid.iter().any(|&v| !v)
        }
    }

    fn find(&self, key: &str) -> Option<usize> {
        if self.cursor < self.names.len() && self.names[self.cursor] == key {
            return Some(self.cursor); // the keys of most records come in the same order
        }
        self.index.get(key).copied()
    }

    fn add_child(&mut self, name: String, child: Node) -> usize {
        let i = self.children.len();
        self.index.insert(name.clone(), i);
        self.names.push(name);
        self.children.push(child);
        i
    }

    /// Every column `n` rows long.
    fn finish(&mut self, n: usize) -> Result<(), Irregular> {
        self.pad(n);
        if self.kind == Kind::Struct && self.children.is_empty() {
            return Err("an empty object");
        }
        let list = self.kind == Kind::List;
        if list && self.children[0].has_nulls() {
            // Arrow 26's reader builds wrong or invalid arrays for a null inside a list
            return Err("a null inside a list");
        }
        for child in &mut self.children {
            let rows = if list { child.len } else { n }; // a list's items: their own rows
            child.finish(rows)?;
        }
        Ok(())
    }
}

/// Whether Arrow's inference could take the string for a timestamp (ISO 8601 starts with a
/// four-digit year and a dash): such a column is left to Arrow.
fn may_be_time(s: &[u8]) -> bool {
    s.len() >= 5 && s[..4].iter().all(u8::is_ascii_digit) && s[4] == b'-'
}

enum Key {
    Known(usize),
    New(String),
}

struct KeySeed<'a> {
    node: &'a Node,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match self.node.find(key) {
            Some(i) => Key::Known(i),
            None => Key::New(key.to_owned()),
        })
    }
}

struct ValueSeed<'a> {
    node: &'a mut Node,
    row: usize,
    in_list: bool,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

fn irregular<E: de::Error>(why: Irregular) -> E {
    E::custom(why)
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.node.null(self.row).map_err(irregular)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.node.boolean(self.row, v).map_err(irregular)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.node.int(self.row, v).map_err(irregular)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let v = i64::try_from(v).map_err(|_| irregular("an integer beyond int64"))?;
        self.node.int(self.row, v).map_err(irregular)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.node.float(self.row, v).map_err(irregular)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.node.string(self.row, v).map_err(irregular)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.in_list {
            return Err(irregular("a list in a list"));
        }
        let node = self.node;
        node.start(self.row).map_err(irregular)?;
        node.accept(Kind::List).map_err(irregular)?;
        loop {
            let item = &mut node.children[0];
            let row = item.len;
            if seq.next_element_seed(ValueSeed { node: item, row, in_list: true })?.is_none() {
                break;
            }
        }
        node.close_list().map_err(irregular)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.in_list {
            return Err(irregular("an object in a list"));
        }
        let (node, row) = (self.node, self.row);
        node.open_struct(row).map_err(irregular)?;
        while let Some(key) = map.next_key_seed(KeySeed { node: &*node })? {
            let i = match key {
                Key::Known(i) => i,
                Key::New(name) => node.add_child(name, Node::new(Kind::Null, false)),
            };
            node.cursor = i + 1;
            map.next_value_seed(ValueSeed { node: &mut node.children[i], row, in_list: false })?;
        }
        Ok(())
    }
}

/// The columns of the lines of `block`. Lines of whitespace only are skipped, as Arrow's
/// reader skips them (the caller checks the row count against its own count of lines).
fn parse(block: &[u8], root: &mut Node) -> Result<usize, String> {
    // valid UTF-8 checked once for the block: serde_json then skips it string by string
    let block = std::str::from_utf8(block).map_err(|_| "invalid UTF-8")?;
    let blank = |l: &&str| l.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r'));
    let lines: Vec<&str> = block.split('\n').filter(|l| !blank(l)).collect();
    if lines.is_empty() {
        return Err("no lines".into());
    }
    for (row, line) in lines.iter().enumerate() {
        let mut de = serde_json::Deserializer::from_str(line);
        ValueSeed { node: root, row, in_list: false }.deserialize(&mut de).map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        if root.len != row + 1 || !root.valid[row] {
            return Err("a line that is not an object".into());
        }
    }
    root.finish(lines.len())?;
    Ok(lines.len())
}

/// A schema node from the caller: `(name, kind, children)`, kind one of bool, int64,
/// double, string, struct, list (one child: the item).
fn given_node(kind: &str, children: &Bound<'_, PyList>) -> PyResult<Node> {
    let kind = match kind {
        "bool" => Kind::Bool,
        "int64" => Kind::Int,
        "double" => Kind::Float,
        "string" => Kind::Str,
        "struct" => Kind::Struct,
        "list" => Kind::List,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "no native column of type {other}"
            )))
        }
    };
    let mut node = Node::new(kind, true);
    if kind == Kind::List && children.len() != 1 {
        return Err(pyo3::exceptions::PyValueError::new_err("a list has one item type"));
    }
    for item in children.iter() {
        let (name, kind, kids): (String, String, Bound<'_, PyList>) = item.extract()?;
        if node.index.contains_key(&name) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!("{name} twice")));
        }
        let child = given_node(&kind, &kids)?;
        node.add_child(name, child);
    }
    Ok(node)
}

fn pack(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        out[i / 8] |= (b as u8) << (i % 8);
    }
    out
}

fn bytes_of<T: Copy>(values: &[T]) -> &[u8] {
    // plain numbers (i64, f64, i32): no padding, any bit pattern is a valid byte
    unsafe { std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values)) }
}

type Emitted = (
    &'static str,
    usize,
    usize,
    Option<PyObject>,
    Option<PyObject>,
    Option<PyObject>,
    PyObject,
);

/// `(kind, length, null_count, validity bitmap, values, offsets, [(name, child)...])`.
fn emit(py: Python<'_>, node: &Node) -> PyResult<PyObject> {
    let nulls = if node.kind == Kind::Null {
        node.len
    } else {
        node.valid.iter().filter(|&&v| !v).count()
    };
    let bytes = |b: &[u8]| -> PyObject { PyBytes::new(py, b).into_any().unbind() };
    let validity = (nulls > 0 && node.kind != Kind::Null).then(|| bytes(&pack(&node.valid)));
    let (kind, values, offsets) = match node.kind {
        Kind::Null => ("null", None, None),
        Kind::Bool => ("bool", Some(bytes(&pack(&node.bools))), None),
        Kind::Int => ("int64", Some(bytes(bytes_of(&node.ints))), None),
        Kind::Float => ("double", Some(bytes(bytes_of(&node.floats))), None),
        Kind::Str => ("string", Some(bytes(&node.text)), Some(bytes(bytes_of(&node.offsets)))),
        Kind::Struct => ("struct", None, None),
        Kind::List => ("list", None, Some(bytes(bytes_of(&node.offsets)))),
    };
    let mut kids = Vec::with_capacity(node.children.len());
    for (name, child) in node.names.iter().zip(&node.children) {
        kids.push((name.as_str(), emit(py, child)?).into_pyobject(py)?.into_any().unbind());
    }
    let out: Emitted = (kind, node.len, nulls, validity, values, offsets, PyList::new(py, kids)?.into_any().unbind());
    Ok(out.into_pyobject(py)?.into_any().unbind())
}

/// The JSON lines of `block` as one struct column (see `emit`; its fields are the top-level
/// columns, its length the number of lines), or `None` when the
/// block is not one this reader builds exactly as Arrow's reader would (then read it with
/// Arrow). `schema`: `[(name, kind, children)...]`, the types of some top-level fields.
#[pyfunction]
#[pyo3(signature = (block, schema=None))]
fn read_block(py: Python<'_>, block: &[u8], schema: Option<Bound<'_, PyList>>) -> PyResult<Option<PyObject>> {
    let empty = PyList::empty(py);
    let mut root = given_node("struct", schema.as_ref().unwrap_or(&empty))?;
    // a panic (a bug of ours) declines the block rather than unwinding into Python
    let parsed = py.allow_threads(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(block, &mut root)))
    });
    let Ok(Ok(_)) = parsed else { return Ok(None) };
    Ok(Some(emit(py, &root)?))
}

/// Why `read_block` would return None for `block` (for tests and diagnostics), or None.
#[pyfunction]
#[pyo3(signature = (block, schema=None))]
fn irregular_reason(py: Python<'_>, block: &[u8], schema: Option<Bound<'_, PyList>>) -> PyResult<Option<String>> {
    let empty = PyList::empty(py);
    let mut root = given_node("struct", schema.as_ref().unwrap_or(&empty))?;
    Ok(parse(block, &mut root).err())
}

#[pymodule]
fn slicewatch_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_block, m)?)?;
    m.add_function(wrap_pyfunction!(irregular_reason, m)?)?;
    Ok(())
}
