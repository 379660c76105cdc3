//! The contract check: every answer a test receives through [`super::Call`] is held
//! against `openapi.json` (the document the server serves), so that the two cannot
//! drift apart unnoticed.
//!
//! The request is matched to its operation by method and path template, the answer to
//! the operation's response by status code; then the answer's content type must be one
//! the response documents (or no body, when it documents none), its required headers
//! must be there, and a JSON body must validate against the response's schema (JSON
//! Schema 2020-12, `$ref`s into `#/components/schemas`, formats checked). A path the
//! document does not have must answer `404`, a method a documented path does not have
//! `405`: those are checked against `#/components/responses/NotFound` and
//! `MethodNotAllowed`. Any mismatch panics, naming the operation, the status and what
//! is wrong, which fails the test that sent the request.

use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(booking_server::ops::OPENAPI).expect("openapi.json is JSON")
});

/// Compiled schemas, by the schema's text (the same schema compiles once per binary).
static VALIDATORS: LazyLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> =
    LazyLock::new(Default::default);

/// Checks one answer; panics with what disagrees with the document.
pub fn check(method: &Method, path: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) {
    if let Err(problem) = problem(method, path, status, headers, body) {
        let shown = String::from_utf8_lossy(&body[..body.len().min(2000)]);
        panic!("openapi.json disagrees with the server: {problem}\n  body: {shown}");
    }
}

/// What is wrong with one answer by the document, if anything.
pub fn problem(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let path = path.split('?').next().unwrap_or(path);
    let code = status.as_str();
    let (name, response) = match find_operation(method, path) {
        Found::Operation { template, op } => {
            let name = format!(
                "{method} {template} ({})",
                op["operationId"].as_str().unwrap_or("no operationId")
            );
            let Some(response) = op["responses"].get(code).or(op["responses"].get("default"))
            else {
                let documented: Vec<&String> = op["responses"]
                    .as_object()
                    .map(|r| r.keys().collect())
                    .unwrap_or_default();
                return Err(format!(
                    "{name} answered {code}, which it does not document (it documents {documented:?})"
                ));
            };
            (name, resolve(response)?)
        }
        Found::NoMethod { template } => {
            let name = format!("{method} {template} (no such operation)");
            if status != StatusCode::METHOD_NOT_ALLOWED {
                return Err(format!(
                    "{name} answered {code}: a method the document does not list for a path must be 405"
                ));
            }
            (name, component("/components/responses/MethodNotAllowed")?)
        }
        Found::NoPath => {
            let name = format!("{method} {path} (no such path)");
            if status != StatusCode::NOT_FOUND {
                return Err(format!(
                    "{name} answered {code}: a path the document does not have must be 404"
                ));
            }
            (name, component("/components/responses/NotFound")?)
        }
    };
    let at = format!("{name}, status {code}");
    check_headers(&at, response, headers)?;
    check_body(&at, response, headers, body)
}

enum Found {
    Operation {
        template: String,
        op: &'static Value,
    },
    NoMethod {
        template: String,
    },
    NoPath,
}

/// The path template that matches `path` (the one with the most literal segments when
/// several do), and its operation for `method`.
fn find_operation(method: &Method, path: &str) -> Found {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let paths = document()["paths"]
        .as_object()
        .expect("openapi.json has paths");
    let best = paths
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template
                .strip_prefix('/')
                .unwrap_or(template)
                .split('/')
                .collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (t, s) in parts.iter().zip(&segments) {
                if t.starts_with('{') && t.ends_with('}') {
                    if s.is_empty() {
                        return None;
                    }
                } else if t == s {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template, item))
        })
        .max_by_key(|(literal, _, _)| *literal);
    match best {
        None => Found::NoPath,
        Some((_, template, item)) => match item.get(method.as_str().to_lowercase()) {
            Some(op) => Found::Operation {
                template: template.clone(),
                op,
            },
            None => Found::NoMethod {
                template: template.clone(),
            },
        },
    }
}

/// The document, for as long as the test binary runs.
fn document() -> &'static Value {
    &DOCUMENT
}

