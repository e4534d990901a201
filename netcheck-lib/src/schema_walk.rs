//! Test support: checks a JSON document against the subset of JSON Schema that netcheck's
//! documented shapes use (`docs/*.json`): `$ref`, `properties`, `required`,
//! `additionalProperties: false`, `items`, `enum`, `const` and `type`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// What a walk of a document against the schema found.
#[derive(Default)]
pub(crate) struct Walk {
    /// Where the document breaks the schema's `required`, `additionalProperties: false`,
    /// `enum`, `const` and `type` rules.
    pub(crate) problems: Vec<String>,
    /// Schema pointers of the properties the document used.
    pub(crate) seen: BTreeSet<String>,
}

/// Walks `doc` against `schema`, over the subset of JSON Schema that the report schema uses.
pub(crate) fn conformance(schema: &Value, doc: &Value) -> Walk {
    let mut walk = Walk::default();
    walk.visit(schema, "", doc, "");
    walk
}

/// Schema pointers of every property the schema declares.
pub(crate) fn declared_properties(schema: &Value) -> BTreeSet<String> {
    let mut declared = BTreeSet::new();
    let mut add = |loc: String, object: &Value| {
        for key in object["properties"].as_object().into_iter().flat_map(|p| p.keys()) {
            declared.insert(format!("{loc}/properties/{key}"));
        }
    };
    add(String::new(), schema);
    for (name, def) in schema["$defs"].as_object().expect("$defs") {
        add(format!("/$defs/{name}"), def);
    }
    declared
}

impl Walk {
    /// Checks `doc` (at document pointer `at`) against the schema node at pointer `loc`.
    fn visit(&mut self, root: &Value, loc: &str, doc: &Value, at: &str) {
        let schema = root.pointer(loc).expect("schema pointer resolves");
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = reference.strip_prefix('#').expect("local $ref");
            return self.visit(root, target, doc, at);
        }
        self.check_value(schema, doc, at);
        if let (Some(object), Some(_)) = (doc.as_object(), schema.get("properties")) {
            self.visit_object(root, loc, object, at);
        }
        if let (Some(items), Some(_)) = (doc.as_array(), schema.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.visit(root, &format!("{loc}/items"), item, &format!("{at}/{i}"));
            }
        }
    }

    fn check_value(&mut self, schema: &Value, doc: &Value, at: &str) {
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(doc)
        {
            self.problems.push(format!("{at}: {doc} not in enum"));
        }
        if let Some(want) = schema.get("const")
            && want != doc
        {
            self.problems.push(format!("{at}: {doc} is not {want}"));
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|ty| has_type(doc, ty)) {
            self.problems.push(format!("{at}: {doc} is not of type {}", types.join(" or ")));
        }
    }

    fn visit_object(&mut self, root: &Value, loc: &str, object: &Map<String, Value>, at: &str) {
        let schema = root.pointer(loc).expect("schema pointer resolves");
        let properties = schema["properties"].as_object().expect("properties object");
        let required = schema.get("required").and_then(Value::as_array);
        for key in required.into_iter().flatten().filter_map(Value::as_str) {
            if !object.contains_key(key) {
                self.problems.push(format!("{at}: missing required `{key}`"));
            }
        }
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        for (key, value) in object {
            let sub = format!("{loc}/properties/{key}");
            if properties.contains_key(key) {
                self.seen.insert(sub.clone());
                self.visit(root, &sub, value, &format!("{at}/{key}"));
            } else if closed {
                self.problems.push(format!("{at}: unexpected key `{key}`"));
            }
        }
    }
}

fn has_type(doc: &Value, ty: &str) -> bool {
    match ty {
        "object" => doc.is_object(),
        "array" => doc.is_array(),
        "string" => doc.is_string(),
        "integer" => doc.is_i64() || doc.is_u64(),
        "number" => doc.is_number(),
        "boolean" => doc.is_boolean(),
        "null" => doc.is_null(),
        other => panic!("schema uses type {other}, which this walk does not know"),
    }
}
