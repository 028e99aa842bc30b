//! Rendering `templates/agent.yaml.j2` for one restaurant.
//!
//! minijinja with non-default delimiters (`[[ ]]`, `[% %]`, `[# #]`) so sip-agent-server's own
//! `={{…}}` expressions are plain text in the template, and strict undefined so a typo in a
//! variable name is an error with the template's line instead of an empty field.

use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::front::expr::{self, ExprErrorKind, Root};
use crate::front::yaml::escape_token;
use crate::model::spec::{AccountSpec, Project, Restaurant};

/// The environment a template sees besides the restaurant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderEnv {
    /// The platform's base URL (`apiBaseUrl`, what `{{BASE_URL}}` means).
    pub app_url: String,
}

impl RenderEnv {
    /// `NEXT_PUBLIC_APP_URL` wins over `sipform.yaml`'s `app.url`.
    pub fn from_env(project: &Project) -> Self {
        let app_url = std::env::var("NEXT_PUBLIC_APP_URL")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| project.app.url.clone());
        RenderEnv {
            app_url: app_url.trim_end_matches('/').to_string(),
        }
    }
}

/// A template problem: the template's line when minijinja knows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct RenderError {
    pub line: Option<usize>,
    pub message: String,
}

/// The restaurant fields that may be NULL: always present in the context (as none), so a
/// template can write `restaurant.ai_voice or "sage"` under strict undefined.
const NULLABLE: &[&str] = &[
    "phone",
    "contact_email",
    "ai_voice",
    "timezone",
    "transfer_phone_number",
    "chat_mode",
    "chat_title",
    "max_call_duration_sec",
];

const NAME: &str = "agent";

/// The work one restaurant's render may do, in minijinja fuel (about one instruction, or 64
/// bytes of output, per unit). A template runs once per restaurant, unattended: without a bound,
/// a nested `range(100000)` never ends. The bundled template costs about 200 (520 with the
/// longest name and chat title the schema allows; see the tests); this is 190 times that, or
/// 6 MB of output, and a runaway loop still stops within milliseconds.
pub(crate) const RENDER_FUEL: u64 = 100_000;

/// A compiled template, reused for every restaurant.
pub(crate) struct Renderer {
    env: Environment<'static>,
    pub path: PathBuf,
    pub source: String,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("path", &self.path)
            .finish()
    }
}

/// The delimiters sipform templates use.
pub fn syntax() -> Result<SyntaxConfig, minijinja::Error> {
    SyntaxConfig::builder()
        .block_delimiters("[%", "%]")
        .variable_delimiters("[[", "]]")
        .comment_delimiters("[#", "#]")
        .keep_trailing_newline(true)
        .build()
}

fn to_render_error(e: &minijinja::Error) -> RenderError {
    let mut message = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    match e.kind() {
        minijinja::ErrorKind::UndefinedError => message.push_str(" (a variable or attribute the context does not have; the context is restaurant, app_url, account)"),
        minijinja::ErrorKind::OutOfFuel => {
            message = format!(
                "the template does too much work for one restaurant (more than {RENDER_FUEL} units of fuel: a loop too large or without end?); render less per restaurant"
            );
        }
        _ => {}
    }
    RenderError {
        line: e.line(),
        message,
    }
}