/// What `pointer` (`/components/...`) names in the document.
fn component(pointer: &str) -> Result<&'static Value, String> {
    document()
        .pointer(pointer)
        .ok_or_else(|| format!("#{pointer} names nothing in openapi.json"))
}

/// Follows OpenAPI `$ref`s (`#/components/...`) to what they name.
fn resolve(mut v: &'static Value) -> Result<&'static Value, String> {
    for _ in 0..8 {
        match v.get("$ref").and_then(Value::as_str) {
            None => return Ok(v),
            Some(r) => {
                let pointer = r
                    .strip_prefix('#')
                    .ok_or_else(|| format!("{r}: only local references are followed"))?;
                v = component(pointer)?;
            }
        }
    }
    Err("a chain of more than 8 $refs".to_owned())
}

fn check_headers(at: &str, response: &'static Value, headers: &HeaderMap) -> Result<(), String> {
    let Some(documented) = response.get("headers").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, header) in documented {
        let header = resolve(header)?;
        let value = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        let Some(value) = value else {
            if header["required"] == true {
                return Err(format!("{at}: the required header {name} is missing"));
            }
            continue;
        };
        if let Some(schema) = header.get("schema") {
            // Header values are text; an integer header must read as one.
            let instance = if schema["type"] == "integer" {
                match value.parse::<i64>() {
                    Ok(n) => json!(n),
                    Err(_) => {
                        return Err(format!("{at}: header {name}: {value:?} is not an integer"))
                    }
                }
            } else {
                json!(value)
            };
            validate(schema, &instance).map_err(|e| format!("{at}: header {name}: {e}"))?;
        }
    }
    Ok(())
}

fn check_body(at: &str, response: &Value, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        if !body.is_empty() {
            return Err(format!(
                "{at}: the document says no body, the server sent {} bytes ({content_type:?})",
                body.len()
            ));
        }
        return Ok(());
    };
    let Some(content_type) = content_type else {
        return Err(format!(
            "{at}: no Content-Type; the document says one of {:?}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    let essence = |t: &str| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let Some((_, media)) = content
        .iter()
        .find(|(documented, _)| essence(documented) == essence(content_type))
    else {
        return Err(format!(
            "{at}: Content-Type {content_type:?} is not one of {:?}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    if essence(content_type) != "application/json" {
        return Ok(());
    }
    let decoded = decode(at, headers, body)?;
    let instance: Value = serde_json::from_slice(&decoded)
        .map_err(|e| format!("{at}: the body is not JSON ({e})"))?;
    match media.get("schema") {
        Some(schema) => validate(schema, &instance).map_err(|e| format!("{at}: {e}")),
        None => Ok(()),
    }
}

/// Validates `instance` against `schema`, which may `$ref` into `#/components/schemas`.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    let key = schema.to_string();
    let validator = {
        let mut cache = VALIDATORS.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(&key) {
            Some(v) => v.clone(),
            None => {
                // The component schemas ride along under the same pointer as in the
                // document, so that its `$ref`s resolve unchanged.
                let root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "components": {"schemas": document()["components"]["schemas"]},
                    "allOf": [schema],
                });
                let v = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&root)
                    .map_err(|e| format!("the schema {key} does not compile: {e}"))?;
                let v = Arc::new(v);
                cache.insert(key.clone(), v.clone());
                v
            }
        }
    };
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} (at {:?})", e.instance_path().to_string()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the body does not match the schema {key}: {}",
            errors.join("; ")
        ))
    }
}

/// The body without its `Content-Encoding` (gzip or br), as a client would read it.
pub fn decode(at: &str, headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let coding = headers
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let mut out = Vec::new();
    let read = match coding {
        None => return Ok(body.to_vec()),
        Some("gzip") => flate2::read::GzDecoder::new(body).read_to_end(&mut out),
        Some("br") => brotli::Decompressor::new(body, 4096).read_to_end(&mut out),
        Some(other) => return Err(format!("{at}: unknown Content-Encoding {other:?}")),
    };
    read.map_err(|e| format!("{at}: the {coding:?} body does not decode ({e})"))?;
    Ok(out)
}
