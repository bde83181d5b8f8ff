//! The layout file: a TOML description of one badge (page, type bands, positioned elements),
//! read and validated once, at start, into a [`Design`] that [`layout`](super::layout) draws
//! for every badge. `docs/layouts.md` documents the format.
//!
//! Every mistake a file can hold (an unknown key, an element off the page, a colour that is
//! not one, a placeholder nothing fills) is a [`LayoutError`] naming the file, the line and
//! the key, so a deployment fails at start and never per job.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::fonts::{BrandFont, MAX_BRAND_FONTS, Style};
use super::image::{self, Fit, Image};
use super::model::BadgeType;

/// Today's badge, 4 in × 3 in, as a layout file: what [`Renderer::new`](super::Renderer::new)
/// draws.
pub const DEFAULT_LAYOUT: &str = include_str!("../../../../templates/layouts/default.toml");

/// A layout file that cannot be used, with where in it the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct LayoutError {
    /// The file, as given.
    pub file: String,
    /// The 1-based line of the offending key or value.
    pub line: usize,
    /// The key, as a dotted path (`element[3].colour`), or `layout` for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rgb(pub(crate) u8, pub(crate) u8, pub(crate) u8);

impl Rgb {
    /// `#rrggbb`, for SVG.
    pub(crate) fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// Reads `#rrggbb` or `#rgb`.
    fn parse(text: &str) -> Option<Rgb> {
        let hex = text.strip_prefix('#')?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let channel = |s: &str| u8::from_str_radix(s, 16).ok();
        match hex.len() {
            6 => Some(Rgb(
                channel(&hex[0..2])?,
                channel(&hex[2..4])?,
                channel(&hex[4..6])?,
            )),
            3 => {
                let short = |i: usize| channel(&hex[i..=i]).map(|v| v * 17);
                Some(Rgb(short(0)?, short(1)?, short(2)?))
            }
            _ => None,
        }
    }
}

/// A colour, or the colour of the badge's type band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paint {
    Fixed(Rgb),
    Type,
}

/// One piece of a text template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Literal(String),
    Id,
    Name,
    Company,
    Type,
    TypeLabel,
    EventTitle,
    EventCity,
    Arg(String),
}

impl Piece {
    /// What the template's text depends on: nothing but the event (shaped once), the type
    /// (shaped once per declared type), or the badge.
    fn varies(&self) -> Varies {
        match self {
            Piece::Literal(_) | Piece::EventTitle | Piece::EventCity => Varies::Never,
            Piece::Type | Piece::TypeLabel => Varies::ByType,
            Piece::Id | Piece::Name | Piece::Company | Piece::Arg(_) => Varies::ByBadge,
        }
    }
}

/// How often a text must be shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Varies {
    Never,
    ByType,
    ByBadge,
}

/// Text with `{placeholders}`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(pub(crate) Vec<Piece>);

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err("a '}' without its '{'".into());
            }
            if open > 0 {
                pieces.push(Piece::Literal(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or("a '{' without its '}'")? + open;
            let name = &rest[open + 1..close];
            pieces.push(match name {
                "id" => Piece::Id,
                "name" => Piece::Name,
                "company" => Piece::Company,
                "type" => Piece::Type,
                "type.label" => Piece::TypeLabel,
                "event.title" => Piece::EventTitle,
                "event.city" => Piece::EventCity,
                _ => match name.strip_prefix("args.") {
                    Some(key) if is_key(key) => Piece::Arg(key.to_string()),
                    _ => {
                        return Err(format!(
                            "unknown placeholder {{{name}}}: expected {{id}}, {{name}}, \
                             {{company}}, {{type}}, {{type.label}}, {{event.title}}, \
                             {{event.city}} or {{args.KEY}}"
                        ));
                    }
                },
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    pub(crate) fn varies(&self) -> Varies {
        self.0
            .iter()
            .map(Piece::varies)
            .max()
            .unwrap_or(Varies::Never)
    }

    /// Whether any piece is filled in per badge, event or type (else it is all literal).
    pub(crate) fn has_placeholder(&self) -> bool {
        self.0.iter().any(|p| !matches!(p, Piece::Literal(_)))
    }

    fn args(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Piece::Arg(key) => Some(key.as_str()),
            _ => None,
        })
    }
}

/// An args key a template may name: what JSON object keys usually are.
fn is_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Where an element's edges go along one axis, from the two of (near edge, far edge, extent)
/// the file gives: an edge given as a distance from the far side of the page follows that
/// side when the badge is drawn wider than its page (an A6 cell on A4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Span {
    /// From `near` to `far` points from the far side.
    Stretch { near: f32, far: f32 },
    /// `extent` long from `near`.
    FromNear { near: f32, extent: f32 },
    /// `extent` long, ending `far` points from the far side.
    FromFar { far: f32, extent: f32 },
}

impl Span {
    /// Start and length, in points, at scale `s` along an axis `length` points long.
    pub(crate) fn resolve(self, s: f32, length: f32) -> (f32, f32) {
        match self {
            Span::Stretch { near, far } => (near * s, length - far * s - near * s),
            Span::FromNear { near, extent } => (near * s, extent * s),
            Span::FromFar { far, extent } => (length - far * s - extent * s, extent * s),
        }
    }
}

/// Text alignment within the element's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Align {
    /// Left for left-to-right text, right for right-to-left text.
    Start,
    Left,
    Centre,
    Right,
}

