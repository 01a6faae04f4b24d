//! Loading settings: `config/default.toml` (compiled in) < `--config FILE` <
//! `TERMINUS__SECTION__KEY` environment variables < command-line flags.
//!
//! Every error names where the bad value came from (the file, the
//! environment variable or the flag), the key and the reason.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, ConfigError, Environment, File, FileFormat};
use terminus_actors::{Settings, SettingsError};

/// The compiled-in defaults: every key with its default value.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");
/// Prefix of environment overrides: `TERMINUS__UPSTREAM__CONNECT_TIMEOUT=1s`.
pub const ENV_PREFIX: &str = "TERMINUS";

/// Values given as command-line flags (quick mode), as dotted keys.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    values: Vec<(String, config::Value)>,
}

impl Overrides {
    /// Sets a key from a flag.
    pub fn set(&mut self, key: &str, value: impl Into<config::Value>) {
        self.values.push((key.to_owned(), value.into()));
    }

    fn has(&self, key: &str) -> bool {
        self.values
            .iter()
            .any(|(k, _)| k == key || key.starts_with(&format!("{k}[")) || key.starts_with(&format!("{k}.")))
    }
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The compiled-in defaults.
    Defaults,
    /// The `--config` file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => write!(f, "built-in defaults"),
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag => write!(f, "command line"),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug)]
pub struct LoadError {
    /// Where the bad value came from.
    pub origin: Origin,
    /// The dotted key, when known.
    pub key: Option<String>,
    /// Why it is rejected.
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: `{key}`: {}", self.origin, self.reason),
            None => write!(f, "{}: {}", self.origin, self.reason),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads and validates the settings from all layers. `env` is the process
/// environment in production and a fixed map in tests.
pub fn load(file: Option<&Path>, env: &HashMap<String, String>, flags: &Overrides) -> Result<Settings, LoadError> {
    let file_origin = || file.map_or(Origin::Defaults, |p| Origin::File(p.to_owned()));
    if let Some(path) = file
        && !path.is_file()
    {
        return Err(LoadError { origin: Origin::File(path.to_owned()), key: None, reason: "no such file".into() });
    }
    // Layer by layer, so that an error is blamed on the layer that made it.
    let base = || {
        let mut b = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            b = b.add_source(File::from(path).format(FileFormat::Toml));
        }
        b
    };
    let file_only = base().build().map_err(|e| from_config(e, file_origin()))?;
    file_only.clone().try_deserialize::<Settings>().map_err(|e| from_config(e, file_origin()))?;

    let env_source = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .list_separator(",")
        .with_list_parse_key("upstream.backends")
        .try_parsing(true)
        .source(Some(env.clone()));
    let env_vars: Vec<String> = env.keys().filter(|k| k.starts_with("TERMINUS__")).cloned().collect();
    let env_origin = |key: Option<&str>| {
        let var = key.map(env_var_name).filter(|v| env_vars.contains(v));
        Origin::Env(var.unwrap_or_else(|| env_vars.join(", ")))
    };
    let with_env = base().add_source(env_source.clone()).build().map_err(|e| from_config(e, env_origin(None)))?;
    if !env_vars.is_empty() {
        with_env.try_deserialize::<Settings>().map_err(|e| {
            let mut err = from_config(e, Origin::Defaults);
            err.origin = env_origin(err.key.as_deref());
            err
        })?;
    }

    let mut b = base().add_source(env_source);
    for (key, value) in &flags.values {
        b = b.set_override(key.as_str(), value.clone()).map_err(|e| from_config(e, Origin::Flag))?;
    }
    let settings: Settings = b.build().and_then(Config::try_deserialize).map_err(|e| from_config(e, Origin::Flag))?;

    settings.validate().map_err(|SettingsError { key, reason }| {
        let origin = if flags.has(&key) {
            Origin::Flag
        } else if env_vars.contains(&env_var_name(&key)) {
            Origin::Env(env_var_name(&key))
        } else {
            file_origin()
        };
        LoadError { origin, key: Some(key), reason }
    })?;
    Ok(settings)
}

/// `upstream.connect_timeout` -> `TERMINUS__UPSTREAM__CONNECT_TIMEOUT`.
fn env_var_name(key: &str) -> String {
    let base = key.split('[').next().unwrap_or(key);
    format!("{ENV_PREFIX}__{}", base.replace('.', "__").to_uppercase())
}

