//! Running the `docker buildx` CLI: the way BuildKit's users drive builders, so the harness exercises
//! the same path. Every call has a time limit, and its child dies with the call (Ctrl-C included).
//!
//! The plugin binary is run directly, in buildx's standalone mode (same binary, arguments, builders and
//! output): `docker buildx X` starts the docker CLI, which starts the plugin once for its metadata and
//! again to run it, about 50 ms of CPU per command that two CLI processes spend on nothing bkcache
//! uses. The docker CLI names its plugin (a client-only `docker info`); where it does not, bkcache runs
//! `docker buildx`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

use crate::artifacts::last_lines;
use crate::errors::InfraError;

/// What one buildx invocation printed.
#[derive(Debug)]
pub struct Invocation {
    pub command: String,
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl Invocation {
    /// Turns a failed invocation into an infrastructure error (for commands that must not fail).
    pub fn require_success(self) -> Result<Invocation, InfraError> {
        if self.success {
            Ok(self)
        } else {
            Err(InfraError::Command { command: self.command, status: self.status, stderr: last_lines(&self.stderr, 8) })
        }
    }
}

/// Runs `docker buildx ARGS...`, capturing its output, killing it after `timeout`.
pub async fn buildx(args: &[String], timeout: Duration) -> Result<Invocation, InfraError> {
    let command = format!("docker buildx {}", args.join(" "));
    let program = program().await;
    tracing::debug!(%command, plugin = ?program, "running");
    let mut child = match program {
        Some(plugin) => Command::new(plugin),
        None => {
            let mut docker = Command::new("docker");
            docker.arg("buildx");
            docker
        }
    };
    let child = child
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(InfraError::io(format!("starting `{command}` (is the docker CLI installed?)")))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(output) => output.map_err(InfraError::io(format!("waiting for `{command}`")))?,
        Err(_) => return Err(InfraError::Timeout { command, seconds: timeout.as_secs() }),
    };
    Ok(Invocation {
        command,
        success: output.status.success(),
        status: output.status.code().map_or_else(|| "signal".into(), |c| c.to_string()),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The buildx plugin the docker CLI would run; `None`: run `docker buildx`.
async fn program() -> Option<&'static Path> {
    static PLUGIN: OnceCell<Option<PathBuf>> = OnceCell::const_new();
    PLUGIN
        .get_or_init(|| async {
            let format = r#"{{range .ClientInfo.Plugins}}{{if eq .Name "buildx"}}{{.Path}}{{end}}{{end}}"#;
            let info = Command::new("docker").args(["info", "--format", format]).stdin(Stdio::null()).output().await;
            let path = info
                .ok()
                .filter(|out| out.status.success())
                .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            let plugin = path.filter(|p| p.is_absolute() && p.is_file());
            if plugin.is_none() {
                tracing::debug!("the docker CLI names no buildx plugin; running `docker buildx`");
            }
            plugin
        })
        .await
        .as_deref()
}

/// A buildx option value (`--cache-to`, `--cache-from`, `--output`): `key=value` fields joined as the CSV
/// line buildx reads them from (Go's encoding/csv), each field quoted when it holds a `,`, a `"` or a
/// line break, so a path such as `/a,dest=/b` stays one value of one key (unquoted, buildx would keep
/// the last `dest`).
pub fn option_value(fields: &[(&str, &str)]) -> String {
    let field = |(key, value): &(&str, &str)| {
        let text = format!("{key}={value}");
        match text.contains([',', '"', '\n', '\r']) {
            true => format!("\"{}\"", text.replace('"', "\"\"")),
            false => text,
        }
    };
    fields.iter().map(field).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod option_tests {
    use super::option_value;

    /// Read back as buildx reads it: one CSV record, each field split at its first `=`.
    fn read_back(value: &str) -> Vec<(String, String)> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(value.as_bytes());
        let record = reader.records().next().unwrap().unwrap();
        record.iter().map(|f| f.split_once('=').map(|(k, v)| (k.into(), v.into())).unwrap()).collect()
    }

    #[test]
    fn a_path_with_commas_quotes_or_equals_stays_one_field() {
        for path in ["/art/c", "/art,dest=/escaped", "/a\"b", "/a=b", "/a b"] {
            let value = option_value(&[("type", "local"), ("dest", path)]);
            assert_eq!(
                read_back(&value),
                [("type".into(), "local".into()), ("dest".into(), path.to_owned())],
                "{value}"
            );
        }
        assert_eq!(option_value(&[("type", "local"), ("dest", "/c")]), "type=local,dest=/c");
    }
}
