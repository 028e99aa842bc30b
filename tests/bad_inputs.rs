//! Broken inputs, driven through the real binary on a copy of the bundled project: each must
//! exit 1 with a message naming the file and the line, and never panic.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::project_copy;

/// One change to the copied project.
enum Edit {
    /// Replace the first occurrence of `from` by `to` in a file (the test fails if absent).
    Replace(&'static str, &'static str, &'static str),
    /// Write a file.
    Write(&'static str, &'static [u8]),
    /// Copy a file.
    Copy(&'static str, &'static str),
    /// Delete every file of a folder.
    EmptyDir(&'static str),
}
use Edit::*;

struct Case {
    name: &'static str,
    edits: &'static [Edit],
    /// Substrings stderr must hold: the location (`file:line:`) and the message.
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "yaml syntax",
        edits: &[Write(
            "tools/end_call.yaml",
            b"name: end_call\nparameters: {type: object\nsortOrder: 12\n",
        )],
        expect: &["tools/end_call.yaml:3:", "invalid YAML"],
    },
    Case {
        name: "wrong type",
        edits: &[Replace(
            "tools/end_call.yaml",
            "sortOrder: 12",
            "sortOrder: twelve",
        )],
        expect: &["tools/end_call.yaml:14:1: sortOrder:", "integer"],
    },
    Case {
        name: "unknown key in a tool",
        edits: &[Replace(
            "tools/end_call.yaml",
            "sortOrder: 12",
            "sortOrder: 12\nsortOrdre: 3",
        )],
        expect: &["tools/end_call.yaml:15:1: sortOrdre: unknown key `sortOrdre`"],
    },
    Case {
        name: "missing required field",
        edits: &[Replace("tools/end_call.yaml", "sortOrder: 12\n", "")],
        expect: &[
            "tools/end_call.yaml:2:1:",
            "\"sortOrder\" is a required property",
        ],
    },
    Case {
        name: "duplicate tool name",
        edits: &[
            Copy("tools/end_call.yaml", "tools/end_call_2.yaml"),
            Replace("tools/end_call_2.yaml", "sortOrder: 12", "sortOrder: 13"),
        ],
        expect: &["tools/end_call_2.yaml:2:1: name: duplicate tool name `end_call`"],
    },
    Case {
        name: "duplicate sortOrder",
        edits: &[Replace(
            "tools/end_call.yaml",
            "sortOrder: 12",
            "sortOrder: 11",
        )],
        expect: &["tools/", ":22:1: sortOrder: duplicate sortOrder 11"],
    },
    Case {
        name: "$ai.x not a parameter",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "={{$ai.order_number}}",
            "={{$ai.order_id}}",
        )],
        expect: &[
            "tools/cancel_order.yaml:18:5: http.bodyTemplate.order_number:",
            "`order_id` is not a parameter",
        ],
    },
    Case {
        name: "unknown root",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "={{ctx.caller_phone}}",
            "={{session.caller_phone}}",
        )],
        expect: &["tools/cancel_order.yaml:17:5:", "unknown root `session`"],
    },
    Case {
        name: "unclosed {{",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "={{ctx.caller_phone}}",
            "={{ctx.caller_phone",
        )],
        expect: &[
            "tools/cancel_order.yaml:17:5:",
            "never closed",
            "at character 2",
        ],
    },
    Case {
        name: "empty path",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "={{ctx.caller_phone}}",
            "=x{{ }}",
        )],
        expect: &["tools/cancel_order.yaml:17:5:", "empty path"],
    },
    Case {
        name: "$res in a request body",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "={{$ai.order_number}}",
            "={{$res.id}}",
        )],
        expect: &[
            "tools/cancel_order.yaml:18:5:",
            "`$res` cannot be used here",
        ],
    },
    Case {
        name: "ctx key without producer",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "={{ctx.caller_phone}}",
            "={{ctx.loyalty_points}}",
        )],
        expect: &["tools/cancel_order.yaml:17:5:", "`ctx.loyalty_points`"],
    },
    Case {
        name: "config key missing from the agent config",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "={{config.restaurantId}}",
            "={{config.shopId}}",
        )],
        expect: &["tools/cancel_order.yaml:19:5:", "`config.shopId`"],
    },
    Case {
        name: "required names an undeclared parameter",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "  - order_number",
            "  - order_id",
        )],
        expect: &[
            "tools/cancel_order.yaml:13:5: parameters.required[0]:",
            "`order_id`",
        ],
    },
    Case {
        name: "condition on a missing config key",
        edits: &[Replace(
            "tools/transfer_call.yaml",
            "configKey: transferEnabled",
            "configKey: transferAllowed",
        )],
        expect: &[
            "tools/transfer_call.yaml:18:3: condition.configKey:",
            "`transferAllowed`",
        ],
    },
    Case {
        name: "eq condition without value",
        edits: &[Replace(
            "tools/transfer_call.yaml",
            "operator: truthy",
            "operator: eq",
        )],
        expect: &["tools/transfer_call.yaml:19:3:", "needs a `value`"],
    },
    Case {
        name: "invalid enum",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "method: POST",
            "method: FETCH",
        )],
        expect: &["tools/cancel_order.yaml:20:3: http.method:", "FETCH"],
    },
    Case {
        name: "relative url",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "url: ={{BASE_URL}}/api",
            "url: /api",
        )],
        expect: &["tools/cancel_order.yaml:21:3: http.url:", "not an absolute"],
    },
    Case {
        name: "built-in tool without a trigger",
        edits: &[Replace("tools/end_call.yaml", "triggersHangup: true\n", "")],
        expect: &[
            "tools/end_call.yaml:10:1: http:",
            "triggersHangup or triggersTransfer",
        ],
    },
    Case {
        name: "non-UTF-8 file",
        edits: &[Write("restaurants/zz-bad.yaml", b"id: 00000000-0000-4000-8000-0000000000ff\nname: caf\xe9\n")],
        expect: &["restaurants/zz-bad.yaml:2:10:", "UTF-8"],
    },
    Case {
        name: "empty tools dir",
        edits: &[EmptyDir("tools")],
        expect: &["tools:0:0:", "no tool files"],
    },
    Case {
        name: "empty file",
        edits: &[Write("tools/end_call.yaml", b"# nothing yet\n")],
        expect: &["tools/end_call.yaml:1:1:", "empty"],
    },
    Case {
        name: "duplicate key",
        edits: &[Replace(
            "restaurants/pizzeria-napoli.yaml",
            "sip_enabled: true",
            "sip_enabled: true\nname: Again",
        )],
        expect: &["restaurants/pizzeria-napoli.yaml:9:", "duplicate"],
    },
    Case {
        name: "duplicate restaurant id",
        edits: &[Copy(
            "restaurants/pizzeria-napoli.yaml",
            "restaurants/zz-copy.yaml",
        )],
        expect: &["restaurants/zz-copy.yaml:3:1: id: duplicate restaurant id"],
    },
    Case {
        name: "restaurant wrong type",
        edits: &[Replace(
            "restaurants/pizzeria-napoli.yaml",
            "delivery_enabled: true",
            "delivery_enabled: sometimes",
        )],
        expect: &[
            "restaurants/pizzeria-napoli.yaml:7:1: delivery_enabled:",
            "boolean",
        ],
    },
    Case {
        name: "restaurant unknown key",
        edits: &[Replace(
            "restaurants/pizzeria-napoli.yaml",
            "sip_enabled: true",
            "sip_enable: true",
        )],
        expect: &["restaurants/pizzeria-napoli.yaml:8:1: sip_enable: unknown key"],
    },
    Case {
        name: "project unknown key",
        edits: &[Replace("sipform.yaml", "inventory:", "inventroy:")],
        expect: &["sipform.yaml:", "unknown key `inventroy`"],
    },
    Case {
        name: "undefined template variable",
        edits: &[Replace(
            "templates/agent.yaml.j2",
            "restaurant.ai_voice or",
            "restaurant.voice or",
        )],
        // Found in the template itself, before any restaurant renders (front::strict).
        expect: &["templates/agent.yaml.j2:18:", "undefined variable `restaurant.voice`"],
    },
    Case {
        name: "template syntax error",
        edits: &[Replace(
            "templates/agent.yaml.j2",
            "[[ app_url | tojson ]]",
            "[[ app_url | tojson",
        )],
        expect: &["templates/agent.yaml.j2:", "syntax error"],
    },
    Case {
        name: "rendered spec fails the agent schema",
        edits: &[Replace(
            "templates/agent.yaml.j2",
            "temperature: 0.7",
            "temperature: 7",
        )],
        expect: &[
            "templates/agent.yaml.j2:22:3: agent.temperature:",
            "restaurant ",
            "restaurants/",
        ],
    },
    Case {
        name: "ctx in an agent field",
        edits: &[Replace(
            "templates/agent.yaml.j2",
            "={{BASE_URL}}/api/calls",
            "={{BASE_URL}}/api/calls?c={{ctx.call_id}}",
        )],
        expect: &[
            "templates/agent.yaml.j2:27:3: agent.onCallEndWebhook:",
            "`ctx` cannot be used here",
            "and 2 more restaurants",
        ],
    },
    Case {
        name: "data in a tool url",
        edits: &[Replace(
            "tools/cancel_order.yaml",
            "url: ={{BASE_URL}}/api",
            "url: ={{BASE_URL}}/{{data.x}}/api",
        )],
        expect: &[
            "tools/cancel_order.yaml:21:3: http.url:",
            "`data` cannot be used here",
        ],
    },
    Case {
        name: "two documents in one file",
        edits: &[Replace(
            "tools/end_call.yaml",
            "sortOrder: 12",
            "sortOrder: 12\n---\nname: x",
        )],
        expect: &["tools/end_call.yaml:15:", "more than one YAML document"],
    },
    Case {
        name: "parameters not a JSON Schema",
        edits: &[Replace(
            "tools/check_order_status.yaml",
            "      type: string",
            "      type: nubmer",
        )],
        expect: &[
            "tools/check_order_status.yaml:11:7: parameters.properties.customer_phone.type: not a valid JSON Schema:",
            "\"nubmer\" is not one of",
        ],
    },
    Case {
        name: "invalid enum in a restaurant",
        edits: &[Replace(
            "restaurants/le-bistrot-du-port.yaml",
            "chat_mode: text",
            "chat_mode: video",
        )],
        expect: &[
            "restaurants/le-bistrot-du-port.yaml:12:1: chat_mode:",
            "video",
        ],
    },
];

