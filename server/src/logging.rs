//! Log output. Every line goes through [`ControlEscapingWriter`], so text a
//! client sent (a client ID, a username, a path) can never start a forged
//! line, move the cursor or hide behind terminal escape sequences, whatever
//! field it reaches and however it was formatted.

use std::io::{self, Write};
use tracing_subscriber::fmt::MakeWriter;

/// Writes to stderr, escaping control characters (all but the newline that
/// ends a line) as `\xNN`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ControlEscapingStderr;

pub struct ControlEscapingWriter<W: Write>(pub W);

/// `buf` with every control byte except a final newline written as `\xNN`.
pub fn escape_controls(buf: &[u8]) -> Vec<u8> {
    let (body, newline) = match buf.split_last() {
        Some((b'\n', rest)) => (rest, true),
        _ => (buf, false),
    };
    let mut out = Vec::with_capacity(buf.len() + 8);
    for &b in body {
        if b < 0x20 || b == 0x7f {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    if newline {
        out.push(b'\n');
    }
    out
}

impl<W: Write> Write for ControlEscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter hands over one whole event per call.
        self.0.write_all(&escape_controls(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for ControlEscapingStderr {
    type Writer = ControlEscapingWriter<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        ControlEscapingWriter(io::stderr())
    }
}

/// Installs the global subscriber: `KEYGATE_LOG` (an `EnvFilter`, default
/// `info`), `KEYGATE_LOG_FORMAT=json` for JSON lines.
pub fn init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KEYGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json_logs = std::env::var("KEYGATE_LOG_FORMAT").is_ok_and(|f| f == "json");
    // No colours: escape sequences of our own would be escaped like anyone's.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(ControlEscapingStderr);
    if json_logs {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_forge_lines() {
        let line = b"INFO client authentication failed client_id=kgc_x\x1b[2J\nFORGED admin signed in\x00\n";
        let out = String::from_utf8(escape_controls(line)).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(out.ends_with('\n'));
        assert!(out.contains("kgc_x\\x1b[2J\\x0aFORGED admin signed in\\x00"), "{out}");
        assert_eq!(escape_controls("plain ünïcode\n".as_bytes()), "plain ünïcode\n".as_bytes());
    }
}
