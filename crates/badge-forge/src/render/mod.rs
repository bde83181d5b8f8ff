//! Badge rendering: one 4 in × 3 in badge as a PDF, sheets of badges for a print shop,
//! and an SVG preview drawn from the same layout.
//!
//! # Pipeline
//!
//! 1. **Validate** ([`text::clean`]): NFC-normalise, collapse whitespace, reject control
//!    characters, blank names and names longer than [`MAX_TEXT_CHARS`]. Every such
//!    failure is a permanent [`RenderError`].
//! 2. **Shape** ([`text`]): the Unicode bidi algorithm orders runs visually; each grapheme
//!    cluster gets the first bundled face that has all its glyphs (Latin/Greek/Cyrillic,
//!    Arabic, Hebrew, CJK, emoji); rustybuzz shapes each run (joining, ligatures, marks,
//!    kerning). A character no bundled font has is reported with its code point
//!    ([`RenderError::MissingGlyph`]), never drawn as a box.
//! 3. **Lay out** ([`layout`]): the name is the largest element, shrunk to fit and, below a
//!    threshold size, wrapped onto the most balanced two lines; the badge id becomes a QR
//!    symbol (`qr`).
//! 4. **Draw**: [`pdf`] writes the layout's content streams, embeds font *subsets* and
//!    writes the file, with printpdf assembling the document; [`svg`] writes the same
//!    layout through the askama template `templates/badge.svg`. `impose` places badges on sheets with cut marks.
//!
//! [`Renderer`] runs these steps; `model` holds what goes in and what can go wrong
//! ([`Badge`], [`RenderError`], the limits), `fonts` the bundled faces and their fallback,
//! `image` a layout's images (decoded once, when the layout is loaded).
//!
//! # Fonts are compiled into the binary
//!
//! The faces in `fonts/` are embedded with `include_bytes!` rather than read from disk at
//! run time:
//!
//! - *Robust deployment*: the worker is one file; there is no font directory to ship,
//!   mount or keep in step with the code, and no way for a deployment to render every
//!   badge with a missing or different font (which would fail every job or silently
//!   change every badge).
//! - *Memory*: the 15 MB of font data live in the binary's read-only pages, which the OS
//!   pages in on demand and can drop at any time; only the glyphs actually used become
//!   resident, instead of a heap copy of every font in every worker process.
//! - *Simplicity*: `&'static` font data lets the parsed faces (which borrow their bytes)
//!   be built once per process ([`fonts::FontSet`]) and shared by every [`Renderer`]
//!   and thread, with no self-referential structs and no I/O error paths at render time.
//!
//! The cost is a larger binary (about 16 MB more) and a rebuild to change a font, which is
//! the point: fonts are part of the design. No fontconfig, no network, no file access.
//!
//! A layout may add fonts of its own (`[fonts]`, files beside it): they are read and checked
//! with the layout, once, at start, kept for the process, and tried before the bundled faces,
//! which stay the fallback for every script.

mod fnv;
mod fonts;
mod image;
mod impose;
mod layout;
mod layout_file;
mod model;
mod pdf;
mod qr;
mod renderer;
mod svg;
mod text;

pub use impose::Stock;
pub use layout_file::{DEFAULT_LAYOUT, Design, LayoutError};
pub use model::{
    Badge, BadgeType, EventInfo, Field, MAX_ID_CHARS, MAX_MARKS, MAX_TEXT_CHARS, MAX_TYPE_CHARS,
    RenderError, UnknownBadgeType,
};
pub use renderer::{Imposed, Renderer};
