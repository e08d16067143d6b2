//! Resolves the connection settings: flags, then `LAKEPORT_*` environment variables (both
//! through clap), then the profile file, then defaults.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use lakeport_client::Connection;

use super::{Exit, GlobalArgs};

const DEFAULT_URL: &str = "http://127.0.0.1:8080";
const DEFAULT_SANDBOX: &str = "prod";
const DEFAULT_API_KEY: &str = "lakeport-cli";
/// The token `lakeport serve` generates on first start, relative to the working directory.
const LOCAL_TOKEN_FILE: &str = "lakeport-data/auth-token";
const PROFILE_KEYS: [&str; 5] = ["url", "token", "org", "sandbox", "api_key"];

/// Settings read from a profile file.
#[derive(Debug, Default, PartialEq)]
struct Profile {
    url: Option<String>,
    token: Option<String>,
    org: Option<String>,
    sandbox: Option<String>,
    api_key: Option<String>,
}

/// Returns the connection for the given flags and environment.
pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Connection> {
    let profile = match &args.profile {
        Some(path) => load(path)?,
        None => match default_profile_path() {
            Some(path) if path.exists() => load(&path)?,
            _ => Profile::default(),
        },
    };
    let pick = |flag: &Option<String>, from_profile: Option<String>| {
        flag.clone()
            .filter(|value| !value.trim().is_empty())
            .or(from_profile.filter(|value| !value.trim().is_empty()))
            .map(|value| value.trim().to_owned())
    };
    let token = match pick(&args.token, profile.token) {
        Some(token) => token,
        None => local_token().ok_or_else(|| {
            Exit::usage(format!(
                "no token: pass --token, set LAKEPORT_TOKEN, put token in the profile, or run next to {LOCAL_TOKEN_FILE}"
            ))
        })?,
    };
    let org = pick(&args.org, profile.org).ok_or_else(|| {
        Exit::usage(
            "no organization: pass --org <ORG>@AdobeOrg, set LAKEPORT_ORG, or put org in the profile",
        )
    })?;
    Ok(Connection {
        url: pick(&args.url, profile.url).unwrap_or_else(|| DEFAULT_URL.to_owned()),
        token,
        api_key: pick(&args.api_key, profile.api_key).unwrap_or_else(|| DEFAULT_API_KEY.to_owned()),
        org,
        sandbox: pick(&args.sandbox, profile.sandbox).unwrap_or_else(|| DEFAULT_SANDBOX.to_owned()),
    })
}

/// Returns `$XDG_CONFIG_HOME/lakeport/profile.toml`, else `~/.config/lakeport/profile.toml`.
fn default_profile_path() -> Option<PathBuf> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|dir| !dir.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(config_home.join("lakeport").join("profile.toml"))
}

fn local_token() -> Option<String> {
    std::fs::read_to_string(LOCAL_TOKEN_FILE)
        .ok()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

fn load(path: &Path) -> anyhow::Result<Profile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the profile {}", path.display()))?;
    parse(&text).map_err(|reason| Exit::usage(format!("profile {}: {reason}", path.display())))
}

/// Parses a profile: a flat TOML table of strings with the keys in `PROFILE_KEYS`
/// (`api-key` is accepted for `api_key`).
fn parse(text: &str) -> Result<Profile, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| err.message().to_owned())?;
    let mut profile = Profile::default();
    for (key, value) in table {
        let Some(value) = value.as_str().map(str::to_owned) else {
            return Err(format!("{key} must be a string"));
        };
        let slot = match key.replace('-', "_").as_str() {
            "url" => &mut profile.url,
            "token" => &mut profile.token,
            "org" => &mut profile.org,
            "sandbox" => &mut profile.sandbox,
            "api_key" => &mut profile.api_key,
            _ => {
                return Err(format!(
                    "unknown key {key:?}; allowed: {}",
                    PROFILE_KEYS.join(", ")
                ));
            }
        };
        *slot = Some(value);
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_flat_string_tables_with_known_keys() {
        let profile =
            parse("url = \"http://h:1\"\napi-key = \"k\"\norg = \"O@AdobeOrg\"\n").unwrap();
        assert_eq!(profile.url.as_deref(), Some("http://h:1"));
        assert_eq!(profile.api_key.as_deref(), Some("k"));
        assert_eq!(profile.org.as_deref(), Some("O@AdobeOrg"));
        assert!(
            parse("tokn = \"x\"")
                .unwrap_err()
                .starts_with("unknown key \"tokn\"")
        );
        assert_eq!(
            parse("sandbox = 3").unwrap_err(),
            "sandbox must be a string"
        );
    }
}
