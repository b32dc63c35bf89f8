//! Reading the files a user names in configs and manifests (config,
//! manifest, thresholds, password, certificates, model, kNN bank): regular
//! files only, with a size cap, so a path to `/dev/zero`, a FIFO or a huge
//! file by mistake is refused with a message instead of hanging the daemon
//! or exhausting its memory.

// Parses bytes from outside: no indexing or slicing that could panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// Size cap for text files such as configs, manifests and thresholds: 16 MiB.
pub const TEXT_MAX_BYTES: u64 = 16 << 20;

/// Reads a regular file of at most `max_bytes` bytes.
///
/// # Errors
/// The I/O error; `InvalidInput` when the path is not a regular file (a
/// device, FIFO, socket or folder) or the file is larger than `max_bytes`.
pub fn read_capped(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a folder, device or pipe)",
        ));
    }
    if meta.len() > max_bytes {
        return Err(too_big(meta.len(), max_bytes));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // Read one byte past the cap: the file may grow while it is read.
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

/// [`read_capped`] with [`TEXT_MAX_BYTES`], as UTF-8 text.
///
/// # Errors
/// As [`read_capped`]; `InvalidData` when the file is not UTF-8.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_capped(path, TEXT_MAX_BYTES)?)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "not UTF-8 text"))
}

/// A warning when a file holding a secret (password, private key) can be
/// read by users other than its owner and group (mode `o+r`), e.g. "MQTT
/// password file /etc/camtrapd/pw can be read by every user on this machine
/// (mode 644): chmod 600 /etc/camtrapd/pw". `None` when it is private or its
/// mode cannot be read.
pub fn secret_exposure(path: &Path, what: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o004 != 0).then(|| {
        format!(
            "{what} {} can be read by every user on this machine (mode {mode:o}): chmod 600 {0} (or 640 with group camtrapd)",
            path.display()
        )
    })
}

fn too_big(len: u64, max: u64) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{len} bytes, over the limit of {max} bytes for this kind of file"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_folders_and_oversized_files_are_refused() {
        let e = read_text(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_text(Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![b'a'; 100]).unwrap();
        assert_eq!(read_capped(&p, 100).unwrap().len(), 100);
        let e = read_capped(&p, 99).unwrap_err();
        assert!(
            e.to_string().contains("100 bytes, over the limit of 99"),
            "{e}"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            secret_exposure(&p, "MQTT password file").unwrap(),
            format!(
                "MQTT password file {0} can be read by every user on this machine (mode 644): chmod 600 {0} (or 640 with group camtrapd)",
                p.display()
            )
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(secret_exposure(&p, "MQTT password file"), None);
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert_eq!(read_text(&p).unwrap_err().kind(), ErrorKind::InvalidData);
    }
}