impl Renderer {
    /// Compiles `source` (the text of `path`).
    pub fn new(path: &Path, source: String) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_syntax(syntax().map_err(|e| to_render_error(&e))?);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(RENDER_FUEL));
        env.add_template_owned(NAME, source.clone())
            .map_err(|e| to_render_error(&e))?;
        // A misspelt variable is an error even under a filter (`| tojson`), `| default` aside.
        let tmpl = env.get_template(NAME).map_err(|e| to_render_error(&e))?;
        crate::front::strict::check(&env, &tmpl, &source, NULLABLE).map_err(|u| RenderError {
            line: u.line,
            message: u.message,
        })?;
        Ok(Renderer {
            env,
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and compiles the template file.
    pub fn from_file(path: &Path) -> Result<Self, RenderError> {
        let bytes = super::load::read_input(path).map_err(|e| RenderError {
            line: None,
            message: format!("the template {}: {e}", path.display()),
        })?;
        let source = String::from_utf8(bytes).map_err(|e| RenderError {
            line: None,
            message: format!("cannot read the template: not valid UTF-8 ({e})"),
        })?;
        Renderer::new(path, source)
    }

    /// The YAML text for one restaurant.
    pub fn render(
        &self,
        restaurant: &Restaurant,
        env: &RenderEnv,
        account: &AccountSpec,
    ) -> Result<String, RenderError> {
        self.render_context(&context(restaurant, env, account))
    }

    fn render_context(&self, ctx: &Value) -> Result<String, RenderError> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| to_render_error(&e))?;
        tmpl.render(minijinja::Value::from(minijinja::value::Serde(ctx)))
            .map_err(|e| to_render_error(&e))
    }

    /// The fields of `rendered` (this restaurant's render, parsed) that would reach the server
    /// as expressions, or with other `{{…}}` references, because of the restaurant's own data.
    ///
    /// Restaurants are tenant data (in database mode anyone who can name a restaurant writes
    /// them), and the server evaluates any string starting with `=`. Escaping is not possible:
    /// the contract has no escape for a leading `=`, nor for `{{` inside an expression. So such
    /// a restaurant is refused (its caller skips it, naming the field and the column) and the
    /// others go on.
    ///
    /// How the data is followed through the template: the template may filter, concatenate or
    /// branch on restaurant values, so matching rendered text against the inventory would miss
    /// cases. Instead the values that could shape an expression (those starting with `=` or
    /// holding a brace) are marked by neutralising them (`=`, `{`, `}` become `_`) and the
    /// template is rendered a second time: a field that is an expression in the real render but
    /// not in the neutral one got its `=` from the inventory; one whose references differ got
    /// them from the inventory. Ordinary data is not touched, and costs no second render.
    pub(crate) fn tenant_expressions(
        &self,
        restaurant: &Restaurant,
        env: &RenderEnv,
        account: &AccountSpec,
        rendered: &Value,
    ) -> Vec<TenantExpression> {
        let ctx = context(restaurant, env, account);
        let suspects = suspects(&ctx);
        if suspects.is_empty() {
            return Vec::new();
        }
        let neutral = self.neutral_render(&ctx, &suspects);
        let mut sites = Vec::new();
        string_leaves(rendered, String::new(), &mut sites);
        sites
            .into_iter()
            .filter_map(|(pointer, text)| {
                let leading = tenant_shaped(&pointer, text, neutral.as_ref(), &suspects)?;
                let (column, value) = blame(&suspects, text, leading)?;
                Some(TenantExpression {
                    pointer,
                    column: column.clone(),
                    value: value.clone(),
                    leading,
                })
            })
            .collect()
    }

    /// The render with every suspect value neutralised (see [`Renderer::tenant_expressions`]),
    /// parsed. A neutral render that fails tells nothing: `None`, and every field is then
    /// judged by its text.
    fn neutral_render(&self, ctx: &Value, suspects: &[(String, String)]) -> Option<Value> {
        let mut neutral_ctx = ctx.clone();
        if let Some(Value::Object(m)) = neutral_ctx.get_mut("restaurant") {
            for (k, v) in suspects {
                m.insert(k.clone(), Value::String(neutralise(v)));
            }
        }
        self.render_context(&neutral_ctx)
            .ok()
            .and_then(|t| crate::front::yaml::parse(&t).ok())
            .map(|(v, _)| v)
    }
}

