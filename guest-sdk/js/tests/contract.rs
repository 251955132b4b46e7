//! The script contract (docs/javascript.md), run natively: the same engine and runtime
//! code as in the module, called the way the module's exports call it.

use rmqtt_kafka_transform::{abi, Config, Outcome, Record, TestMessage};
use rmqtt_kafka_transform_js::Script;

fn start(source: &str, config: &[(&str, &str)]) -> Result<Script, String> {
    let mut pairs = vec![
        (abi::script::SOURCE, source),
        (abi::script::NAME, "route.js"),
    ];
    pairs.extend_from_slice(config);
    Script::start(&Config::from_pairs(pairs)).map_err(|e| e.message().to_owned())
}

fn script(source: &str) -> Script {
    start(source, &[]).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `t` through the script: its records, or the error's message and whether it is
/// an invalid output.
fn run<'m>(s: &Script, t: &'m TestMessage) -> Result<Vec<Record<'m>>, (String, bool)> {
    let msg: &'m _ = Box::leak(Box::new(t.message()));
    match s.transform(msg) {
        Ok(Outcome::Drop) => Ok(vec![]),
        Ok(out) => Ok(out.records().to_vec()),
        Err(e) => Err((e.message().to_owned(), e.is_invalid_output())),
    }
}

fn one<'m>(s: &Script, t: &'m TestMessage) -> Record<'m> {
    match run(s, t) {
        Ok(mut r) if r.len() == 1 => r.remove(0),
        other => panic!("expected one record, got {other:?}"),
    }
}

fn text(b: Option<&[u8]>) -> Option<&str> {
    b.map(|b| std::str::from_utf8(b).unwrap())
}

#[test]
fn msg_has_every_member_of_the_contract() {
    let s = script(
        "function transform(msg) {
           return { payload: {
             topic: msg.topic, bytes: Array.from(msg.payload), isBytes: msg.payload instanceof Uint8Array,
             text: msg.text(), json: msg.json(), qos: msg.qos, retain: msg.retain,
             clientId: msg.clientId, username: msg.username, properties: msg.properties,
             timestamp: msg.timestamp } };
         }",
    );
    let t = TestMessage::new("plant/7/temp", r#"{"v":1}"#)
        .qos(2)
        .retain(true)
        .client_id("dev-1")
        .user_property("unit", "C")
        .user_property("unit", "F")
        .timestamp_ms(1_700_000_000_123);
    let r = one(&s, &t);
    let got: serde_json::Value = serde_json::from_slice(r.payload().unwrap()).unwrap();
    let expected = serde_json::json!({
        "topic": "plant/7/temp", "bytes": br#"{"v":1}"#.to_vec(), "isBytes": true,
        "text": r#"{"v":1}"#, "json": {"v": 1}, "qos": 2, "retain": true,
        "clientId": "dev-1", "username": null, "properties": [["unit", "C"], ["unit", "F"]],
        "timestamp": 1_700_000_000_123u64
    });
    assert_eq!(got, expected);
    let with_user = TestMessage::new("a", "x").username("alice");
    let s = script("function transform(msg) { return { key: msg.username }; }");
    assert_eq!(one(&s, &with_user).key_str(), Some("alice"));
}

#[test]
fn nothing_null_or_an_empty_array_drops_the_message() {
    let t = TestMessage::new("a", "x");
    for ret in ["", "return null;", "return [];", "return undefined;"] {
        let s = script(&format!("function transform(msg) {{ {ret} }}"));
        assert_eq!(run(&s, &t).unwrap().len(), 0, "{ret}");
    }
}

