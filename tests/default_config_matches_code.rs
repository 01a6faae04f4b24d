//! `config/default.toml` documents every key with its default: loading it
//! gives exactly the defaults the engine uses in code.

use terminus_actors::Settings;

#[test]
fn default_toml_equals_code_defaults() {
    let text = include_str!("../config/default.toml");
    let loaded: Settings = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .expect("default.toml parses")
        .try_deserialize()
        .expect("default.toml deserializes");
    assert_eq!(loaded, Settings::default());
}
