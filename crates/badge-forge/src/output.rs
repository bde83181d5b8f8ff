//! Writing badge PDFs into the output directory, atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The output directory: `--output`, else `BADGE_FORGE_OUTPUT`, else `output/`.
#[derive(Clone, Debug)]
pub struct OutputDir {
    dir: PathBuf,
    fsync: bool,
}

impl OutputDir {
    /// Creates the directory if needed and resolves it to an absolute path (confirmations
    /// carry absolute paths). With `fsync`, each PDF reaches the disk before it is renamed
    /// into place, so even a power cut leaves whole files only.
    pub fn create(dir: impl AsRef<Path>, fsync: bool) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.as_ref())?;
        Ok(Self {
            dir: std::fs::canonicalize(dir)?,
            fsync,
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

    /// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
    /// so a reader or a crash never sees a truncated PDF.
    pub fn write_atomically(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let file_name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("badge");
        let temp = self
            .dir
            .join(format!(".{file_name}.{}.tmp", rand::random::<u64>()));
        let written = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(bytes)?;
            if self.fsync {
                file.sync_data()?;
            }
            std::fs::rename(&temp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_whole_files_and_leaves_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("bf-output-{}", rand::random::<u32>()));
        let output = OutputDir::create(&dir, true).unwrap();
        let path = output.badge_path("abc");
        output.write_atomically(&path, b"%PDF-1.7 one").unwrap();
        output.write_atomically(&path, b"%PDF-1.7 two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"%PDF-1.7 two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["badge-abc.pdf"]);
        assert!(path.is_absolute() && path.starts_with(output.path()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