/// Nested loops that would run 10^10 times: the render's fuel must stop them, naming the
/// template line, long before the timeout that makes this test fail instead of hang without it.
#[test]
fn an_endless_template_loop_is_stopped_at_its_line() {
    let tmp = project_copy();
    apply(
        tmp.path(),
        &Replace(
            "templates/agent.yaml.j2",
            "  currency: EUR\n",
            "  currency: EUR\n[% for i in range(100000) %][% for j in range(100000) %][[ j ]][% endfor %][% endfor %]\n",
        ),
        "endless loop",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sipform"))
        .arg("validate")
        .arg(tmp.path())
        .env_remove("NEXT_PUBLIC_APP_URL")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "templates/agent.yaml.j2:12:1: the template does too much work for one restaurant"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("and 2 more restaurants"), "{stderr}");
}

fn apply(root: &Path, edit: &Edit, case: &str) {
    match edit {
        Replace(file, from, to) => {
            let p = root.join(file);
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(text.contains(from), "{case}: `{from}` not in {file}");
            std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        }
        Write(file, bytes) => std::fs::write(root.join(file), bytes).unwrap(),
        Copy(a, b) => {
            std::fs::copy(root.join(a), root.join(b)).unwrap();
        }
        EmptyDir(d) => {
            for e in std::fs::read_dir(root.join(d)).unwrap() {
                std::fs::remove_file(e.unwrap().path()).unwrap();
            }
        }
    }
}

#[test]
fn the_bundled_project_copy_is_valid() {
    let tmp = project_copy();
    Command::new(env!("CARGO_BIN_EXE_sipform"))
        .arg("validate")
        .arg(tmp.path())
        .env_remove("NEXT_PUBLIC_APP_URL")
        .assert()
        .success()
        .stdout(predicates::str::starts_with(format!(
            "ok: {} tools, 3 restaurants",
            common::bundled_tool_count()
        )));
}

#[test]
fn every_bad_input_is_reported_with_file_and_line() {
    assert!(CASES.len() >= 20);
    let mut failures = Vec::new();
    for case in CASES {
        let tmp = project_copy();
        for e in case.edits {
            apply(tmp.path(), e, case.name);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_sipform"))
            .arg("validate")
            .arg(tmp.path())
            .env_remove("NEXT_PUBLIC_APP_URL")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut problems = Vec::new();
        if out.status.code() != Some(1) {
            problems.push(format!("exit {:?}", out.status.code()));
        }
        if stderr.contains("panicked") {
            problems.push("panic".to_string());
        }
        for want in case.expect {
            if !stderr.contains(want) {
                problems.push(format!("missing `{want}`"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n{stderr}", case.name, problems.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
