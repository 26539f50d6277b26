//! The federation frames against their JSON schemas (`docs/federation/*.schema.json`, the
//! wire protocol of `docs/federation.md`): what the Rust types send validates, and every
//! field they send is in the schema (and no other); the schemas' examples are read by the
//! Rust types and written back the same; frames the schemas reject (a field missing or
//! extra, another version, a phase array of two) are refused by the parser too.

use ampwarden_actors::federation::{
    Downstream, Grant, LinkMode, RemoteConnector, RemoteStation, Report, Upstream, VERSION,
};
use ampwarden_actors::units::{Amps, PerPhase, ZoneId};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

const SCHEMAS: [(&str, &str); 8] = [
    (
        "hello",
        include_str!("../../docs/federation/hello.schema.json"),
    ),
    (
        "report",
        include_str!("../../docs/federation/report.schema.json"),
    ),
    ("ack", include_str!("../../docs/federation/ack.schema.json")),
    (
        "welcome",
        include_str!("../../docs/federation/welcome.schema.json"),
    ),
    (
        "refused",
        include_str!("../../docs/federation/refused.schema.json"),
    ),
    (
        "grant",
        include_str!("../../docs/federation/grant.schema.json"),
    ),
    (
        "command",
        include_str!("../../docs/federation/command.schema.json"),
    ),
    (
        "command_result",
        include_str!("../../docs/federation/command_result.schema.json"),
    ),
];

/// Fields a Rust type leaves out when they are `None` (`skip_serializing_if`).
const OPTIONAL: [(&str, &str); 1] = [("report", "stations")];

fn schema(kind: &str) -> Value {
    let (_, text) = SCHEMAS
        .iter()
        .find(|(k, _)| *k == kind)
        .unwrap_or_else(|| panic!("no schema for {kind}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{kind}.schema.json: {e}"))
}

fn validator(kind: &str) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema(kind))
        .unwrap_or_else(|e| panic!("{kind}.schema.json does not compile: {e}"))
}

fn kind_of(frame: &Value) -> &str {
    frame["type"].as_str().expect("a frame has a type")
}

fn assert_valid(frame: &Value) {
    let kind = kind_of(frame);
    let errors: Vec<String> = validator(kind)
        .iter_errors(frame)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} does not match its schema: {errors:?}\n{frame:#}"
    );
}

fn assert_invalid(kind: &str, frame: &Value, what: &str) {
    assert!(
        !validator(kind).is_valid(frame),
        "{kind} schema accepts a frame with {what}: {frame}"
    );
}

fn pp(l1: f64, l2: f64, l3: f64) -> PerPhase<Amps> {
    PerPhase([Amps(l1), Amps(l2), Amps(l3)])
}

fn hello() -> Upstream {
    Upstream::Hello {
        v: VERSION,
        name: "hall-b".into(),
        zone: ZoneId::new("main"),
        fallback_budget_a: Amps(40.0),
        limit_a: Amps(250.0),
        software: "0.1.0".into(),
    }
}

/// A report with every optional field set (and connectors with and without theirs).
fn full_report() -> Report {
    Report {
        v: VERSION,
        at: Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()
            + chrono::TimeDelta::milliseconds(250),
        mode: LinkMode::Granted,
        grant_seq: 42,
        ev_draw_a: pp(45.2, 30.1, 30.0),
        max_a: pp(64.0, 64.0, 64.0),
        vip_max_a: pp(32.0, 0.0, 0.0),
        min_a: pp(12.0, 12.0, 12.0),
        vip_min_a: pp(6.0, 0.0, 0.0),
        fixed_a: pp(6.0, 6.0, 6.0),
        in_force_a: pp(63.4, 60.0, 60.0),
        meter_a: Some(pp(80.5, 61.0, 58.2)),
        ramping: true,
        active: 3,
        waiting: 1,
        suspended: 2,
        stations: Some(vec![
            RemoteStation {
                id: "HB-01".into(),
                zone: ZoneId::new("hall-b"),
                connected: true,
                connectors: vec![
                    RemoteConnector {
                        connector: 1,
                        status: "Charging".into(),
                        transaction: Some(1187),
                        limit_a: Some(Amps(18.4)),
                        draw_a: Some(pp(18.1, 18.0, 18.2)),
                    },
                    RemoteConnector {
                        connector: 2,
                        status: "Available".into(),
                        transaction: None,
                        limit_a: None,
                        draw_a: None,
                    },
                ],
            },
            RemoteStation {
                id: "HB-02".into(),
                zone: ZoneId::new("hall-b"),
                connected: false,
                connectors: Vec::new(),
            },
        ]),
    }
}