/// The restaurant's columns (name, value) whose value could shape an expression.
fn suspects(ctx: &Value) -> Vec<(String, String)> {
    ctx.get("restaurant")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .filter(|(_, v)| could_shape_expression(v))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the rendered field `text` at `pointer` is an expression the inventory shaped:
/// `Some(true)` when the inventory gave it its leading `=`, `Some(false)` when it changed its
/// references, `None` when the template alone made it (or it is no expression). `neutral` is
/// the neutral render, when there is one.
fn tenant_shaped(
    pointer: &str,
    text: &str,
    neutral: Option<&Value>,
    suspects: &[(String, String)],
) -> Option<bool> {
    let shape = expression_shape(text)?;
    match neutral
        .and_then(|n| n.pointer(pointer))
        .and_then(Value::as_str)
    {
        Some(n) => match expression_shape(n) {
            None => Some(true),
            Some(n_shape) if n_shape != shape => Some(false),
            Some(_) => None,
        },
        None => {
            if !suspects.iter().any(|(_, v)| text.contains(v.as_str())) {
                return None;
            }
            Some(
                suspects
                    .iter()
                    .any(|(_, v)| v.starts_with('=') && text.starts_with(v.as_str())),
            )
        }
    }
}

/// The column to blame for a tenant-shaped field: the one whose value the field starts with
/// (leading `=`) or contains (references); else the first that could have done it.
fn blame<'s>(
    suspects: &'s [(String, String)],
    text: &str,
    leading: bool,
) -> Option<&'s (String, String)> {
    suspects
        .iter()
        .find(|(_, v)| {
            if leading {
                v.starts_with('=') && text.starts_with(v.as_str())
            } else {
                v.contains(['{', '}']) && text.contains(v.as_str())
            }
        })
        .or_else(|| {
            suspects
                .iter()
                .find(|(_, v)| !leading || v.starts_with('='))
        })
        .or_else(|| suspects.first())
}

/// A rendered field that would reach the server as an expression shaped by inventory data
/// (see [`Renderer::tenant_expressions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantExpression {
    /// JSON pointer of the rendered field, e.g. `/agent/name`.
    pub pointer: String,
    /// The restaurant column the data came from, e.g. `name`.
    pub column: String,
    /// That column's value.
    pub value: String,
    /// True when the inventory gave the field its leading `=`; false when it put `{{…}}` (or
    /// braces) into an expression the template wrote.
    pub leading: bool,
}

/// Whether an inventory value could make or change an expression once rendered.
fn could_shape_expression(v: &str) -> bool {
    v.starts_with('=') || v.contains(['{', '}'])
}

/// The value with what could make or change an expression replaced by `_`.
fn neutralise(v: &str) -> String {
    v.chars()
        .enumerate()
        .map(|(i, c)| match c {
            '=' if i == 0 => '_',
            '{' | '}' => '_',
            c => c,
        })
        .collect()
}

/// What an expression does, independent of the literal text around its references: `None`
/// for a literal; the references' roots and paths, or the kind of parse error.
#[allow(clippy::type_complexity)]
fn expression_shape(s: &str) -> Option<Result<Vec<(Root, Vec<String>)>, ExprErrorKind>> {
    match expr::parse(s) {
        Ok(None) => None,
        Ok(Some(refs)) => Some(Ok(refs.into_iter().map(|r| (r.root, r.segments)).collect())),
        Err(e) => Some(Err(e.kind)),
    }
}

/// Every string of `value` with its JSON pointer (below `pointer`).
pub(crate) fn string_leaves<'a>(
    value: &'a Value,
    pointer: String,
    out: &mut Vec<(String, &'a str)>,
) {
    match value {
        Value::String(s) => out.push((pointer, s)),
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                string_leaves(v, format!("{pointer}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                string_leaves(v, format!("{pointer}/{}", escape_token(k)), out);
            }
        }
        _ => {}
    }
}

