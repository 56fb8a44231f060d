//! JSON Schema → the subset Gemini's function declarations and response
//! schemas accept: `$ref`s inlined from `$defs`/`definitions`, `anyOf` with
//! `null` (and `type: [x, "null"]`) as `nullable`, and every keyword Gemini
//! does not know left out (`additionalProperties`, `strict`, `$schema`,
//! unsupported `format`s, …).

use serde_json::{Map, Value};

/// Keywords Gemini's Schema object has.
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];
/// String formats Gemini accepts.
const FORMATS: &[&str] = &["enum", "date-time"];
/// Guards against self-referencing `$ref` chains.
const MAX_DEPTH: usize = 32;

pub fn clean(schema: &Value) -> Value {
    let defs = collect_defs(schema);
    clean_at(schema, &defs, 0)
}

fn collect_defs(schema: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(d)) = schema.get(key) {
            for (k, v) in d {
                defs.insert(format!("#/{key}/{k}"), v.clone());
            }
        }
    }
    defs
}

fn clean_at(schema: &Value, defs: &Map<String, Value>, depth: usize) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    if depth > MAX_DEPTH {
        return Value::Object(Map::new());
    }
    if let Some(target) = obj
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| defs.get(r))
    {
        let mut inlined = clean_at(target, defs, depth + 1);
        // Siblings of `$ref` (a description) still apply.
        if let (Value::Object(o), Some(d)) = (&mut inlined, obj.get("description")) {
            o.insert("description".into(), d.clone());
        }
        return inlined;
    }

    let mut out = Map::new();
    let mut nullable = obj
        .get("nullable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (k, v) in obj {
        if !KEPT.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            "type" => match v {
                // ["string", "null"] → "string" + nullable
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types
                        .iter()
                        .filter(|t| t.as_str() != Some("null"))
                        .collect();
                    nullable |= non_null.len() < types.len();
                    if let Some(t) = non_null.first() {
                        out.insert("type".into(), (*t).clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "format" => {
                if v.as_str().is_some_and(|f| FORMATS.contains(&f)) {
                    out.insert(k.clone(), v.clone());
                }
            }
            "properties" => {
                if let Value::Object(props) = v {
                    let cleaned: Map<String, Value> = props
                        .iter()
                        .map(|(pk, pv)| (pk.clone(), clean_at(pv, defs, depth + 1)))
                        .collect();
                    out.insert(k.clone(), Value::Object(cleaned));
                }
            }
            "items" => {
                out.insert(k.clone(), clean_at(v, defs, depth + 1));
            }
            "anyOf" => {
                if let Value::Array(options) = v {
                    let non_null: Vec<&Value> = options
                        .iter()
                        .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                        .collect();
                    nullable |= non_null.len() < options.len();
                    if non_null.len() == 1 {
                        // `anyOf: [X, null]` is X, nullable.
                        if let Value::Object(single) = clean_at(non_null[0], defs, depth + 1) {
                            for (sk, sv) in single {
                                out.entry(sk).or_insert(sv);
                            }
                        }
                    } else {
                        let cleaned: Vec<Value> = non_null
                            .iter()
                            .map(|o| clean_at(o, defs, depth + 1))
                            .collect();
                        out.insert(k.clone(), Value::Array(cleaned));
                    }
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    // `const` is an enum of one.
    if let Some(c) = obj.get("const") {
        out.insert("enum".into(), Value::Array(vec![c.clone()]));
    }
    // Gemini takes enums of strings only: for other types the allowed
    // values move into the description, where the model still reads them.
    let is_string = out
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(|t| t.eq_ignore_ascii_case("string"));
    if let (false, Some(Value::Array(values))) = (is_string, out.get("enum").cloned()) {
        out.remove("enum");
        let listed: Vec<String> = values.iter().map(Value::to_string).collect();
        let note = format!("Allowed values: {}.", listed.join(", "));
        let description = match out.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d} {note}"),
            None => note,
        };
        out.insert("description".into(), description.into());
    }
    // Gemini requires `items` on an array; JSON Schema does not.
    if out
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("array"))
        && !out.contains_key("items")
    {
        out.insert("items".into(), serde_json::json!({"type": "string"}));
    }
    if nullable {
        out.insert("nullable".into(), true.into());
    }
    // `required` may only name properties that exist.
    if let (Some(Value::Array(req)), Some(Value::Object(props))) =
        (out.get("required").cloned(), out.get("properties"))
    {
        let kept: Vec<Value> = req
            .into_iter()
            .filter(|r| r.as_str().is_some_and(|n| props.contains_key(n)))
            .collect();
        out.insert("required".into(), Value::Array(kept));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inlines_refs_and_drops_what_gemini_refuses() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object", "additionalProperties": false, "strict": true,
            "properties": {
                "path": {"type": "string", "format": "uri", "description": "file"},
                "when": {"type": "string", "format": "date-time"},
                "opts": {"$ref": "#/$defs/Opts", "description": "options"},
                "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                "kind": {"type": ["string", "null"], "const": "a"},
                "list": {"type": "array", "items": {"$ref": "#/$defs/Opts"}}
            },
            "required": ["path", "ghost"],
            "$defs": {"Opts": {"type": "object", "additionalProperties": false, "properties": {"fast": {"type": "boolean"}}}}
        });
        let c = clean(&schema);
        let s = c.to_string();
        for banned in [
            "$schema",
            "additionalProperties",
            "strict",
            "$ref",
            "$defs",
            "\"uri\"",
        ] {
            assert!(!s.contains(banned), "{banned} left in {s}");
        }
        assert_eq!(c["properties"]["when"]["format"], "date-time");
        assert_eq!(
            c["properties"]["opts"]["properties"]["fast"]["type"],
            "boolean"
        );
        assert_eq!(c["properties"]["opts"]["description"], "options");
        assert_eq!(
            c["properties"]["maybe"],
            json!({"type": "integer", "nullable": true})
        );
        assert_eq!(
            c["properties"]["kind"],
            json!({"type": "string", "nullable": true, "enum": ["a"]})
        );
        assert_eq!(
            c["properties"]["list"]["items"]["properties"]["fast"]["type"],
            "boolean"
        );
        assert_eq!(c["required"], json!(["path"]));
    }

    #[test]
    fn non_string_enums_move_to_the_description_and_arrays_get_items() {
        let c = clean(&json!({"type": "object", "properties": {
            "level": {"type": "integer", "enum": [1, 2, 3], "description": "How loud."},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "tags": {"type": "array"}}}));
        assert!(c["properties"]["level"].get("enum").is_none());
        assert_eq!(
            c["properties"]["level"]["description"],
            "How loud. Allowed values: 1, 2, 3."
        );
        assert_eq!(c["properties"]["mode"]["enum"], json!(["a", "b"]));
        assert_eq!(c["properties"]["tags"]["items"], json!({"type": "string"}));
    }

    #[test]
    fn self_referencing_schemas_terminate() {
        let schema = json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}});
        let c = clean(&schema);
        assert_eq!(c["type"], "object");
    }
}
