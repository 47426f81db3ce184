//! `hookd check-config`: what the command line can say about settings beyond parsing them.
//!
//! Parsing and validating is the library's (`RawSettings::with_file`, then `resolve`), exactly
//! as `serve` does it. A misspelt variable (`HOOKD_LISTN`) is not an error there, since an
//! unknown variable is simply not read; this module finds those by comparing the environment
//! with every variable the command line declares.

use std::collections::BTreeSet;
use std::ffi::OsString;

use hookd::config::Settings;

/// Variables read outside clap (the log filter is read by the telemetry module).
const READ_ELSEWHERE: &[&str] = &["HOOKD_LOG"];

/// The `HOOKD_*` variables of `vars` that no argument of `command` (or its sub-commands)
/// reads, sorted.
pub fn unknown_variables(
    command: &clap::Command,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<String> {
    let mut known: BTreeSet<String> = READ_ELSEWHERE.iter().map(|v| (*v).to_string()).collect();
    collect_env(command, &mut known);
    let unknown: BTreeSet<String> = vars
        .into_iter()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("HOOKD_") && !known.contains(name))
        .collect();
    unknown.into_iter().collect()
}

fn collect_env(command: &clap::Command, known: &mut BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env().and_then(|env| env.to_str()) {
            known.insert(env.to_string());
        }
    }
    for sub in command.get_subcommands() {
        collect_env(sub, known);
    }
}

/// One line on what the settings amount to, without any secret: a PostgreSQL URL may carry
/// a password, so only the backend is named.
pub fn summary(settings: &Settings) -> String {
    let database = match settings.database_url.strip_prefix("sqlite://") {
        Some(path) => format!("SQLite file {path}"),
        None => "PostgreSQL".to_string(),
    };
    let role = match settings.role {
        hookd::config::Role::Api => "api",
        hookd::config::Role::Worker => "worker",
        hookd::config::Role::All => "all",
    };
    format!(
        "listen {}, role {role}, database {database}, main secret {}, admin token {}",
        settings.listen,
        if settings.main_secret.is_some() {
            "set"
        } else {
            "from the key file beside the database"
        },
        if settings.admin_token.is_some() {
            "set"
        } else {
            "not set"
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_variables_nothing_reads_are_reported() {
        let command = clap::Command::new("t")
            .arg(clap::Arg::new("listen").long("listen").env("HOOKD_LISTEN"))
            .subcommand(
                clap::Command::new("sub")
                    .arg(clap::Arg::new("role").long("role").env("HOOKD_ROLE")),
            );
        let vars = [
            "HOOKD_LISTEN",
            "HOOKD_ROLE",
            "HOOKD_LOG",
            "HOOKD_LISTN",
            "PATH",
            "HOOKD_ZZZ",
        ]
        .map(|name| (OsString::from(name), OsString::from("x")));
        assert_eq!(
            unknown_variables(&command, vars),
            ["HOOKD_LISTN", "HOOKD_ZZZ"]
        );
    }
}
