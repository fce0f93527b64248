//! Running the `docker buildx` CLI: the way BuildKit's users drive builders, so the harness exercises
//! the same path. Every call has a time limit, and its child dies with the call (Ctrl-C included).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

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
    tracing::debug!(%command, "running");
    let child = Command::new("docker")
        .arg("buildx")
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

/// The last `n` non-empty lines of some output, for error messages.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