#[test]
fn a_record_takes_every_member_and_the_payload_defaults_to_the_message() {
    let s = script(
        "function transform(msg) {
           return { topic: 'out', key: new TextEncoder().encode('k1'), partition: 3,
                    timestamp: new Date(1700000000000), headers: [['h', 'a'], ['h', new Uint8Array([98])], ['n', null], ['c', 5]] };
         }",
    );
    let t = TestMessage::new("a", "unchanged");
    let r = one(&s, &t);
    assert_eq!(r.get_topic(), Some("out"));
    assert_eq!(r.key_str(), Some("k1"));
    assert_eq!(
        (r.get_partition(), r.get_timestamp()),
        (Some(3), Some(1_700_000_000_000))
    );
    assert_eq!(r.payload_str(), Some("unchanged"));
    assert!(
        r.payload_is_borrowed(),
        "the message's payload is not copied"
    );
    let headers: Vec<(&str, Option<&str>)> = r.headers().map(|(n, v)| (n, text(v))).collect();
    assert_eq!(
        headers,
        [
            ("h", Some("a")),
            ("h", Some("b")),
            ("n", None),
            ("c", Some("5"))
        ]
    );
}

#[test]
fn payloads_are_bytes_text_json_or_null() {
    let t = TestMessage::new("a", "in");
    let cases = [
        ("'text'", Some("text")),
        ("new Uint8Array([104, 105])", Some("hi")),
        ("new Uint8Array([104, 105]).buffer", Some("hi")),
        ("{ a: 1, b: [true] }", Some(r#"{"a":1,"b":[true]}"#)),
        ("42", Some("42")),
        ("null", None),
    ];
    for (payload, expected) in cases {
        let s = script(&format!(
            "function transform() {{ return {{ payload: {payload} }}; }}"
        ));
        assert_eq!(one(&s, &t).payload_str(), expected, "{payload}");
    }
}

#[test]
fn an_array_fans_out_with_object_headers_in_order() {
    let s = script(
        "function transform(msg) {
           return msg.json().map((v, i) => ({ key: String(i), headers: { z: 'last', a: String(v) } }));
         }",
    );
    let t = TestMessage::new("a", "[10, 20, 30]");
    let records = run(&s, &t).unwrap();
    let keys: Vec<_> = records.iter().map(|r| r.key_str().unwrap()).collect();
    assert_eq!(keys, ["0", "1", "2"]);
    let names: Vec<_> = records[2].headers().map(|(n, _)| n).collect();
    assert_eq!(names, ["z", "a"]);
    assert_eq!(records[2].header_str("a"), Some("30"));
}

#[test]
fn wrong_outputs_are_invalid_and_say_what_was_wrong() {
    let t = TestMessage::new("a", "x");
    let cases = [
        ("'text'", "transform returned a string; return a record object, an array of records, or nothing to drop the message"),
        ("[{}, 3]", "element 1 of the returned array is the number 3, not a record object"),
        ("[Promise.resolve({})]", "element 0 of the returned array is a Promise, not a record object"),
        ("{ topic: 5 }", "the returned record: `topic` must be a string, not the number 5"),
        ("{ partition: -1 }", "the returned record: `partition` must be a whole number from 0 to 2147483647, not the number -1"),
        ("{ timestamp: 'now' }", "the returned record: `timestamp` must be milliseconds since the epoch (a whole number ≥ 0) or a valid Date, not a string"),
        ("{ headers: 'h' }", "the returned record: `headers` must be an object or an array of [name, value] pairs, not a string"),
        ("{ headers: [['a']] }", "the returned record: `headers[0]` must be a [name, value] pair, not an array"),
        ("{ headers: { a: {} } }", "the returned record: header `a` must be a string, a Uint8Array, a number, a boolean or null, not an object"),
        ("{ payload: () => 1 }", "the returned record: `payload` is a function, which has no JSON form"),
        ("Promise.resolve({})", "transform returned a Promise: it must return its records, not wait for them (no `async function transform`)"),
        ("{ kee: 'x' }", "the returned record has an unknown member `kee` (a record has topic, key, headers, payload, partition, timestamp)"),
        ("{ topic: 'no spaces' }", "\"no spaces\" is not a valid Kafka topic name: ' ' is not allowed (only a-z A-Z 0-9 . _ -)"),
    ];
    for (ret, expected) in cases {
        let s = script(&format!("function transform() {{ return {ret}; }}"));
        assert_eq!(
            run(&s, &t).unwrap_err(),
            (expected.to_owned(), true),
            "{ret}"
        );
    }
}

#[test]
fn a_thrown_error_is_an_error_with_its_place() {
    let t = TestMessage::new("a", "not json");
    let s = script("function transform(msg) {\n  return { key: msg.json().id };\n}");
    let (message, invalid) = run(&s, &t).unwrap_err();
    assert!(!invalid);
    assert!(message.starts_with("SyntaxError: "), "{message}");
    assert!(message.ends_with("(at route.js:2:21)"), "{message}");
    let s = script("function transform() { throw 'plain'; }");
    assert_eq!(
        run(&s, &t).unwrap_err(),
        ("threw \"plain\"".to_owned(), false)
    );
    let s = script("function transform() { throw new Error('bad reading'); }");
    assert_eq!(
        run(&s, &t).unwrap_err().0,
        "Error: bad reading (at route.js:1:34)"
    );
}

#[test]
fn start_refuses_syntax_errors_a_missing_transform_and_failing_top_level_code() {
    let e = start("function transform(msg) {\n  return {;\n}", &[])
        .err()
        .unwrap();
    assert!(e.starts_with("SyntaxError: "), "{e}");
    assert!(e.contains("route.js:2"), "names the file and line: {e}");
    let e = start("const transform = 3;", &[]).err().unwrap();
    assert_eq!(e, "route.js defines no function `transform`: a script must define `function transform(msg, config)`");
    let e = start("if (!config.threshold) throw new Error('config key `threshold` is required');\nfunction transform() {}", &[]).err().unwrap();
    assert_eq!(
        e,
        "Error: config key `threshold` is required (at route.js:1:34)"
    );
    assert!(start(
        "const t = Number(config.threshold);\nfunction transform() {}",
        &[("threshold", "30")]
    )
    .is_ok());
}

#[test]
fn config_is_frozen_and_the_host_keys_are_not_in_it() {
    let s = script(
        "'use strict';
         const keys = Object.keys(config);
         function transform(msg, cfg) {
           let refused = false;
           try { cfg.extra = 1; } catch (e) { refused = e instanceof TypeError; }
           return { key: JSON.stringify([keys, cfg === config, refused]) };
         }",
    );
    assert_eq!(
        one(&s, &TestMessage::new("a", "x")).key_str(),
        Some(r#"[[],true,true]"#)
    );
}

#[test]
fn the_language_features_a_transform_uses() {
    let s = script(
        r#"
        const units = new Map([["C", (v) => v], ["F", (v) => (v - 32) * 5 / 9]]);
        const pattern = /^site\/(?<site>[a-z]+)\/(?<line>\d+)$/;
        function transform(msg) {
          const { site, line } = pattern.exec(msg.topic).groups;
          const reading = JSON.parse(new TextDecoder().decode(msg.payload));
          const celsius = units.get(reading.unit)(reading.value);
          const floats = new Float64Array([celsius]);
          const view = new DataView(new ArrayBuffer(8));
          view.setFloat64(0, floats[0]);
          const day = new Date(Date.UTC(2026, 11, 7)).toISOString().slice(0, 10);
          const bytes = new TextEncoder().encode(`${site}-${line}`);
          const grouped = Object.groupBy([1, 2, 3], (n) => (n % 2 ? "odd" : "even"));
          const union = new Set([1]).union(new Set([2])).size;
          const doubled = [1, 2].values().map((n) => n * 2).toArray();
          if (grouped.odd.length !== 2 || union !== 2 || doubled[1] !== 4) throw new Error("ES2024/2025");
          return { key: bytes, payload: { celsius: Math.round(view.getFloat64(0) * 10) / 10, day, big: (2n ** 64n).toString(), tags: [...new Set(["a", "a", "b"])] } };
        }"#,
    );
    let t = TestMessage::new("site/berlin/7", r#"{"unit":"F","value":212}"#);
    let r = one(&s, &t);
    assert_eq!(r.key_str(), Some("berlin-7"));
    assert_eq!(
        r.payload_str(),
        Some(r#"{"celsius":100,"day":"2026-12-07","big":"18446744073709551616","tags":["a","b"]}"#)
    );
}

#[test]
fn text_decoder_refuses_other_encodings_and_can_be_fatal() {
    let s = script(
        "function transform(msg) {
           const lossy = new TextDecoder().decode(msg.payload);
           let fatal = 'accepted';
           try { new TextDecoder('utf-8', { fatal: true }).decode(msg.payload); } catch (e) { fatal = e.name; }
           let latin = 'accepted';
           try { new TextDecoder('latin1'); } catch (e) { latin = e.name; }
           return { key: [lossy, fatal, latin].join('|') };
         }",
    );
    let t = TestMessage::new("a", &b"a\xffb"[..]);
    assert_eq!(
        one(&s, &t).key_str(),
        Some("a\u{fffd}b|TypeError|RangeError")
    );
}

#[test]
fn a_payload_read_after_its_call_is_refused_not_mixed_up() {
    let s = script(
        "let kept;
         function transform(msg) {
           if (kept === undefined) { kept = msg; return null; }
           try { kept.payload; return { key: 'read' }; } catch (e) { return { key: e.name }; }
         }",
    );
    assert!(run(&s, &TestMessage::new("a", "first")).unwrap().is_empty());
    assert_eq!(
        one(&s, &TestMessage::new("a", "second")).key_str(),
        Some("TypeError")
    );
}

#[test]
fn state_outlives_the_call_and_a_refused_put_throws() {
    let s = script(
        r#"function transform(msg) {
             const [op, key, value] = msg.text().split(" ");
             let out;
             if (op === "put") out = state.put(key, value);
             if (op === "putBytes") out = state.put(new TextEncoder().encode(key), new Uint8Array([1, 2]));
             if (op === "get") out = state.getText(key) ?? "absent";
             if (op === "getBytes") out = Array.from(state.get(key) ?? []).join(",");
             if (op === "delete") out = state.delete(key);
             if (op === "long") {
               try { state.put("k".repeat(1025), "v"); } catch (e) { out = `${e.name}: ${e.message}`; }
             }
             if (op === "ttl") {
               try { state.put(key, "v", -5); } catch (e) { out = `${e.name}: ${e.message}`; }
             }
             if (op === "badKey") {
               try { state.get(42); } catch (e) { out = `${e.name}: ${e.message}`; }
             }
             return { payload: String(out) };
           }"#,
    );
    let call = |text: &str| {
        let t = TestMessage::new("t", text);
        let r = one(&s, &t);
        String::from_utf8(r.payload().unwrap().to_vec()).unwrap()
    };
    assert_eq!(call("put alias/7 temperature"), "undefined");
    assert_eq!(call("get alias/7"), "temperature");
    assert_eq!(call("putBytes raw"), "undefined");
    assert_eq!(call("getBytes raw"), "1,2");
    assert_eq!(call("delete alias/7"), "true");
    assert_eq!(call("delete alias/7"), "false");
    assert_eq!(call("get alias/7"), "absent");
    assert_eq!(
        call("long"),
        "Error: state.put: a state key of 1025 bytes; the limit is 1024"
    );
    assert_eq!(
        call("ttl x"),
        "RangeError: state.put: the TTL must be a positive number of ms, not -5"
    );
    assert_eq!(
        call("badKey"),
        "TypeError: state: the key must be a string, a Uint8Array or an ArrayBuffer"
    );
    assert!(
        start("state = 1; function transform() {}", &[]).is_ok(),
        "a script may shadow the global"
    );
}

/// `msg.json()` parses the payload itself when it can; whatever it gives must be what
/// `JSON.parse(msg.text())` gives, member order, `-0`, `__proto__` and errors included.
#[test]
fn msg_json_is_json_parse_of_the_text() {
    let s = script(
        r#"function same(a, b, depth = 0) {
             if (typeof a !== "object" || a === null || b === null) return Object.is(a, b);
             // Deep documents: their text, not the stack's depth.
             if (depth > 50) return JSON.stringify(a) === JSON.stringify(b);
             if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
             const ka = Reflect.ownKeys(a), kb = Reflect.ownKeys(b);
             if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
             return ka.every((k) => {
               const da = Object.getOwnPropertyDescriptor(a, k), db = Object.getOwnPropertyDescriptor(b, k);
               return da.writable === db.writable && da.enumerable === db.enumerable
                 && da.configurable === db.configurable && same(da.value, db.value, depth + 1);
             });
           }
           function outcome(f) {
             try { return { value: f() }; } catch (e) { return { error: `${e.name}: ${e.message}` }; }
           }
           // Counts the calls of JSON.parse, which msg.json() makes only when it leaves
           // the payload to it.
           const parse = JSON.parse;
           let parsed = 0;
           JSON.parse = (text) => { parsed++; return parse(text); };
           function transform(msg) {
             parsed = 0;
             const fast = outcome(() => msg.json());
             const path = parsed ? "JSON.parse" : "runtime";
             const slow = outcome(() => JSON.parse(msg.text()));
             const agree = "error" in fast ? fast.error === slow.error : same(fast.value, slow.value);
             return { payload: agree ? path : `differ: ${JSON.stringify(fast)} vs ${JSON.stringify(slow)}` };
           }"#,
    );
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let runtime = [
        r#"{"device_id":"d-17","temp":21.5,"ok":true,"n":null,"tags":["a","b"],"nested":{"x":[1,{"y":2}]}}"#,
        r#"{"b":1,"a":2,"10":3,"2":4,"b":5}"#,
        r#"{"__proto__":{"polluted":true},"x":1}"#,
        r#"[-0, 0, -0.0, 5e-324, 0.1, 0.30000000000000004, 1.7976931348623157e308]"#,
        r#"[9007199254740993, 18446744073709551615, 123456789012345678901234567890, -9223372036854775809]"#,
        r#"[2.2250738585072011e-308, 9007199254740993.0, 1.00000000000000011102230246251565]"#,
        r#""\u00e9\ud83d\ude00 \n\t\"\\ \/ é😀""#,
        r#"{"\u0061":1, "a":2}"#,
        " \t\r\n {\"a\" : [ ] , \"b\" : { } } \n",
    ];
    // What serde_json refuses: lone surrogates and numbers past f64 (which JSON.parse
    // takes), nesting past 128, invalid UTF-8, and what is not JSON.
    let left_to_json_parse = [
        r#"["\ud800", "\udc00x"]"#,
        "[1e400, -1e400]",
        r#"{"a":1,}"#,
        r#"{'a':1}"#,
        "[1, 2",
        "",
        "01",
        "true false",
        "NaN",
        "\u{feff}{}",
    ];
    let cases = runtime
        .iter()
        .map(|c| (c.as_bytes().to_vec(), "runtime"))
        .chain(
            left_to_json_parse
                .iter()
                .map(|c| (c.as_bytes().to_vec(), "JSON.parse")),
        )
        .chain(
            [
                deep.into_bytes(),
                b"{\"a\":\"\xff\"}".to_vec(),
                b"\"\xc3\"".to_vec(),
            ]
            .map(|c| (c, "JSON.parse")),
        );
    for (case, path) in cases {
        let t = TestMessage::new("t", case.clone());
        let r = one(&s, &t);
        assert_eq!(
            text(r.payload()),
            Some(path),
            "{:?}",
            String::from_utf8_lossy(&case)
        );
    }
}