/// Where the text's first line sits in the element's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Valign {
    /// Cap height at the top of the box.
    Top,
    /// Cap height centred in the box.
    Middle,
    /// Baseline at the bottom of the box.
    Bottom,
}

/// One run of text in one font and colour; an element's spans follow each other on a line.
#[derive(Debug, Clone)]
pub(crate) struct TextSpan {
    pub(crate) template: Template,
    pub(crate) style: Style,
    pub(crate) colour: Paint,
}

/// A bar under a text element's first line (the accent under the event line).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// From the baseline to the bar's top.
    pub(crate) offset: f32,
    pub(crate) width: f32,
    pub(crate) height: f32,
    pub(crate) colour: Paint,
}

/// A text element.
#[derive(Debug, Clone)]
pub(crate) struct Text {
    pub(crate) spans: Vec<TextSpan>,
    /// The largest size, in points.
    pub(crate) size: f32,
    /// Below this a text of several words wraps onto `max_lines` lines instead of shrinking.
    pub(crate) min_size: f32,
    pub(crate) max_lines: usize,
    pub(crate) align: Align,
    pub(crate) valign: Valign,
    /// Letter spacing, in em.
    pub(crate) tracking: f32,
    pub(crate) uppercase: bool,
    /// A badge whose args lack a key this text names cannot be printed (else the text is
    /// left out).
    pub(crate) required: bool,
    pub(crate) rule: Option<Rule>,
}

/// The name block: the name, large, and the company under it, centred together in the box.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// Name size: below `.0` a name wraps onto two lines; never above `.1`.
    pub(crate) name_size: (f32, f32),
    pub(crate) company_size: (f32, f32),
    pub(crate) name_colour: Paint,
    pub(crate) company_colour: Paint,
    /// Line height, in em.
    pub(crate) line_height: f32,
}

/// What an element draws.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Text(Text),
    Names(Names),
    Qr {
        content: Template,
        colour: Paint,
    },
    Rect {
        colour: Paint,
    },
    /// An image, decoded at load and shared by every badge.
    Image {
        image: Arc<Image>,
        fit: Fit,
    },
}

/// A positioned element.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    pub(crate) x: Span,
    pub(crate) y: Span,
    pub(crate) kind: Kind,
}

/// A type the layout names: its band colour, its label and any elements of its own.
#[derive(Debug, Clone)]
pub(crate) struct TypeStyle {
    pub(crate) name: BadgeType,
    pub(crate) colour: Rgb,
    pub(crate) label: String,
    pub(crate) elements: Vec<Element>,
}

/// A loaded, validated layout.
#[derive(Debug, Clone)]
pub struct Design {
    pub(crate) width: f32,
    pub(crate) height: f32,
    pub(crate) bleed: f32,
    /// The band of a type the layout does not name.
    pub(crate) default_colour: Rgb,
    pub(crate) closed: bool,
    pub(crate) types: Vec<TypeStyle>,
    pub(crate) elements: Vec<Element>,
    /// Every `args.KEY` the layout prints.
    pub(crate) fields: Vec<String>,
    /// The fonts the layout names (`[fonts]`), in the order [`Style::Brand`] indexes them.
    pub(crate) fonts: Vec<BrandFont>,
}