/// The template's context: `restaurant`, `app_url`, `account`.
pub fn context(restaurant: &Restaurant, env: &RenderEnv, account: &AccountSpec) -> Value {
    let mut r = match serde_json::to_value(restaurant) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for k in NULLABLE {
        r.entry(k.to_string()).or_insert(Value::Null);
    }
    serde_json::json!({
        "restaurant": r,
        "app_url": env.app_url,
        "account": {"name": account.name, "email": account.email},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spec::{ChatMode, RenderedAgent, TransportType};

    fn restaurant() -> Restaurant {
        serde_json::from_value(serde_json::json!({"id": "r-1", "name": "Chez \"Toto\" & fils"}))
            .unwrap()
    }

    fn account() -> AccountSpec {
        AccountSpec {
            name: "AlloResto".into(),
            email: "a@b.c".into(),
        }
    }

    fn bundled() -> Renderer {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates/agent.yaml.j2");
        Renderer::from_file(&p).unwrap()
    }

    fn render(r: &Restaurant) -> RenderedAgent {
        let env = RenderEnv {
            app_url: "https://app.example".into(),
        };
        let text = bundled().render(r, &env, &account()).unwrap();
        let (v, _) = crate::front::yaml::parse(&text).unwrap();
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn platform_defaults() {
        let a = render(&restaurant());
        assert_eq!(a.agent.name, "Chez \"Toto\" & fils");
        assert_eq!(a.agent.ai_voice, "sage");
        assert_eq!(a.agent.timezone, "Europe/Paris");
        assert_eq!(a.agent.ai_model, "gpt-realtime");
        assert_eq!(a.agent.max_call_duration_sec, 600);
        assert_eq!(a.agent.vad_threshold, 0.5);
        assert_eq!(a.agent.vad_silence_ms, 500);
        assert_eq!(a.agent.vad_prefix_padding_ms, 300);
        assert_eq!(a.agent.temperature, 0.7);
        assert_eq!(a.agent.transport_type, TransportType::SipBridge);
        assert_eq!(a.agent.chat_mode, ChatMode::Text);
        assert_eq!(a.agent.base_prompt, "={{data.systemPrompt}}");
        assert_eq!(a.agent.on_call_end_webhook, "={{BASE_URL}}/api/calls");
        assert_eq!(a.agent.api_base_url, "https://app.example");
        assert_eq!(
            a.agent.external_session_url,
            "=https://app.example/api/ai?restaurantId={{config.restaurantId}}&callerPhone={{callerPhone}}"
        );
        assert!(a.agent.is_active);
        assert_eq!(a.final_customer.currency, "EUR");
        assert_eq!(a.final_customer.cost_margin_pct, 30.0);
        assert_eq!(a.final_customer.email, None);
        assert!(a.final_customer.is_active);
    }

    #[test]
    fn transfer_needs_number_and_not_automatic() {
        let mut r = restaurant();
        r.transfer_enabled = true;
        assert!(!render(&r).agent.config.transfer_enabled);
        r.transfer_phone_number = Some("+33100000000".into());
        assert!(render(&r).agent.config.transfer_enabled);
        r.transfer_automatic = true;
        assert!(!render(&r).agent.config.transfer_enabled);
    }

    #[test]
    fn final_customer_active_with_chat_only() {
        let mut r = restaurant();
        r.sip_enabled = false;
        let a = render(&r);
        assert!(!a.agent.is_active && !a.final_customer.is_active);
        r.chat_enabled = true;
        assert!(render(&r).final_customer.is_active);
    }

    #[test]
    fn undefined_variable_names_the_line() {
        // Found as the template compiles (front::strict), else as it renders.
        let e = match Renderer::new(Path::new("t.j2"), "a: 1\nb: [[ restaurant.nope ]]\n".into()) {
            Err(e) => e,
            Ok(r) => {
                let env = RenderEnv {
                    app_url: "http://x".into(),
                };
                r.render(&restaurant(), &env, &account()).unwrap_err()
            }
        };
        assert_eq!(e.line, Some(2), "{e:?}");
    }

    /// The fuel one render spends (the budget minus what is left).
    fn cost(r: &Renderer, restaurant: &Restaurant) -> u64 {
        let env = RenderEnv {
            app_url: "https://app.example".into(),
        };
        let ctx = context(restaurant, &env, &account());
        let tmpl = r.env.get_template(NAME).unwrap();
        let captured = tmpl
            .render_captured(minijinja::Value::from(minijinja::value::Serde(&ctx)))
            .unwrap();
        captured.state().fuel_levels().unwrap().0
    }

    #[test]
    fn the_bundled_template_stays_far_below_the_budget() {
        let r = bundled();
        let mut worst = 0;
        for i in 0..10_000usize {
            let long = "é".repeat(255);
            let restaurant: Restaurant = serde_json::from_value(serde_json::json!({
                "id": format!("00000000-0000-4000-8000-{i:012}"),
                "name": if i % 100 == 0 { long.clone() } else { format!("Restaurant {i}") },
                "chat_title": if i % 100 == 0 { Some("t".repeat(100)) } else { None },
                "contact_email": format!("r{i}@example.fr"),
                "transfer_enabled": i % 7 == 0,
                "transfer_phone_number": "+33600000000",
                "chat_enabled": i % 4 == 0,
                "sip_enabled": i % 3 != 0,
            }))
            .unwrap();
            worst = worst.max(cost(&r, &restaurant));
        }
        // The longest names and titles the schema allows still leave a 100-fold margin.
        assert!(worst > 0 && worst * 100 < RENDER_FUEL, "worst cost {worst}");
    }

    #[test]
    fn an_endless_loop_is_stopped_at_its_line() {
        let r = Renderer::new(
            Path::new("t.j2"),
            "a: 1\n[% for i in range(100000) %][% for j in range(100000) %][[ j ]][% endfor %][% endfor %]\n".into(),
        )
        .unwrap();
        let env = RenderEnv {
            app_url: "http://x".into(),
        };
        let start = std::time::Instant::now();
        let e = r.render(&restaurant(), &env, &account()).unwrap_err();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(e.line, Some(2), "{e:?}");
        assert!(e.message.contains("too much work"), "{e:?}");
    }

    fn tainted(r: &Restaurant, template: &str) -> Vec<TenantExpression> {
        let renderer = Renderer::new(Path::new("t.j2"), template.into()).unwrap();
        let env = RenderEnv {
            app_url: "https://app.example".into(),
        };
        let text = renderer.render(r, &env, &account()).unwrap();
        let (v, _) = crate::front::yaml::parse(&text).unwrap();
        renderer.tenant_expressions(r, &env, &account(), &v)
    }

    #[test]
    fn inventory_data_never_becomes_an_expression() {
        let mut r = restaurant();
        r.name = "={{callerPhone}}".into();
        r.chat_title = Some("{{callerPhone}}".into());
        let bundled = bundled();
        let env = RenderEnv {
            app_url: "https://app.example".into(),
        };
        let text = bundled.render(&r, &env, &account()).unwrap();
        let (v, _) = crate::front::yaml::parse(&text).unwrap();
        let found = bundled.tenant_expressions(&r, &env, &account(), &v);
        let pointers: Vec<&str> = found.iter().map(|t| t.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/finalCustomer/name", "/agent/name"],
            "{found:?}"
        );
        assert!(found.iter().all(|t| t.leading && t.column == "name"));

        // Through a filter and a concatenation, and into an expression the template writes.
        let t = "a: [[ (restaurant.name | lower ~ \" x\") | tojson ]]\nb: [[ (\"={{config.x}}/\" ~ restaurant.chat_title) | tojson ]]\nc: [[ restaurant.chat_title | tojson ]]\n";
        let found = tainted(&r, t);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!((found[0].pointer.as_str(), found[0].leading), ("/a", true));
        assert_eq!((found[1].pointer.as_str(), found[1].leading), ("/b", false));
        assert_eq!(found[1].column, "chat_title");

        // Template expressions and ordinary data pass; so does `{{` in a literal field.
        let mut ok = restaurant();
        ok.chat_title = Some("Bonjour {{client}}".into());
        let t = "a: \"={{config.x}}/[[ app_url ]]\"\nb: [[ restaurant.name | tojson ]]\nc: [[ restaurant.chat_title | tojson ]]\n";
        assert!(tainted(&ok, t).is_empty());
    }

    #[test]
    fn expressions_pass_through() {
        let r = Renderer::new(
            Path::new("t.j2"),
            "x: \"={{BASE_URL}}/[[ app_url ]]\"\n".into(),
        )
        .unwrap();
        let env = RenderEnv {
            app_url: "u".into(),
        };
        assert_eq!(
            r.render(&restaurant(), &env, &account()).unwrap(),
            "x: \"={{BASE_URL}}/u\"\n"
        );
    }
}