/// The same without any optional field (no meter, no station list).
fn bare_report() -> Report {
    Report {
        mode: LinkMode::Expiring,
        meter_a: None,
        stations: None,
        ramping: false,
        ..full_report()
    }
}

fn grant() -> Downstream {
    Downstream::Grant(Grant {
        v: VERSION,
        seq: 42,
        budget_a: pp(63.4, 60.0, 60.0),
        valid_for_s: 10,
    })
}

/// One frame of each type, as the Rust types serialise them.
struct Frames {
    hello: Value,
    /// Every optional field set.
    report: Value,
    /// No optional field: no meter, no station list.
    bare_report: Value,
    /// Nothing at all yet (zeros, `fallback`).
    empty_report: Value,
    ack: Value,
    welcome: Value,
    refused: Value,
    grant: Value,
    command: Value,
    command_result: Value,
}

impl Frames {
    fn new() -> Frames {
        let up = |f: Upstream| serde_json::to_value(&f).expect("serialises");
        let down = |f: Downstream| serde_json::to_value(&f).expect("serialises");
        Frames {
            hello: up(hello()),
            report: up(Upstream::Report(Box::new(full_report()))),
            bare_report: up(Upstream::Report(Box::new(bare_report()))),
            empty_report: up(Upstream::Report(Box::new(Report {
                v: VERSION,
                ..Report::default()
            }))),
            ack: up(Upstream::Ack {
                v: VERSION,
                seq: 42,
            }),
            welcome: down(Downstream::Welcome {
                v: VERSION,
                valid_for_s: 10,
            }),
            refused: down(Downstream::Refused {
                v: VERSION,
                reason: "a secondary named \"hall-b\" is already linked".into(),
            }),
            grant: down(grant()),
            command: down(Downstream::Command {
                v: VERSION,
                id: 7,
                station: "S1EV01".into(),
                action: "reset".into(),
                body: json!({ "type": "Soft" }),
            }),
            command_result: up(Upstream::CommandResult {
                v: VERSION,
                id: 7,
                status: 200,
                body: json!({ "status": "Accepted" }),
            }),
        }
    }

    /// The frames with every optional field set.
    fn full(&self) -> [&Value; 8] {
        [
            &self.hello,
            &self.report,
            &self.ack,
            &self.welcome,
            &self.refused,
            &self.grant,
            &self.command,
            &self.command_result,
        ]
    }

    fn all(&self) -> [&Value; 10] {
        [
            &self.hello,
            &self.report,
            &self.bare_report,
            &self.empty_report,
            &self.ack,
            &self.welcome,
            &self.refused,
            &self.grant,
            &self.command,
            &self.command_result,
        ]
    }
}

/// Follows a local `$ref` (`#/$defs/NAME`).
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/$defs/")
                .unwrap_or_else(|| panic!("a local reference: {r}"));
            resolve(root, &root["$defs"][name])
        }
        None => node,
    }
}

