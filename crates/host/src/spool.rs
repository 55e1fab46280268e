//! The error-log spool: `<home>/errors.log`, one JSON object per line, where every component of
//! the home appends what it refused (durably, before the refusal is answered), and from which the
//! next command that writes the archive moves the entries in (docs/boxes.md, "The error log").
//!
//! Moving is done in bounded chunks, each one archive transaction, and is idempotent: every line
//! carries a unique ID that the archive logs once, so a move stopped halfway (a kill -9) is
//! simply done again and adds nothing twice. Reading (`postkey errors`) writes nothing and reads
//! only the spool's tail. Nothing in a spool blocks the log: a line that does not parse becomes
//! an entry of its own (3604) quoting it; a spool that is not a regular file is reported, and
//! moved aside by the next move.

use std::fs::{self, File};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use postkey_wire::ResponseCode;

use crate::HostError;
use crate::home::{ErrorEntry, Home, storage};

/// The spool appended to.
pub(crate) const CURRENT: &str = "errors.log";
/// The spool being moved into the archive (renamed from [`CURRENT`], so that entries logged
/// meanwhile start a new one).
const MOVING: &str = "errors.log.moving";
/// The longest line read; a longer one is reported as unreadable, never held whole.
const MAX_LINE: usize = 64 * 1024;
/// How much of a spool's end `postkey errors` reads.
const MAX_TAIL: u64 = 4 * 1024 * 1024;
/// Entries per archive transaction when moving.
pub(crate) const CHUNK: usize = 4096;

/// A spool file opened for reading: never a FIFO to block on or a link to follow.
enum Opened {
    /// No such file.
    Absent,
    /// Something other than a regular file.
    NotAFile,
    /// A regular file, and the identity of its bytes (device, inode, modification time), which
    /// a spool being moved keeps (nothing appends to it once taken): entries without an ID of
    /// their own are known by it and their offset.
    File(File, String),
}

fn open(path: &Path) -> Result<Opened, HostError> {
    use postkey_durable::ReadError;
    match postkey_durable::open_regular_not_linked(path) {
        Ok((file, meta)) => {
            let identity =
                format!("{}-{}-{}.{}", meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec());
            Ok(Opened::File(file, identity))
        }
        Err(ReadError::NotAFile(_)) => Ok(Opened::NotAFile),
        Err(ReadError::Storage(e)) if e.source.kind() == std::io::ErrorKind::NotFound => {
            Ok(Opened::Absent)
        }
        Err(ReadError::Storage(e)) => Err(HostError::Storage(e)),
        // No limit asked.
        Err(ReadError::TooLarge { .. }) => Ok(Opened::NotAFile),
    }
}

/// An entry about the spool itself, logged by the host.
fn about_spool(message: String, origin: Option<String>) -> ErrorEntry {
    let now = crate::clock::now();
    ErrorEntry {
        time: now.to_rfc3339(),
        unix_micros: now.unix_micros(),
        component: "host".into(),
        code: ResponseCode::HOME_FILE_CORRUPT.0,
        message,
        id: origin,
    }
}

/// Reads a spool's lines from where `reader` stands, at most `max` entries, each with an ID (its
/// own, or the spool's identity and its offset). `offset` follows the reader.
struct Lines {
    reader: BufReader<File>,
    identity: String,
    offset: u64,
}

impl Lines {
    fn next_chunk(&mut self, path: &Path, max: usize) -> Result<Vec<ErrorEntry>, HostError> {
        let mut entries = Vec::new();
        let mut line = Vec::new();
        while entries.len() < max {
            line.clear();
            let at = self.offset;
            let read = (&mut self.reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .map_err(|e| storage("reading", path, e))?;
            if read == 0 {
                break;
            }
            self.offset += read as u64;
            let whole = line.last() == Some(&b'\n') || line.len() <= MAX_LINE;
            if !whole {
                // Too long: the rest of it is skipped, a chunk at a time.
                self.offset +=
                    skip_line(&mut self.reader).map_err(|e| storage("reading", path, e))?;
            }
            let text = String::from_utf8_lossy(&line);
            if text.trim().is_empty() {
                continue;
            }
            let origin = format!("spool-{}-{at}", self.identity);
            let parsed = whole
                .then(|| serde_json::from_str::<ErrorEntry>(text.trim_end()))
                .and_then(Result::ok);
            entries.push(match parsed {
                Some(mut e) => {
                    e.id.get_or_insert(origin);
                    e
                }
                None => {
                    let excerpt: String = text.trim_end().chars().take(200).collect();
                    about_spool(
                        format!("an unreadable line of the error-log spool: {excerpt:?}"),
                        Some(origin),
                    )
                }
            });
        }
        Ok(entries)
    }
}

/// Skips to the end of the current line; the bytes skipped.
fn skip_line(reader: &mut BufReader<File>) -> std::io::Result<u64> {
    let mut skipped = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(skipped);
        }
        match buf.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(skipped + i as u64 + 1);
            }
            None => {
                let n = buf.len();
                reader.consume(n);
                skipped += n as u64;
            }
        }
    }
}

