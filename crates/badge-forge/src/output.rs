//! Writing badge PDFs into the output directory, atomically.
//!
//! The cheap way on Linux is an anonymous `O_TMPFILE` inode in the directory, written whole
//! and then linked under its final name: no temporary name is ever created or removed, which
//! on ext4 costs less CPU than a temporary name and a rename (docs/deploy.md). File systems (or kernels)
//! without `O_TMPFILE`, and hosts without `/proc`, get the temporary-name-and-rename way.
//!
//! Badges carry attendees' names: each file gets exactly its [`FileMode`] (0640 unless told,
//! whatever the umask), never more open on its way there, and a directory this creates lets
//! in the same readers only.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The output directory: `--output`, else `BADGE_FORGE_OUTPUT`, else `output/`.
#[derive(Clone, Debug)]
pub struct OutputDir {
    dir: PathBuf,
    fsync: bool,
    mode: FileMode,
    /// Whether `O_TMPFILE` writes are still worth trying here. Shared by the clones (the
    /// worker clones the directory per badge) so an unsupported file system costs one failed
    /// open per process, not one per badge.
    tmpfile: Arc<AtomicBool>,
}

/// The permission bits of badge files (`--file-mode`): by default 0640, readable by the owner's
/// group (a print spooler's) and nobody else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(u32);

impl FileMode {
    /// Owner read and write, group read.
    pub const DEFAULT: FileMode = FileMode(0o640);

    /// The bits, for `chmod`.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The mode of a directory this creates for such files: the owner's full access, and
    /// search access for whoever may read the files (0640 gives 0750).
    pub fn directory_bits(self) -> u32 {
        let readers = self.0 & 0o044;
        0o700 | readers | readers >> 2
    }
}

impl Default for FileMode {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for FileMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl std::str::FromStr for FileMode {
    type Err = String;

    /// Octal permission bits, `640`, `0640` or `0o640`, that leave the owner able to read.
    fn from_str(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        let bits = u32::from_str_radix(digits, 8)
            .ok()
            .filter(|bits| *bits <= 0o777)
            .ok_or_else(|| format!("{text:?} is not an octal file mode such as 0640"))?;
        if bits & 0o400 == 0 {
            return Err(format!("file mode {text} leaves the owner unable to read"));
        }
        Ok(Self(bits))
    }
}

/// How an `O_TMPFILE` write ended when it did not fail.
#[derive(Debug, PartialEq)]
enum TmpfileWrite {
    /// The badge is in place.
    Done,
    /// The file system, the kernel or the missing `/proc` rule `O_TMPFILE` out; nothing was
    /// written.
    Unsupported,
}

impl OutputDir {
    /// Creates the directory if needed and resolves it to an absolute path (confirmations
    /// carry absolute paths). With `fsync`, each PDF reaches the disk before it is linked or
    /// renamed into place, and the directory entry is synced after, so even a power cut leaves
    /// whole files only and keeps every badge already reported written.
    pub fn create(dir: impl AsRef<Path>, fsync: bool) -> io::Result<Self> {
        Self::create_with_mode(dir, fsync, FileMode::DEFAULT)
    }