/// Walks a frame and its schema together: every object the frame holds has exactly the
/// properties its schema lists, all of them required but the ones the Rust type leaves
/// out when empty, and each object schema is closed.
fn same_fields(kind: &str, root: &Value, node: &Value, value: &Value, at: &str) {
    let node = resolve(root, node);
    if let Some(branches) = node.get("anyOf").and_then(Value::as_array) {
        let branch = branches
            .iter()
            .map(|b| resolve(root, b))
            .find(|b| (b["type"] == "null") == value.is_null())
            .unwrap_or_else(|| panic!("{kind}{at}: no branch of anyOf for {value}"));
        return same_fields(kind, root, branch, value, at);
    }
    // A free-form value (a relayed command's body): any JSON.
    if ["type", "properties", "const", "anyOf", "$ref"]
        .iter()
        .all(|k| node.get(*k).is_none())
    {
        return;
    }
    match value {
        Value::Object(fields) => {
            assert_eq!(
                node["additionalProperties"],
                json!(false),
                "{kind}{at}: an open object schema"
            );
            let properties = node["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{kind}{at}: no properties"));
            let mut listed: Vec<&str> = properties.keys().map(String::as_str).collect();
            let mut sent: Vec<&str> = fields.keys().map(String::as_str).collect();
            listed.sort_unstable();
            sent.sort_unstable();
            assert_eq!(listed, sent, "{kind}{at}: schema and Rust type differ");
            let mut required: Vec<&str> = node["required"]
                .as_array()
                .unwrap_or_else(|| panic!("{kind}{at}: no required"))
                .iter()
                .map(|r| r.as_str().expect("a field name"))
                .collect();
            required.sort_unstable();
            let expected: Vec<&str> = sent
                .iter()
                .copied()
                .filter(|f| !(at.is_empty() && OPTIONAL.contains(&(kind, *f))))
                .collect();
            assert_eq!(required, expected, "{kind}{at}: required fields");
            for (name, v) in fields {
                same_fields(kind, root, &properties[name], v, &format!("{at}.{name}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                same_fields(kind, root, &node["items"], v, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

#[test]
fn every_schema_is_a_strict_draft_2020_12_schema_of_its_frame() {
    for (kind, _) in SCHEMAS {
        let s = schema(kind);
        if let Err(e) = jsonschema::meta::validate(&s) {
            panic!("{kind}.schema.json is not a valid schema: {e}");
        }
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{kind}"
        );
        assert_eq!(s["properties"]["type"], json!({ "const": kind }));
        assert_eq!(s["properties"]["v"]["const"], json!(VERSION), "{kind}");
        assert!(
            s["examples"].as_array().is_some_and(|e| !e.is_empty()),
            "{kind}: no example"
        );
    }
}

#[test]
fn frames_built_from_the_rust_types_match_their_schemas_field_for_field() {
    let frames = Frames::new();
    let kinds: std::collections::BTreeSet<&str> = frames.full().into_iter().map(kind_of).collect();
    assert_eq!(kinds.len(), SCHEMAS.len(), "one frame of each type");
    for frame in frames.all() {
        assert_valid(frame);
    }
    // Every field the Rust types send (each optional one set) is in the schema, and
    // every field in the schema is sent.
    for frame in frames.full() {
        let kind = kind_of(frame);
        let s = schema(kind);
        same_fields(kind, &s, &s, frame, "");
    }
    // What the optional fields look like when empty: no station list, a null meter, a
    // connector's nulls.
    let bare = &frames.bare_report;
    assert!(bare.get("stations").is_none(), "{bare}");
    assert_eq!(bare["meter_a"], Value::Null);
    let idle = &frames.report["stations"][0]["connectors"][1];
    assert_eq!(idle["transaction"], Value::Null);
    assert_eq!(idle["draw_a"], Value::Null);
    assert_eq!(frames.report["at"], "2026-03-01T08:00:00.250Z");
    assert_eq!(frames.empty_report["mode"], "fallback");
}

#[test]
fn the_schemas_examples_are_read_and_written_back_by_the_rust_types() {
    for (kind, _) in SCHEMAS {
        let s = schema(kind);
        for example in s["examples"].as_array().expect("examples") {
            assert_valid(example);
            let text = example.to_string();
            let back = match kind {
                "hello" | "report" | "ack" | "command_result" => {
                    let frame = Upstream::parse(&text)
                        .unwrap_or_else(|e| panic!("{kind} example refused: {e}\n{text}"));
                    serde_json::to_value(&frame).expect("serialises")
                }
                _ => {
                    let frame: Downstream = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{kind} example refused: {e}\n{text}"));
                    serde_json::to_value(&frame).expect("serialises")
                }
            };
            assert_eq!(&back, example, "{kind} example");
        }
    }
}

/// `frame` with `edit` applied to its object (or to the object at `path` inside it).
fn edited(
    frame: &Value,
    path: &[&str],
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Value {
    let mut out = frame.clone();
    let mut node = &mut out;
    for p in path {
        node = match p.parse::<usize>() {
            Ok(i) => &mut node[i],
            Err(_) => &mut node[*p],
        };
    }
    edit(node.as_object_mut().expect("an object"));
    out
}

/// Whether the Rust side refuses the frame (the primary parses upstream frames with
/// their version; the secondary reads downstream frames, then checks the version).
fn rust_refuses(frame: &Value) -> bool {
    let text = frame.to_string();
    match kind_of(frame) {
        "hello" | "report" | "ack" => Upstream::parse(&text).is_err(),
        _ => serde_json::from_str::<Downstream>(&text).is_err(),
    }
}

#[test]
fn invalid_frames_are_rejected_by_the_schemas_and_by_the_parser() {
    let frames = Frames::new();
    let Frames {
        hello,
        report,
        ack,
        welcome,
        refused,
        grant,
        ..
    } = &frames;

    // A required field missing.
    for (frame, field) in [
        (hello, "zone"),
        (hello, "fallback_budget_a"),
        (report, "max_a"),
        (report, "at"),
        (report, "ramping"),
        (ack, "seq"),
        (welcome, "valid_for_s"),
        (refused, "reason"),
        (grant, "budget_a"),
        (grant, "seq"),
    ] {
        let bad = edited(frame, &[], |o| {
            o.remove(field);
        });
        assert_invalid(kind_of(frame), &bad, &format!("no {field}"));
        assert!(
            rust_refuses(&bad),
            "the parser takes a frame without {field}: {bad}"
        );
    }
    let no_status = edited(report, &["stations", "0", "connectors", "0"], |o| {
        o.remove("status");
    });
    assert_invalid("report", &no_status, "a connector without status");
    assert!(rust_refuses(&no_status));

    // A field no Rust type has, at the top and inside a station.
    for frame in frames.all() {
        let bad = edited(frame, &[], |o| {
            o.insert("priority".into(), json!(1));
        });
        assert_invalid(kind_of(frame), &bad, "an extra field");
        assert!(rust_refuses(&bad), "the parser takes an extra field: {bad}");
    }
    let extra = edited(report, &["stations", "0"], |o| {
        o.insert("vendor".into(), json!("ACME"));
    });
    assert_invalid("report", &extra, "an extra station field");
    assert!(rust_refuses(&extra));

    // Another protocol version (the primary refuses it at parsing; the secondary reads
    // a downstream frame, then ignores it for its version).
    for frame in frames.all() {
        for v in [json!(0), json!(2), json!("1")] {
            let bad = edited(frame, &[], |o| {
                o.insert("v".into(), v.clone());
            });
            assert_invalid(kind_of(frame), &bad, &format!("v = {v}"));
            if matches!(kind_of(frame), "hello" | "report" | "ack") || v.is_string() {
                assert!(rust_refuses(&bad), "the parser takes v = {v}: {bad}");
            }
        }
    }

    // A per-phase value of two phases (or four), at the top and inside a connector.
    for (frame, path, field) in [
        (grant, &[][..], "budget_a"),
        (report, &[][..], "max_a"),
        (report, &[][..], "fixed_a"),
        (report, &[][..], "meter_a"),
        (report, &["stations", "0", "connectors", "0"][..], "draw_a"),
    ] {
        for phases in [json!([16.0, 16.0]), json!([16.0, 16.0, 16.0, 16.0])] {
            let bad = edited(frame, path, |o| {
                o.insert(field.into(), phases.clone());
            });
            assert_invalid(kind_of(frame), &bad, &format!("{field} = {phases}"));
            assert!(rust_refuses(&bad), "the parser takes {field} = {phases}");
        }
    }

    // Values the types take but the protocol does not: the schemas say so too.
    for (frame, field, value) in [
        (hello, "limit_a", json!(-1.0)),
        (grant, "budget_a", json!([16.0, -0.5, 16.0])),
        (grant, "valid_for_s", json!(0)),
        (grant, "seq", json!(0)),
        (ack, "seq", json!(0)),
        (report, "mode", json!("offline")),
        (report, "ev_draw_a", json!([1.0, null, 1.0])),
        (report, "at", json!("yesterday")),
        (hello, "type", json!("Hello")),
    ] {
        let bad = edited(frame, &[], |o| {
            o.insert(field.into(), value.clone());
        });
        assert_invalid(kind_of(frame), &bad, &format!("{field} = {value}"));
    }
    // JSON has no NaN or infinity: a current written as null, as a string or too large
    // for a double cannot be read at all.
    for current in ["null", "\"NaN\"", "1e400"] {
        let text = format!(
            r#"{{"type":"hello","v":1,"name":"hall-b","zone":"main","fallback_budget_a":{current},"limit_a":250.0,"software":"0.1.0"}}"#
        );
        assert!(
            Upstream::parse(&text).is_err(),
            "the parser takes a current of {current}"
        );
        if let Ok(bad) = serde_json::from_str::<Value>(&text) {
            assert_invalid("hello", &bad, &format!("a current of {current}"));
        }
    }
    // A negative current in a report parses, and is then refused by the primary.
    let negative = edited(report, &[], |o| {
        o.insert("fixed_a".into(), json!([1.0, -1.0, 1.0]));
    });
    assert_invalid("report", &negative, "a negative current");
    match Upstream::parse(&negative.to_string()) {
        Ok(Upstream::Report(r)) => assert!(r.sanitised(Amps(250.0)).is_err()),
        other => panic!("a report: {other:?}"),
    }
}