impl Design {
    /// Reads and validates the layout file at `path`.
    pub fn load(path: &Path) -> Result<Design, LayoutError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| LayoutError {
            file: file.clone(),
            line: 0,
            key: "layout".into(),
            message: format!("cannot read it: {e}"),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Design::parse(&file, &source, &dir)
    }

    /// Today's badge ([`DEFAULT_LAYOUT`]).
    pub fn default_badge() -> Design {
        Design::parse(
            "templates/layouts/default.toml",
            DEFAULT_LAYOUT,
            Path::new("."),
        )
        .expect("the bundled default layout is valid")
    }

    /// Validates `source`, the text of `file`; file names in it are relative to `dir`.
    pub fn parse(file: &str, source: &str, dir: &Path) -> Result<Design, LayoutError> {
        let mut checker = Checker {
            file,
            source,
            dir,
            fonts: Vec::new(),
        };
        let raw: RawLayout = toml::from_str(source).map_err(|e| {
            let line = e.span().map_or(0, |span| checker.line(span.start));
            LayoutError {
                file: file.to_string(),
                line,
                key: "layout".into(),
                message: e.message().trim().to_string(),
            }
        })?;
        checker.fonts = checker.load_fonts(&raw.fonts)?;
        checker.design(raw)
    }

    /// The page (trim) size in points.
    pub fn size(&self) -> (f32, f32) {
        (self.width, self.height)
    }

    /// The `args.KEY` fields the layout prints, which job args are read for.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }
}

