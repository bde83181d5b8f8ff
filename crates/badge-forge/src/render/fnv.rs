//! FNV-1a: short deterministic names for what a PDF carries (an image's resource name, a font
//! subset's tag, the file's `/ID`), the same for the same input in every run.

/// FNV-1a, for deterministic identifiers (not security).
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