impl Home {
    /// The error-log entries spooled here and not yet moved into the archive, oldest first, as
    /// far as a reader needs them: only the last few megabytes of each spool file are read (an
    /// entry says how much older spool was left unread), and nothing is written.
    pub fn spooled_errors(&self) -> Result<Vec<ErrorEntry>, HostError> {
        let mut entries = Vec::new();
        for name in [MOVING, CURRENT] {
            let path = self.root().join(name);
            match open(&path)? {
                Opened::Absent => {}
                Opened::NotAFile => entries.push(about_spool(
                    format!(
                        "the error-log spool {} is not a regular file: the next command that \
                         writes the archive moves it aside",
                        path.display()
                    ),
                    None,
                )),
                Opened::File(mut file, identity) => {
                    let len = file.metadata().map_err(|e| storage("reading", &path, e))?.len();
                    let start = len.saturating_sub(MAX_TAIL);
                    file.seek(SeekFrom::Start(start)).map_err(|e| storage("reading", &path, e))?;
                    let mut reader = BufReader::new(file);
                    let mut offset = start;
                    if start > 0 {
                        // Read from the first whole line on.
                        offset +=
                            skip_line(&mut reader).map_err(|e| storage("reading", &path, e))?;
                        entries.push(about_spool(
                            format!(
                                "{offset} bytes of older entries in {} not shown: they are in \
                                 the archive's log once the next command that writes it runs",
                                path.display()
                            ),
                            None,
                        ));
                    }
                    let mut lines = Lines { reader, identity, offset };
                    loop {
                        let chunk = lines.next_chunk(&path, CHUNK)?;
                        if chunk.is_empty() {
                            break;
                        }
                        entries.extend(chunk);
                    }
                }
            }
        }
        Ok(entries)
    }

    /// Takes the error-log spool for moving into the archive: a spool an interrupted move left
    /// first, else the current one, renamed so that entries logged meanwhile start a new spool.
    /// Read it with [`Taken::next_chunk`]; call [`Taken::moved`] once the archive holds it all.
    /// A spool that is not a regular file is moved aside and reported by one entry.
    pub(crate) fn take_error_spool(&self) -> Result<Option<Taken>, HostError> {
        let taken = self.root().join(MOVING);
        let current = self.root().join(CURRENT);
        let there = |p: &Path| fs::symlink_metadata(p).is_ok();
        if !there(&taken) && there(&current) {
            let _spool = self.lock_spool(true)?;
            fs::rename(&current, &taken).map_err(|e| storage("renaming", &current, e))?;
        }
        match open(&taken)? {
            Opened::Absent => Ok(None),
            Opened::NotAFile => {
                let micros = crate::clock::now().unix_micros();
                let aside = self.root().join(format!("{CURRENT}.unreadable-{micros}"));
                fs::rename(&taken, &aside).map_err(|e| storage("moving aside", &taken, e))?;
                let about = about_spool(
                    format!(
                        "the error-log spool was not a regular file: moved aside to {}",
                        aside.display()
                    ),
                    Some(format!("aside-{micros}")),
                );
                Ok(Some(Taken { path: taken, lines: None, about: Some(about) }))
            }
            Opened::File(file, identity) => {
                let lines = Lines { reader: BufReader::new(file), identity, offset: 0 };
                Ok(Some(Taken { path: taken, lines: Some(lines), about: None }))
            }
        }
    }
}

/// A spool taken for moving into the archive.
pub(crate) struct Taken {
    path: PathBuf,
    lines: Option<Lines>,
    about: Option<ErrorEntry>,
}

impl Taken {
    /// The next at most [`CHUNK`] entries; none once all were read.
    pub(crate) fn next_chunk(&mut self) -> Result<Vec<ErrorEntry>, HostError> {
        if let Some(about) = self.about.take() {
            return Ok(vec![about]);
        }
        match &mut self.lines {
            Some(lines) => lines.next_chunk(&self.path, CHUNK),
            None => Ok(Vec::new()),
        }
    }

    /// The archive holds every entry: the spool goes.
    pub(crate) fn moved(self) -> Result<(), HostError> {
        crate::home::remove_if_there(&self.path)
    }
}