/// A length in points, or a string with a unit: `4in`, `101.6mm`, `288pt`.
#[derive(Debug, Clone, Copy)]
struct Length(f32);

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Length;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a length: points as a number, or a string such as \"4in\" or \"105mm\"",
                )
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Length, E> {
                Ok(Length(v as f32))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Length, E> {
                Ok(Length(v as f32))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Length, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl FromStr for Length {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (number, per_unit) = [
            ("in", 72.0),
            ("mm", 72.0 / 25.4),
            ("cm", 72.0 / 2.54),
            ("pt", 1.0),
        ]
        .into_iter()
        .find_map(|(unit, pt)| text.strip_suffix(unit).map(|n| (n, pt)))
        .ok_or_else(|| format!("{text:?} is not a length (a number with in, mm, cm or pt)"))?;
        let value: f32 = number
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a length (a number with in, mm, cm or pt)"))?;
        Ok(Length(value * per_unit))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayout {
    page: RawPage,
    band: RawBand,
    #[serde(default)]
    types: Vec<Spanned<RawType>>,
    #[serde(default, rename = "element")]
    elements: Vec<Spanned<RawElement>>,
    /// Font name -> file, relative to the layout.
    #[serde(default)]
    fonts: BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPage {
    width: Spanned<Length>,
    height: Spanned<Length>,
    #[serde(default)]
    bleed: Option<Spanned<Length>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBand {
    colour: Spanned<String>,
    #[serde(default)]
    closed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawType {
    name: Spanned<String>,
    colour: Option<Spanned<String>>,
    label: Option<String>,
    #[serde(default, rename = "element")]
    elements: Vec<Spanned<RawElement>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpan {
    text: Spanned<String>,
    font: Option<Spanned<String>>,
    colour: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    offset: f32,
    width: f32,
    height: f32,
    colour: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawElement {
    kind: Spanned<String>,
    left: Option<Spanned<Length>>,
    right: Option<Spanned<Length>>,
    top: Option<Spanned<Length>>,
    bottom: Option<Spanned<Length>>,
    width: Option<Spanned<Length>>,
    height: Option<Spanned<Length>>,
    colour: Option<Spanned<String>>,
    // text
    text: Option<Spanned<String>>,
    spans: Option<Spanned<Vec<RawSpan>>>,
    font: Option<Spanned<String>>,
    size: Option<Spanned<f32>>,
    min_size: Option<Spanned<f32>>,
    max_lines: Option<Spanned<usize>>,
    align: Option<Spanned<Align>>,
    valign: Option<Spanned<Valign>>,
    tracking: Option<Spanned<f32>>,
    uppercase: Option<Spanned<bool>>,
    required: Option<Spanned<bool>>,
    rule: Option<Spanned<RawRule>>,
    // names
    name_size: Option<Spanned<[f32; 2]>>,
    company_size: Option<Spanned<[f32; 2]>>,
    company_colour: Option<Spanned<String>>,
    line_height: Option<Spanned<f32>>,
    // qr
    content: Option<Spanned<String>>,
    // image
    file: Option<Spanned<String>>,
    fit: Option<Spanned<Fit>>,
}

/// Validation with the source at hand, to turn byte offsets into lines.
struct Checker<'a> {
    file: &'a str,
    source: &'a str,
    /// The layout file's folder: image and font files are relative to it.
    dir: &'a Path,
    /// The fonts of `[fonts]`, once read.
    fonts: Vec<BrandFont>,
}

impl Checker<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.source.len());
        self.source.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> LayoutError {
        LayoutError {
            file: self.file.to_string(),
            line: self.line(span.start),
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn design(&self, raw: RawLayout) -> Result<Design, LayoutError> {
        let width = self.positive(&raw.page.width, "page.width")?;
        let height = self.positive(&raw.page.height, "page.height")?;
        let bleed = match &raw.page.bleed {
            Some(b) if b.get_ref().0 < 0.0 || b.get_ref().0 > 72.0 => {
                return Err(self.error(b.span(), "page.bleed", "must be 0 to 72 pt"));
            }
            Some(b) => b.get_ref().0,
            None => 0.0,
        };
        let page = Page {
            width,
            height,
            bleed,
        };
        let default_colour = self.rgb(&raw.band.colour, "band.colour")?;
        let mut fields = BTreeSet::new();
        let mut elements = Vec::with_capacity(raw.elements.len());
        for (i, e) in raw.elements.iter().enumerate() {
            elements.push(self.element(e, &format!("element[{i}]"), &page, &mut fields)?);
        }
        let mut types: Vec<TypeStyle> = Vec::with_capacity(raw.types.len());
        for (t, raw_type) in raw.types.iter().enumerate() {
            let raw_type = raw_type.get_ref();
            let key = format!("types[{t}]");
            let name: BadgeType = raw_type.name.get_ref().parse().map_err(|e| {
                self.error(raw_type.name.span(), &format!("{key}.name"), format!("{e}"))
            })?;
            if types.iter().any(|seen| seen.name == name) {
                return Err(self.error(
                    raw_type.name.span(),
                    &format!("{key}.name"),
                    format!("type {name:?} is named twice"),
                ));
            }
            let colour = match &raw_type.colour {
                Some(c) => self.rgb(c, &format!("{key}.colour"))?,
                None => default_colour,
            };
            let mut own = Vec::with_capacity(raw_type.elements.len());
            for (i, e) in raw_type.elements.iter().enumerate() {
                own.push(self.element(e, &format!("{key}.element[{i}]"), &page, &mut fields)?);
            }
            types.push(TypeStyle {
                label: raw_type
                    .label
                    .clone()
                    .unwrap_or_else(|| name.as_str().to_ascii_uppercase()),
                name,
                colour,
                elements: own,
            });
        }
        if raw.band.closed && types.is_empty() {
            return Err(LayoutError {
                file: self.file.to_string(),
                line: 1,
                key: "band.closed".into(),
                message: "a layout with closed types must name at least one [[types]]".into(),
            });
        }
        Ok(Design {
            width,
            height,
            bleed,
            default_colour,
            closed: raw.band.closed,
            types,
            elements,
            fields: fields.into_iter().collect(),
            fonts: self.fonts.clone(),
        })
    }

    /// Reads and checks each font of `[fonts]`.
    fn load_fonts(
        &self,
        raw: &BTreeMap<String, Spanned<String>>,
    ) -> Result<Vec<BrandFont>, LayoutError> {
        if let Some((name, file)) = raw.iter().nth(MAX_BRAND_FONTS) {
            return Err(self.error(
                file.span(),
                &format!("fonts.{name}"),
                format!("a layout may name at most {MAX_BRAND_FONTS} fonts"),
            ));
        }
        raw.iter()
            .map(|(name, file)| {
                let key = format!("fonts.{name}");
                if ["regular", "bold"].contains(&name.as_str()) || !is_key(name) {
                    return Err(self.error(
                        file.span(),
                        &key,
                        format!(
                            "{name:?} cannot name a font: use letters, digits, '-' or '_', \
                             other than the bundled \"regular\" and \"bold\""
                        ),
                    ));
                }
                let path = self.dir.join(file.get_ref());
                std::fs::read(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
                    .and_then(|bytes| {
                        BrandFont::new(name, bytes).map_err(|e| format!("{}: {e}", path.display()))
                    })
                    .map_err(|m| self.error(file.span(), &key, m))
            })
            .collect()
    }

    fn positive(&self, length: &Spanned<Length>, key: &str) -> Result<f32, LayoutError> {
        let v = length.get_ref().0;
        if !(1.0..=14_400.0).contains(&v) {
            return Err(self.error(length.span(), key, format!("{v} pt is not 1 to 14400 pt")));
        }
        Ok(v)
    }

    fn rgb(&self, text: &Spanned<String>, key: &str) -> Result<Rgb, LayoutError> {
        Rgb::parse(text.get_ref()).ok_or_else(|| {
            self.error(
                text.span(),
                key,
                format!("{:?} is not a colour (#rrggbb or #rgb)", text.get_ref()),
            )
        })
    }

    fn paint(&self, text: &Spanned<String>, key: &str) -> Result<Paint, LayoutError> {
        if text.get_ref() == "type" {
            return Ok(Paint::Type);
        }
        self.rgb(text, key).map(Paint::Fixed).map_err(|mut e| {
            e.message = format!(
                "{:?} is not a colour (#rrggbb, #rgb, or \"type\" for the type's band colour)",
                text.get_ref()
            );
            e
        })
    }

    fn paint_or(
        &self,
        text: &Option<Spanned<String>>,
        key: &str,
        default: Paint,
    ) -> Result<Paint, LayoutError> {
        text.as_ref().map_or(Ok(default), |t| self.paint(t, key))
    }

    fn template(&self, text: &Spanned<String>, key: &str) -> Result<Template, LayoutError> {
        Template::parse(text.get_ref()).map_err(|m| self.error(text.span(), key, m))
    }

    fn style(&self, font: &Option<Spanned<String>>, key: &str) -> Result<Style, LayoutError> {
        match font.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("regular") => Ok(Style::Regular),
            Some("bold") => Ok(Style::Bold),
            Some(other) => match self.fonts.iter().position(|f| f.name == other) {
                // At most MAX_BRAND_FONTS: the index fits.
                Some(i) => Ok(Style::Brand(i as u8)),
                None => Err(self.error(
                    font.as_ref().map_or(0..0, Spanned::span),
                    key,
                    format!(
                        "unknown font {other:?}: expected \"regular\", \"bold\"{}",
                        self.fonts
                            .iter()
                            .map(|f| format!(" or {:?} (from [fonts])", f.name))
                            .collect::<String>()
                    ),
                )),
            },
        }
    }

    /// The element's two spans, checked to lie on the page (rectangles may reach into the
    /// bleed).
    fn placement(
        &self,
        raw: &RawElement,
        key: &str,
        page: &Page,
        square: Option<&Spanned<f32>>,
        bleed: f32,
    ) -> Result<(Span, Span), LayoutError> {
        let square = square.map(|s| Spanned::new(s.span(), Length(*s.get_ref())));
        let extent_x = raw.width.as_ref().or(square.as_ref());
        let extent_y = raw.height.as_ref().or(square.as_ref());
        let x = self.axis(
            key,
            ("left", raw.left.as_ref()),
            ("right", raw.right.as_ref()),
            ("width", extent_x),
            page.width,
            bleed,
        )?;
        let y = self.axis(
            key,
            ("top", raw.top.as_ref()),
            ("bottom", raw.bottom.as_ref()),
            ("height", extent_y),
            page.height,
            bleed,
        )?;
        Ok((x, y))
    }

    fn axis(
        &self,
        key: &str,
        (near_key, near): (&str, Option<&Spanned<Length>>),
        (far_key, far): (&str, Option<&Spanned<Length>>),
        (extent_key, extent): (&str, Option<&Spanned<Length>>),
        length: f32,
        bleed: f32,
    ) -> Result<Span, LayoutError> {
        let v = |s: &Spanned<Length>| s.get_ref().0;
        let (span, at) = match (near, far, extent) {
            (Some(n), Some(f), None) => (
                Span::Stretch {
                    near: v(n),
                    far: v(f),
                },
                n.span(),
            ),
            (Some(n), None, Some(e)) => (
                Span::FromNear {
                    near: v(n),
                    extent: v(e),
                },
                n.span(),
            ),
            (None, Some(f), Some(e)) => (
                Span::FromFar {
                    far: v(f),
                    extent: v(e),
                },
                f.span(),
            ),
            (n, f, e) => {
                let at = n.or(f).or(e).map_or(0..0, Spanned::span);
                return Err(self.error(
                    at,
                    key,
                    format!("give exactly two of {near_key}, {far_key} and {extent_key}"),
                ));
            }
        };
        let (start, size) = span.resolve(1.0, length);
        if size <= 0.0 || start < -bleed - 0.01 || start + size > length + bleed + 0.01 {
            return Err(self.error(
                at,
                &format!("{key}.{near_key}"),
                format!(
                    "the element runs from {start} to {} pt, off the {length} pt page{}",
                    start + size,
                    if bleed > 0.0 {
                        format!(" and its {bleed} pt bleed")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        Ok(span)
    }

    /// Refuses keys that mean nothing for this kind of element.
    fn only(
        &self,
        key: &str,
        kind: &str,
        present: &[(&str, Option<Range<usize>>)],
    ) -> Result<(), LayoutError> {
        match present
            .iter()
            .find_map(|(name, span)| span.clone().map(|s| (name, s)))
        {
            Some((name, span)) => Err(self.error(
                span,
                &format!("{key}.{name}"),
                format!(
                    "{} {kind} element has no {name}",
                    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "an"
                    } else {
                        "a"
                    }
                ),
            )),
            None => Ok(()),
        }
    }

    fn element(
        &self,
        spanned: &Spanned<RawElement>,
        key: &str,
        page: &Page,
        fields: &mut BTreeSet<String>,
    ) -> Result<Element, LayoutError> {
        let raw = spanned.get_ref();
        let sp = |o: &Option<Spanned<_>>| o.as_ref().map(Spanned::span);
        let span_of = |o: Option<Range<usize>>| o;
        let text_keys = [
            ("text", span_of(raw.text.as_ref().map(Spanned::span))),
            ("spans", span_of(raw.spans.as_ref().map(Spanned::span))),
            ("font", sp(&raw.font)),
            ("min_size", raw.min_size.as_ref().map(Spanned::span)),
            ("max_lines", raw.max_lines.as_ref().map(Spanned::span)),
            ("align", raw.align.as_ref().map(Spanned::span)),
            ("valign", raw.valign.as_ref().map(Spanned::span)),
            ("tracking", raw.tracking.as_ref().map(Spanned::span)),
            ("uppercase", raw.uppercase.as_ref().map(Spanned::span)),
            ("required", raw.required.as_ref().map(Spanned::span)),
            ("rule", raw.rule.as_ref().map(Spanned::span)),
        ];
        let names_keys = [
            ("name_size", raw.name_size.as_ref().map(Spanned::span)),
            ("company_size", raw.company_size.as_ref().map(Spanned::span)),
            ("company_colour", sp(&raw.company_colour)),
            ("line_height", raw.line_height.as_ref().map(Spanned::span)),
        ];
        let qr_keys = [("content", sp(&raw.content))];
        let size_key = [("size", raw.size.as_ref().map(Spanned::span))];
        let image_keys = [
            ("file", sp(&raw.file)),
            ("fit", raw.fit.as_ref().map(Spanned::span)),
        ];
        let kind_name = raw.kind.get_ref().as_str();
        if matches!(kind_name, "text" | "names" | "qr" | "rect") {
            self.only(key, kind_name, &image_keys)?;
        }
        let kind = match kind_name {
            "text" => {
                self.only(key, "text", &names_keys)?;
                self.only(key, "text", &qr_keys)?;
                Kind::Text(self.text(raw, key, fields)?)
            }
            "names" => {
                self.only(key, "names", &text_keys)?;
                self.only(key, "names", &qr_keys)?;
                self.only(key, "names", &size_key)?;
                let size = |s: &Option<Spanned<[f32; 2]>>, k: &str, default: (f32, f32)| match s {
                    Some(s) => {
                        let [lo, hi] = *s.get_ref();
                        if lo > 0.0 && lo <= hi && hi <= 500.0 {
                            Ok((lo, hi))
                        } else {
                            Err(self.error(
                                s.span(),
                                &format!("{key}.{k}"),
                                "must be [smallest single-line size, largest size], 0 < smallest <= largest <= 500",
                            ))
                        }
                    }
                    None => Ok(default),
                };
                Kind::Names(Names {
                    name_size: size(&raw.name_size, "name_size", (22.0, 30.0))?,
                    company_size: size(&raw.company_size, "company_size", (9.5, 12.5))?,
                    name_colour: self.paint_or(
                        &raw.colour,
                        &format!("{key}.colour"),
                        Paint::Fixed(INK),
                    )?,
                    company_colour: self.paint_or(
                        &raw.company_colour,
                        &format!("{key}.company_colour"),
                        Paint::Fixed(MUTED),
                    )?,
                    line_height: match &raw.line_height {
                        Some(l) if !(0.8..=3.0).contains(l.get_ref()) => {
                            return Err(self.error(
                                l.span(),
                                &format!("{key}.line_height"),
                                "must be 0.8 to 3 em",
                            ));
                        }
                        Some(l) => *l.get_ref(),
                        None => 1.12,
                    },
                })
            }
            "qr" => {
                self.only(key, "qr", &text_keys)?;
                self.only(key, "qr", &names_keys)?;
                let content = match &raw.content {
                    Some(c) => self.template(c, &format!("{key}.content"))?,
                    None => Template(vec![Piece::Id]),
                };
                fields.extend(content.args().map(str::to_string));
                Kind::Qr {
                    content,
                    colour: self.paint_or(
                        &raw.colour,
                        &format!("{key}.colour"),
                        Paint::Fixed(INK),
                    )?,
                }
            }
            "rect" => {
                self.only(key, "rect", &text_keys)?;
                self.only(key, "rect", &names_keys)?;
                self.only(key, "rect", &qr_keys)?;
                self.only(key, "rect", &size_key)?;
                Kind::Rect {
                    colour: self.paint_or(&raw.colour, &format!("{key}.colour"), Paint::Type)?,
                }
            }
            "image" => {
                self.only(key, "image", &text_keys)?;
                self.only(key, "image", &names_keys)?;
                self.only(key, "image", &qr_keys)?;
                self.only(key, "image", &size_key)?;
                self.only(key, "image", &[("colour", sp(&raw.colour))])?;
                self.image(spanned, key, page)?
            }
            other => {
                return Err(self.error(
                    raw.kind.span(),
                    &format!("{key}.kind"),
                    format!(
                        "unknown element kind {other:?}: expected text, names, qr, rect or image"
                    ),
                ));
            }
        };
        let square = match &kind {
            Kind::Qr { .. } => raw.size.as_ref(),
            _ => None,
        };
        if matches!(kind, Kind::Qr { .. }) && square.is_none() {
            return Err(self.error(
                spanned.span(),
                &format!("{key}.size"),
                "a qr element needs a size",
            ));
        }
        let bleed = if matches!(kind, Kind::Rect { .. } | Kind::Image { .. }) {
            page.bleed
        } else {
            0.0
        };
        let (x, y) = self.placement(raw, key, page, square, bleed)?;
        Ok(Element { x, y, kind })
    }

    /// An image element: its file, read and decoded now (an SVG rasterised for the size the
    /// element's box gives it on the page).
    fn image(
        &self,
        spanned: &Spanned<RawElement>,
        key: &str,
        page: &Page,
    ) -> Result<Kind, LayoutError> {
        let raw = spanned.get_ref();
        let Some(file) = &raw.file else {
            return Err(self.error(
                spanned.span(),
                &format!("{key}.file"),
                "an image element needs a file (PNG, JPEG or SVG, relative to the layout)",
            ));
        };
        let fit = raw.fit.as_ref().map_or(Fit::Contain, |f| *f.get_ref());
        let (x, y) = self.placement(raw, key, page, None, page.bleed)?;
        let (_, w) = x.resolve(1.0, page.width);
        let (_, h) = y.resolve(1.0, page.height);
        let image = image::load(&self.dir.join(file.get_ref()), fit, (w, h))
            .map_err(|m| self.error(file.span(), &format!("{key}.file"), m))?;
        Ok(Kind::Image {
            image: Arc::new(image),
            fit,
        })
    }

    fn text(
        &self,
        raw: &RawElement,
        key: &str,
        fields: &mut BTreeSet<String>,
    ) -> Result<Text, LayoutError> {
        let default_colour =
            self.paint_or(&raw.colour, &format!("{key}.colour"), Paint::Fixed(INK))?;
        let default_style = self.style(&raw.font, &format!("{key}.font"))?;
        let spans = match (&raw.text, &raw.spans) {
            (Some(text), None) => vec![TextSpan {
                template: self.template(text, &format!("{key}.text"))?,
                style: default_style,
                colour: default_colour,
            }],
            (None, Some(spans)) if !spans.get_ref().is_empty() => spans
                .get_ref()
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let k = format!("{key}.spans[{i}]");
                    Ok(TextSpan {
                        template: self.template(&s.text, &format!("{k}.text"))?,
                        style: match &s.font {
                            Some(_) => self.style(&s.font, &format!("{k}.font"))?,
                            None => default_style,
                        },
                        colour: self.paint_or(&s.colour, &format!("{k}.colour"), default_colour)?,
                    })
                })
                .collect::<Result<_, LayoutError>>()?,
            _ => {
                let at = raw.spans.as_ref().map_or(raw.kind.span(), Spanned::span);
                return Err(self.error(
                    at,
                    key,
                    "a text element needs either text or spans (not both)",
                ));
            }
        };
        for span in &spans {
            fields.extend(span.template.args().map(str::to_string));
        }
        let size = match &raw.size {
            Some(s) if !(1.0..=500.0).contains(s.get_ref()) => {
                return Err(self.error(s.span(), &format!("{key}.size"), "must be 1 to 500 pt"));
            }
            Some(s) => *s.get_ref(),
            None => 12.0,
        };
        let min_size = match &raw.min_size {
            Some(m) if !(1.0..=size).contains(m.get_ref()) => {
                return Err(self.error(
                    m.span(),
                    &format!("{key}.min_size"),
                    "must be 1 pt to size",
                ));
            }
            Some(m) => *m.get_ref(),
            None => size,
        };
        let max_lines = match &raw.max_lines {
            Some(m) if !(1..=2).contains(m.get_ref()) => {
                return Err(self.error(m.span(), &format!("{key}.max_lines"), "must be 1 or 2"));
            }
            Some(m) if *m.get_ref() == 2 && spans.len() > 1 => {
                return Err(self.error(
                    m.span(),
                    &format!("{key}.max_lines"),
                    "text of several spans stays on one line",
                ));
            }
            Some(m) => *m.get_ref(),
            None => 1,
        };
        let rule = match &raw.rule {
            Some(r) => {
                let rr = r.get_ref();
                Some(Rule {
                    offset: rr.offset,
                    width: rr.width,
                    height: rr.height,
                    colour: self.paint(&rr.colour, &format!("{key}.rule.colour"))?,
                })
            }
            None => None,
        };
        Ok(Text {
            spans,
            size,
            min_size,
            max_lines,
            align: raw.align.as_ref().map_or(Align::Start, |a| *a.get_ref()),
            valign: raw.valign.as_ref().map_or(Valign::Top, |a| *a.get_ref()),
            tracking: raw.tracking.as_ref().map_or(0.0, |t| *t.get_ref()),
            uppercase: raw.uppercase.as_ref().is_some_and(|u| *u.get_ref()),
            required: raw.required.as_ref().is_some_and(|r| *r.get_ref()),
            rule,
        })
    }
}

/// The page's geometry, for the checks.
struct Page {
    width: f32,
    height: f32,
    bleed: f32,
}

/// Default text colours.
const INK: Rgb = Rgb(0x16, 0x18, 0x1d);
const MUTED: Rgb = Rgb(0x4f, 0x56, 0x63);
