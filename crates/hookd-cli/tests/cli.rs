//! `hookd --version` and `hookd check-config` through the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The packaged configuration file (/etc/hookd/hookd.toml).
fn packaged_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/hookd.toml")
}

/// Runs hookd with only the given variables (none of the caller's HOOKD_* leak in).
fn hookd(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run hookd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_names_the_version_the_commit_and_the_build_date() {
    let output = hookd(&["--version"], &[]);
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    let (version, rest) = stdout
        .trim()
        .strip_prefix(concat!("hookd ", env!("CARGO_PKG_VERSION"), " (commit "))
        .and_then(|rest| rest.split_once(", built "))
        .unwrap_or_else(|| panic!("unexpected --version: {stdout}"));
    // A git checkout gives the short hash; a source tarball says so.
    assert!(
        version == "unknown"
            || (version.len() == 12 && version.chars().all(|c| c.is_ascii_hexdigit())),
        "{stdout}"
    );
    let date = rest.strip_suffix(')').unwrap_or_default();
    let parts: Vec<&str> = date.split('-').collect();
    assert!(
        parts.len() == 3
            && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
            && parts[0].len() == 4,
        "not a YYYY-MM-DD date: {stdout}"
    );
}

#[test]
fn the_packaged_configuration_is_valid() {
    let config = packaged_config();
    let output = hookd(
        &[
            "check-config",
            "--config",
            config.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(
        stdout.contains("database SQLite file /var/lib/hookd/hookd.db"),
        "{stdout}"
    );
}

#[test]
fn a_bad_file_is_refused_with_its_name_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        // A value that does not parse names its setting.
        ("request_timeout = \"soon\"\n", "HOOKD_REQUEST_TIMEOUT"),
        // An unknown key (a typo) is not ignored.
        ("listn = \"0.0.0.0:8071\"\n", "unknown field `listn`"),
        // Not TOML at all.
        ("listen = \n", "invalid configuration file"),
    ];
    for (i, (contents, expected)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(&path, contents).expect("write");
        let path = path.to_str().expect("utf-8 path");
        let output = hookd(&["check-config", "--config", path], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{contents:?}: {stderr}");
        assert!(stderr.contains(expected), "{contents:?}: {stderr}");
        assert!(
            stderr.contains("is not valid") && stderr.contains(path),
            "{stderr}"
        );
        assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    }
    let missing = dir.path().join("missing.toml");
    let output = hookd(
        &["check-config", "--config", missing.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("cannot read"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn the_environment_is_checked_too_and_wins_over_the_file() {
    let config = packaged_config();
    let config = config.to_str().expect("utf-8 path");
    // A bad variable fails even with a good file, and no secret is echoed.
    let output = hookd(
        &["check-config", "--config", config],
        &[("HOOKD_ADMIN_TOKEN", "short-secret")],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HOOKD_ADMIN_TOKEN"), "{stderr}");
    assert!(
        !stderr.contains("short-secret"),
        "the secret leaked: {stderr}"
    );

    // PostgreSQL from the environment over SQLite from the file; then a main secret is required.
    let output = hookd(
        &["check-config", "--config", config],
        &[(
            "HOOKD_DATABASE_URL",
            "postgres://hookd:pw@db.internal/hookd",
        )],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HOOKD_MAIN_SECRET"), "{stderr}");

    // A misspelt variable is only a warning; the password of the URL is never printed.
    let output = hookd(
        &["check-config", "--config", config],
        &[
            (
                "HOOKD_DATABASE_URL",
                "postgres://hookd:pw@db.internal/hookd",
            ),
            ("HOOKD_MAIN_SECRET", "0123456789abcdef0123456789abcdef"),
            ("HOOKD_LISTN", "0.0.0.0:80"),
        ],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("warning: HOOKD_LISTN is not a hookd setting"),
        "{stderr}"
    );
    assert!(stdout.contains("database PostgreSQL"), "{stdout}");
    assert!(
        !stdout.contains("pw@") && !stdout.contains("0123456789abcdef"),
        "{stdout}"
    );
}