    /// [`OutputDir::create`], writing files with `mode`. A directory this creates gets
    /// [`FileMode::directory_bits`] exactly; an existing one keeps its own.
    pub fn create_with_mode(
        dir: impl AsRef<Path>,
        fsync: bool,
        mode: FileMode,
    ) -> io::Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            let bits = mode.directory_bits();
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(bits)
                .create(dir)?;
            // The umask may have taken bits off; the mode is the operator's to choose.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(bits))?;
        }
        Ok(Self {
            dir: std::fs::canonicalize(dir)?,
            fsync,
            mode,
            tmpfile: Arc::new(AtomicBool::new(true)),
        })
    }

    /// The absolute directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where the badge with this id goes. Ids are checked to be plain file-name characters
    /// (see `badge_args`), so the path is always inside the directory.
    pub fn badge_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("badge-{id}.pdf"))
    }

    /// Whether `name` is one [`OutputDir::badge_path`] gives.
    pub fn is_badge_name(name: &str) -> bool {
        name.strip_prefix("badge-")
            .and_then(|rest| rest.strip_suffix(".pdf"))
            .is_some_and(crate::badge_args::is_badge_id)
    }

    /// Writes `bytes` to `path` (a file in this directory) so that a reader or a crash never
    /// sees a truncated PDF: the file appears under `path` only once it is whole. An existing
    /// file at `path` is replaced atomically (a retry overwrites its earlier badge). On error
    /// nothing new is left in the directory.
    pub fn write_atomically(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        if self.tmpfile.load(Ordering::Relaxed) {
            match self.write_tmpfile(path, bytes)? {
                TmpfileWrite::Done => return Ok(()),
                TmpfileWrite::Unsupported => self.tmpfile.store(false, Ordering::Relaxed),
            }
        }
        self.write_renamed(path, bytes)
    }

    /// The `O_TMPFILE` way: write an unnamed inode, then link it as `path`, or, if `path`
    /// exists, link it under a temporary name and rename that over `path`.
    fn write_tmpfile(&self, path: &Path, bytes: &[u8]) -> io::Result<TmpfileWrite> {
        let dir = c_path(&self.dir)?;
        // SAFETY: `dir` is a NUL-terminated string that outlives the call.
        let fd = unsafe {
            libc::open(
                dir.as_ptr(),
                libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
                self.mode.bits() as libc::c_uint,
            )
        };
        if fd < 0 {
            let error = io::Error::last_os_error();
            // EISDIR: a kernel older than 3.11 read O_TMPFILE as O_DIRECTORY; EOPNOTSUPP: the
            // file system has no O_TMPFILE; EINVAL: the flag combination is not understood.
            return match error.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL) => {
                    Ok(TmpfileWrite::Unsupported)
                }
                _ => Err(error),
            };
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let mut file = unsafe { File::from_raw_fd(fd) };
        self.set_mode(&file)?;
        file.write_all(bytes)?;
        if self.fsync {
            file.sync_data()?;
        }
        // An O_TMPFILE inode can only be linked through its /proc name (AT_EMPTY_PATH would
        // need CAP_DAC_READ_SEARCH).
        let proc_path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .expect("no NUL in a formatted number");
        match link(&proc_path, path) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {
                // A retry: replace the earlier badge atomically with the inode already
                // written, through a temporary name (link cannot replace).
                let temp = self.temp_path(path);
                link(&proc_path, &temp)?;
                if let Err(error) = std::fs::rename(&temp, path) {
                    let _ = std::fs::remove_file(&temp);
                    return Err(error);
                }
            }
            // No /proc mounted (a bare chroot or container): nothing was written yet.
            Err(error)
                if error.raw_os_error() == Some(libc::ENOENT)
                    && !Path::new("/proc/self/fd").is_dir() =>
            {
                return Ok(TmpfileWrite::Unsupported);
            }
            Err(error) => return Err(error),
        }
        drop(file);
        if self.fsync {
            self.sync_dir()?;
        }
        Ok(TmpfileWrite::Done)
    }

    /// The portable way: write a temporary file in the directory and rename it to `path`.
    fn write_renamed(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let temp = self.temp_path(path);
        let written = (|| {
            // Created with the mode (less the umask's bits), so never more open than the badge.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.mode.bits())
                .open(&temp)?;
            self.set_mode(&file)?;
            file.write_all(bytes)?;
            if self.fsync {
                file.sync_data()?;
            }
            std::fs::rename(&temp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written?;
        if self.fsync {
            self.sync_dir()?;
        }
        Ok(())
    }

    /// Gives a file being written exactly the mode, which the umask may have narrowed when it
    /// was created (a print spooler's group must still read it).
    fn set_mode(&self, file: &File) -> io::Result<()> {
        file.set_permissions(std::fs::Permissions::from_mode(self.mode.bits()))
    }

    /// A fresh hidden name in the directory for a file on its way to `path`.
    fn temp_path(&self, path: &Path) -> PathBuf {
        let file_name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("badge");
        self.dir
            .join(format!(".{file_name}.{}.tmp", rand::random::<u64>()))
    }

    /// Makes the directory's new entries durable: without it a power cut may lose a link or
    /// rename whose file data was already synced.
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// `path` as a C string; a path with a NUL byte cannot name a file.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a path"))
}

/// `linkat(2)` following the `/proc` symlink `from` to its inode, creating `to`.
fn link(from: &CString, to: &Path) -> io::Result<()> {
    let to = c_path(to)?;
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if linked == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A fresh directory under the system temp dir, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!("bf-output-{}", rand::random::<u64>()));
            std::fs::create_dir(&dir).unwrap();
            Self(dir)
        }

        /// The names in the directory, sorted.
        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.0)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The output directory over `scratch`, on the `O_TMPFILE` path or the rename path.
    fn output(scratch: &Scratch, fsync: bool, tmpfile: bool) -> OutputDir {
        let output = OutputDir::create(&scratch.0, fsync).unwrap();
        output.tmpfile.store(tmpfile, Ordering::Relaxed);
        output
    }

    /// Fails (saying why) if the `O_TMPFILE` path fell back: the test would not cover it.
    fn assert_still_tmpfile(output: &OutputDir) {
        assert!(
            output.tmpfile.load(Ordering::Relaxed),
            "O_TMPFILE is unsupported on {} (or /proc is missing), so this test cannot cover \
             that path; run it with TMPDIR on ext4, xfs, btrfs or tmpfs",
            output.path().display()
        );
    }

    /// Writes a new badge and overwrites it, checking content, mode and leftovers each time.
    fn writes_then_overwrites(fsync: bool, tmpfile: bool) {
        let scratch = Scratch::new();
        let output = output(&scratch, fsync, tmpfile);
        let path = output.badge_path("abc");
        assert!(path.is_absolute() && path.starts_with(output.path()));

        output.write_atomically(&path, b"%PDF-1.7 one").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"%PDF-1.7 one");
        assert_eq!(scratch.names(), ["badge-abc.pdf"]);
        // Exactly the default mode, whatever this process's umask (tests/integration's
        // personal_data checks it under a permissive one).
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&path), 0o640);

        // A reader holding the old badge keeps it whole: the file is replaced, not rewritten.
        let old = File::open(&path).unwrap();
        let old_inode = old.metadata().unwrap().ino();
        output
            .write_atomically(&path, b"%PDF-1.7 two, longer")
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"%PDF-1.7 two, longer");
        assert_eq!(std::io::read_to_string(&old).unwrap(), "%PDF-1.7 one");
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), old_inode);
        assert_eq!(scratch.names(), ["badge-abc.pdf"], "no temporary left");
        assert_eq!(mode(&path), 0o640, "the replacement too");
        if tmpfile {
            assert_still_tmpfile(&output);
        }
    }

    #[test]
    fn tmpfile_writes_a_new_badge_whole_and_replaces_an_existing_one() {
        writes_then_overwrites(false, true);
    }

    #[test]
    fn tmpfile_with_fsync_writes_and_replaces() {
        writes_then_overwrites(true, true);
    }

    #[test]
    fn the_rename_fallback_writes_a_new_badge_whole_and_replaces_an_existing_one() {
        writes_then_overwrites(false, false);
    }

    #[test]
    fn the_rename_fallback_with_fsync_writes_and_replaces() {
        writes_then_overwrites(true, false);
    }

    /// Overwrites one badge with two contents of different lengths while another thread
    /// reads it: every read must be one of them whole.
    fn readers_see_whole_files_only(tmpfile: bool) {
        let scratch = Scratch::new();
        let output = output(&scratch, false, tmpfile);
        let path = output.badge_path("race");
        let (short, long) = (vec![b's'; 3_000], vec![b'l'; 9_000]);
        output.write_atomically(&path, &long).unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) {
                    let read = std::fs::read(&path).unwrap();
                    assert!(read == short || read == long, "a {} B read", read.len());
                    reads += 1;
                }
                reads
            });
            for round in 0..300 {
                let bytes = if round % 2 == 0 { &short } else { &long };
                output.write_atomically(&path, bytes).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        assert_eq!(scratch.names(), ["badge-race.pdf"]);
        if tmpfile {
            assert_still_tmpfile(&output);
        }
    }

    #[test]
    fn tmpfile_readers_never_see_a_partial_badge() {
        readers_see_whole_files_only(true);
    }

    #[test]
    fn rename_fallback_readers_never_see_a_partial_badge() {
        readers_see_whole_files_only(false);
    }

    /// Makes a directory unwritable, even for root, until dropped: mode 0o555 and, for root
    /// (whom modes do not stop), the immutable attribute.
    struct Unwritable<'a>(&'a Path);

    /// `FS_IMMUTABLE_FL` of `linux/fs.h` (not in the libc crate).
    const FS_IMMUTABLE_FL: libc::c_long = 0x10;

    impl<'a> Unwritable<'a> {
        fn new(dir: &'a Path) -> Self {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
            // SAFETY: no arguments, cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                set_flags(dir, |flags| flags | FS_IMMUTABLE_FL).unwrap_or_else(|error| {
                    panic!(
                        "cannot make {} immutable ({error}): this test needs a file system with \
                         the immutable attribute (ext4, xfs, btrfs, tmpfs since Linux 6.0) \
                         and CAP_LINUX_IMMUTABLE when run as root",
                        dir.display()
                    )
                });
            }
            Self(dir)
        }
    }

    impl Drop for Unwritable<'_> {
        fn drop(&mut self) {
            // SAFETY: no arguments, cannot fail.
            if unsafe { libc::geteuid() } == 0 {
                set_flags(self.0, |flags| flags & !FS_IMMUTABLE_FL).unwrap();
            }
            std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    /// Changes the inode flags of `dir` (`FS_IOC_GETFLAGS`, then `FS_IOC_SETFLAGS`).
    fn set_flags(dir: &Path, change: impl Fn(libc::c_long) -> libc::c_long) -> io::Result<()> {
        let dir = File::open(dir)?;
        let mut flags: libc::c_long = 0;
        // SAFETY: the fd is open for the call and `flags` is a writable long, as the ioctl
        // expects.
        if unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = change(flags);
        // SAFETY: as above; the ioctl reads `flags`.
        if unsafe { libc::ioctl(dir.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn an_unwritable_directory_fails_and_leaves_nothing(tmpfile: bool) {
        let scratch = Scratch::new();
        let output = output(&scratch, true, tmpfile);
        let path = output.badge_path("locked");
        let error = {
            let _unwritable = Unwritable::new(&scratch.0);
            output.write_atomically(&path, b"%PDF-1.7").unwrap_err()
        };
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
            ),
            "a clear cause: {error}"
        );
        assert!(
            scratch.names().is_empty(),
            "nothing left: {:?}",
            scratch.names()
        );
        // A failure is not mistaken for a missing O_TMPFILE: the next badge still uses it.
        assert_eq!(output.tmpfile.load(Ordering::Relaxed), tmpfile);
        output.write_atomically(&path, b"%PDF-1.7").unwrap();
        assert_eq!(scratch.names(), ["badge-locked.pdf"]);
    }

    #[test]
    fn tmpfile_in_an_unwritable_directory_fails_and_leaves_nothing() {
        an_unwritable_directory_fails_and_leaves_nothing(true);
    }

    #[test]
    fn rename_fallback_in_an_unwritable_directory_fails_and_leaves_nothing() {
        an_unwritable_directory_fails_and_leaves_nothing(false);
    }

    #[test]
    fn a_file_system_without_tmpfile_falls_back_and_every_clone_remembers_it() {
        // The procfs root has no O_TMPFILE (EOPNOTSUPP), nor room for a temporary file: the write
        // fails on the rename path, and the clone it ran on taught the original.
        let output = OutputDir::create("/proc", false).unwrap();
        let clone = output.clone();
        let error = clone
            .write_atomically(&output.badge_path("proc"), b"%PDF-1.7")
            .unwrap_err();
        assert!(
            !output.tmpfile.load(Ordering::Relaxed),
            "fell back: {error}"
        );
        assert_ne!(
            error.raw_os_error(),
            Some(libc::EOPNOTSUPP),
            "the error is the rename path's, not O_TMPFILE's: {error}"
        );
    }

    #[test]
    fn file_modes_parse_as_octal_and_give_their_readers_the_directory() {
        assert_eq!("0640".parse::<FileMode>().unwrap(), FileMode::DEFAULT);
        assert_eq!("0o600".parse::<FileMode>().unwrap().bits(), 0o600);
        assert_eq!(FileMode::DEFAULT.directory_bits(), 0o750);
        assert_eq!("600".parse::<FileMode>().unwrap().directory_bits(), 0o700);
        assert_eq!("644".parse::<FileMode>().unwrap().directory_bits(), 0o755);
        for bad in ["0990", "1777", "rw-r-----", "", "0240"] {
            assert!(bad.parse::<FileMode>().is_err(), "{bad:?}");
        }
        assert_eq!(FileMode::DEFAULT.to_string(), "0640");
    }
}
