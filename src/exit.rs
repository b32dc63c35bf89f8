//! Process exit codes, following BSD `sysexits.h` so that systemd units and
//! scripts can tell a broken configuration from a transient failure.
//!
//! | code | name | when |
//! | --- | --- | --- |
//! | 0 | OK | success; also a clean shutdown on SIGTERM/SIGINT |
//! | 1 | FAILURE | an unexpected runtime failure |
//! | 2 | USAGE | wrong command-line arguments (printed by clap) |
//! | 65 | DATAERR | `classify`: no input file could be decoded; `calibrate`/`eval`/`bank`: a malformed manifest or no image of the labels |
//! | 66 | NOINPUT | an input path or source folder does not exist or holds no image; manifest paths that do not exist |
//! | 73 | CANTCREAT | the MQTT spool (state directory) cannot be created or opened |
//! | 74 | IOERR | writing output failed (e.g. stdout closed) |
//! | 75 | TEMPFAIL | the configured camera is not there at start-up (no such device node, or no camera answers): systemd restarts the service every `RestartSec` until it appears (a USB camera that enumerates late at boot, or is unplugged) |
//! | 78 | CONFIG | the configuration file or the model bundle is invalid, or the configured camera cannot be used at start-up (permission denied, no fitting format): fix it, restarting will not help (`RestartPreventExitStatus=78`) |

/// Success.
pub const OK: u8 = 0;
/// An unexpected runtime failure.
pub const FAILURE: u8 = 1;
/// Command-line usage error (clap's own code).
pub const USAGE: u8 = 2;
/// Input data was unusable (`EX_DATAERR`).
pub const DATAERR: u8 = 65;
/// An input file or folder is missing or empty (`EX_NOINPUT`).
pub const NOINPUT: u8 = 66;
/// The state directory or spool cannot be created or opened (`EX_CANTCREAT`).
pub const CANTCREAT: u8 = 73;
/// An I/O error on output (`EX_IOERR`).
pub const IOERR: u8 = 74;
/// The camera is not there (yet): worth retrying (`EX_TEMPFAIL`).
pub const TEMPFAIL: u8 = 75;
/// Configuration or model bundle error (`EX_CONFIG`).
pub const CONFIG: u8 = 78;

/// Every exit code above, in order (the `--help` text lists each).
pub const ALL: [u8; 9] = [
    OK, FAILURE, USAGE, DATAERR, NOINPUT, CANTCREAT, IOERR, TEMPFAIL, CONFIG,
];

/// An error that carries its own exit code (one of the constants above).
#[derive(Debug, thiserror::Error)]
#[error("{1}")]
pub struct CodedError(pub u8, pub String);