fn from_config(e: ConfigError, origin: Origin) -> LoadError {
    match e {
        ConfigError::FileParse { uri, cause } => LoadError {
            origin: uri.map_or(origin, |u| Origin::File(u.into())),
            key: None,
            reason: format!("not valid TOML: {cause}"),
        },
        ConfigError::Type { key, unexpected, expected, .. } => {
            LoadError { origin, key, reason: format!("invalid type: {unexpected}, expected {expected}") }
        }
        ConfigError::At { error, key, .. } => {
            let mut inner = from_config(*error, origin);
            inner.key = match (key, inner.key.take()) {
                (Some(outer), Some(inner_key)) => Some(format!("{outer}.{inner_key}")),
                (Some(k), None) | (None, Some(k)) => Some(k),
                (None, None) => None,
            };
            inner
        }
        ConfigError::Message(msg) => {
            let key = unknown_field(&msg);
            LoadError { origin, key, reason: reason_text(&msg) }
        }
        other => LoadError { origin, key: None, reason: other.to_string() },
    }
}

/// serde's "unknown field `x`, expected one of ..." names the field.
fn unknown_field(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn reason_text(msg: &str) -> String {
    if msg.starts_with("unknown field") { format!("unknown key ({msg})") } else { msg.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("terminus-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const GOOD: &str = r#"
[listener]
cert = "c.pem"
key = "k.pem"
[upstream]
backends = ["127.0.0.1:8080", { address = "127.0.0.1:8081", weight = 3 }]
"#;

    #[test]
    fn layers_apply_in_order() {
        let file = write("good.toml", GOOD);
        let mut env = HashMap::new();
        env.insert("TERMINUS__UPSTREAM__CONNECT_TIMEOUT".into(), "250ms".into());
        env.insert("TERMINUS__RUNTIME__WORKERS".into(), "3".into());
        let mut flags = Overrides::default();
        flags.set("runtime.workers", 5i64);
        let s = load(Some(&file), &env, &flags).expect("loads");
        assert_eq!(s.upstream.backends.len(), 2);
        assert_eq!(s.upstream.backends[1].weight, 3);
        assert_eq!(s.upstream.connect_timeout.as_millis(), 250);
        assert_eq!(s.runtime.workers, 5);
        assert_eq!(s.http.max_head_bytes, 16384);
    }

    #[test]
    fn env_lists_backends() {
        let file = write("nobackends.toml", "[listener]\ncert = \"c\"\nkey = \"k\"\n");
        let mut env = HashMap::new();
        env.insert("TERMINUS__UPSTREAM__BACKENDS".into(), "127.0.0.1:1,127.0.0.1:2".into());
        let s = load(Some(&file), &env, &Overrides::default()).expect("loads");
        assert_eq!(s.upstream.backends.len(), 2);
    }

    #[test]
    fn errors_name_origin_key_and_reason() {
        let cases: &[(&str, &str, &[(&str, &str)], &str, &str)] = &[
            ("unknown.toml", "[listener]\ncertt = \"x\"\n", &[], "unknown.toml", "certt"),
            ("badtype.toml", "[http]\nmax_headers = \"many\"\n", &[], "badtype.toml", "max_headers"),
            ("badduration.toml", "[http]\nheader_timeout = \"soon\"\n", &[], "badduration.toml", "soon"),
            ("badaddr.toml", "[upstream]\nbackends = [\"nowhere\"]\n", &[], "badaddr.toml", "nowhere"),
            ("nobackend.toml", "[listener]\ncert = \"c\"\nkey = \"k\"\n", &[], "nobackend.toml", "upstream.backends"),
            ("syntax.toml", "[listener\n", &[], "syntax.toml", "TOML"),
            (
                "envbad.toml",
                GOOD,
                &[("TERMINUS__HTTP__MAX_HEADERS", "lots")],
                "TERMINUS__HTTP__MAX_HEADERS",
                "max_headers",
            ),
            (
                "envzero.toml",
                GOOD,
                &[("TERMINUS__HTTP__MAX_HEADERS", "0")],
                "TERMINUS__HTTP__MAX_HEADERS",
                "http.max_headers",
            ),
        ];
        for (name, text, env, want_origin, want_text) in cases {
            let file = write(name, text);
            let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let err = load(Some(&file), &env, &Overrides::default()).expect_err(name).to_string();
            assert!(err.contains(want_origin), "{name}: {err}");
            assert!(err.contains(want_text), "{name}: {err}");
        }
    }

    #[test]
    fn missing_file_is_named() {
        let err = load(Some(Path::new("/nonexistent/t.toml")), &HashMap::new(), &Overrides::default())
            .expect_err("missing")
            .to_string();
        assert!(err.contains("/nonexistent/t.toml") && err.contains("no such file"), "{err}");
    }
}
