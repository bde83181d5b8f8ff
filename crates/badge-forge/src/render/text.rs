//! Text input: normalisation and validation, then bidi, font fallback and shaping into
//! positioned glyphs. All lengths here are in em (multiply by the font size for points).

use rustybuzz::{Direction, Language, UnicodeBuffer};
use unicode_bidi::BidiInfo;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

use super::fonts::{FaceId, FontSet, Style};
use super::{Field, RenderError};

/// NFC-normalises `raw`, collapses each run of whitespace to its first character and trims
/// the ends, then validates it: no control characters, not blank when `required`, at most
/// `max_chars` characters.
pub(crate) fn clean(
    field: Field,
    raw: &str,
    max_chars: usize,
    required: bool,
) -> Result<String, RenderError> {
    if let Some(ch) = raw
        .chars()
        .find(|&c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(RenderError::ControlCharacter { field, ch });
    }
    let mut out = String::with_capacity(raw.len());
    let mut in_space = false;
    for c in raw.nfc() {
        if c.is_whitespace() {
            if !in_space && !out.is_empty() {
                out.push(c);
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    if in_space {
        out.pop();
    }
    if out.is_empty() && required {
        return Err(RenderError::Empty { field });
    }
    let len = out.chars().count();
    if len > max_chars {
        return Err(RenderError::TooLong {
            field,
            len,
            max: max_chars,
        });
    }
    Ok(out)
}

/// One glyph, positioned relative to the line origin on the baseline (em, y up).
#[derive(Debug, Clone)]
pub(crate) struct Glyph {
    pub(crate) face: FaceId,
    pub(crate) gid: u16,
    pub(crate) x: f32,
    pub(crate) y: f32,
    /// The text this glyph stands for (the whole cluster, on its first glyph), which the
    /// PDF's ToUnicode map carries so the name can be searched and copied.
    pub(crate) text: Option<Box<str>>,
    /// Byte offset of its cluster in the line's text.
    cluster: usize,
}

/// A shaped line in visual order.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) glyphs: Vec<Glyph>,
    /// Advance width in em.
    pub(crate) width: f32,
    /// The paragraph direction is right-to-left (the line is aligned to the right).
    pub(crate) rtl: bool,
    /// Advance of each grapheme cluster in logical order, keyed by its byte offset: lets the
    /// line breaker measure any prefix without shaping it again.
    clusters: Vec<(usize, f32)>,
    /// Every bidi run is left-to-right, so visual order is logical order.
    all_ltr: bool,
}

impl Line {
    /// Width in em of the logical byte range `..end` (approximate: ignores kerning and
    /// joining across `end`, which is what a break there would change).
    fn prefix_width(&self, end: usize) -> f32 {
        self.clusters
            .iter()
            .take_while(|(start, _)| *start < end)
            .map(|(_, w)| w)
            .sum()
    }

    /// This left-to-right line cut in two around the spaces `first..at`: the glyphs and
    /// advances already shaped, without shaping either half again. Shaping never joins or
    /// kerns across a space in the scripts that run left to right, so the halves are what
    /// shaping them apart would give.
    fn split_at_space(&self, first: usize, at: usize) -> Option<(Line, Line)> {
        if !self.all_ltr || first >= at {
            return None;
        }
        let shift = self.prefix_width(at);
        let part = |range: std::ops::Range<usize>, shift: f32, rebase: usize| Line {
            glyphs: self
                .glyphs
                .iter()
                .filter(|g| range.contains(&g.cluster))
                .map(|g| Glyph {
                    x: g.x - shift,
                    cluster: g.cluster - rebase,
                    ..g.clone()
                })
                .collect(),
            width: self
                .clusters
                .iter()
                .filter(|(start, _)| range.contains(start))
                .map(|(_, w)| w)
                .sum(),
            rtl: false,
            clusters: self
                .clusters
                .iter()
                .filter(|(start, _)| range.contains(start))
                .map(|&(start, w)| (start - rebase, w))
                .collect(),
            all_ltr: true,
        };
        Some((part(0..first, 0.0, 0), part(at..usize::MAX, shift, at)))
    }
}

/// The OpenType language used to pick regional CJK glyph forms (`locl`).
fn language_for(text: &str) -> Option<Language> {
    let has = |range: &dyn Fn(char) -> bool| text.chars().any(range);
    let tag = if has(&|c| matches!(c, '\u{3040}'..='\u{30FF}' | '\u{31F0}'..='\u{31FF}')) {
        "ja"
    } else if has(
        &|c| matches!(c, '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}' | '\u{AC00}'..='\u{D7AF}'),
    ) {
        "ko"
    } else {
        return None;
    };
    tag.parse().ok()
}

/// Shapes one line of already-cleaned text: bidi runs in visual order, each split into
/// runs of one face (by grapheme cluster), each shaped with rustybuzz.
///
/// `tracking` (em) is added between clusters, for letter-spaced labels.
pub(crate) fn shape_line(
    fonts: &FontSet,
    text: &str,
    style: Style,
    tracking: f32,
    field: Field,
) -> Result<Line, RenderError> {
    let mut line = Line {
        glyphs: Vec::with_capacity(text.len()),
        width: 0.0,
        rtl: false,
        clusters: Vec::new(),
        all_ltr: true,
    };
    if text.is_empty() {
        return Ok(line);
    }
    let language = language_for(text);
    let bidi = BidiInfo::new(text, None);
    let para = &bidi.paragraphs[0];
    line.rtl = para.level.is_rtl();
    let (levels, runs) = bidi.visual_runs(para, para.range.clone());

    let mut pen = 0.0f32;
    for run in runs {
        let rtl = levels[run.start].is_rtl();
        line.all_ltr &= !rtl;
        let mut items = itemize(fonts, text, run.clone(), style, field)?;
        if rtl {
            items.reverse();
        }
        for (face_id, range) in items {
            let face = fonts.face(face_id);
            let scale = 1.0 / face.units_per_em;
            let mut buffer = UnicodeBuffer::new();
            buffer.set_pre_context(&text[..range.start]);
            buffer.push_str(&text[range.clone()]);
            buffer.set_post_context(&text[range.end..]);
            buffer.set_direction(if rtl {
                Direction::RightToLeft
            } else {
                Direction::LeftToRight
            });
            buffer.guess_segment_properties();
            if let Some(lang) = &language {
                buffer.set_language(lang.clone());
            }
            let plan = fonts.plan(
                face_id,
                buffer.direction(),
                buffer.script(),
                language.as_ref(),
            );
            let shaped = rustybuzz::shape_with_plan(&face.face, &plan, buffer);

            // Cluster boundaries (byte offsets within the item), to give each cluster's
            // text to its first glyph.
            let mut starts: Vec<usize> = shaped
                .glyph_infos()
                .iter()
                .map(|i| i.cluster as usize)
                .collect();
            starts.sort_unstable();
            starts.dedup();
            let end_of = |start: usize| {
                let i = starts.partition_point(|&s| s <= start);
                starts.get(i).copied().unwrap_or(range.len())
            };

            let infos = shaped.glyph_infos();
            let positions = shaped.glyph_positions();
            for (i, (info, pos)) in infos.iter().zip(positions).enumerate() {
                let cluster = info.cluster as usize;
                let abs = range.start + cluster;
                if info.glyph_id == 0 {
                    let ch = text[abs..].chars().next().unwrap_or('\u{FFFD}');
                    return Err(RenderError::MissingGlyph { field, ch });
                }
                let first_of_cluster = i == 0 || infos[i - 1].cluster != info.cluster;
                let advance = pos.x_advance as f32 * scale;
                line.glyphs.push(Glyph {
                    face: face_id,
                    gid: info.glyph_id as u16,
                    x: pen + pos.x_offset as f32 * scale,
                    y: pos.y_offset as f32 * scale,
                    text: first_of_cluster
                        .then(|| cluster_text(&text[abs..range.start + end_of(cluster)], rtl)),
                    cluster: abs,
                });
                pen += advance;
                match line.clusters.last_mut() {
                    Some((start, w)) if *start == abs => *w += advance,
                    _ => line.clusters.push((abs, advance)),
                }
                let last_of_cluster = infos.get(i + 1).is_none_or(|n| n.cluster != info.cluster);
                if tracking != 0.0 && last_of_cluster {
                    pen += tracking;
                    if let Some((_, w)) = line.clusters.last_mut() {
                        *w += tracking;
                    }
                }
            }
        }
    }
    if tracking != 0.0 {
        pen -= tracking; // no tracking after the last cluster
    }
    line.width = pen;
    line.clusters.sort_unstable_by_key(|(start, _)| *start);
    Ok(line)
}

/// The text a cluster's first glyph carries into the PDF's ToUnicode map. Glyphs of a
/// right-to-left run are written in visual order and text extractors (poppler, for one)
/// reverse such runs character by character to recover logical order, so a ligature's
/// characters are stored reversed too: `لى` (one glyph) becomes `ىل`, and the name reads
/// back as typed.
fn cluster_text(cluster: &str, rtl: bool) -> Box<str> {
    if rtl {
        cluster.chars().rev().collect::<String>().into()
    } else {
        cluster.into()
    }
}

/// Splits the logical `range` of `text` into maximal runs drawn by one face.
fn itemize(
    fonts: &FontSet,
    text: &str,
    range: std::ops::Range<usize>,
    style: Style,
    field: Field,
) -> Result<Vec<(FaceId, std::ops::Range<usize>)>, RenderError> {
    let mut items: Vec<(FaceId, std::ops::Range<usize>)> = Vec::new();
    for (offset, cluster) in text[range.clone()].grapheme_indices(true) {
        let start = range.start + offset;
        let previous = items.last().map(|(id, _)| *id);
        let face = fonts
            .pick(style, cluster, previous)
            .map_err(|ch| RenderError::MissingGlyph { field, ch })?;
        match items.last_mut() {
            Some((id, r)) if *id == face => r.end = start + cluster.len(),
            _ => items.push((face, start..start + cluster.len())),
        }
    }
    Ok(items)
}

/// Text split over at most two lines, with the widest line's width.
pub(crate) struct Lines {
    pub(crate) lines: Vec<Line>,
    pub(crate) width: f32,
}

/// The best two-line split of `text`, already shaped as `single`: the break that makes
/// the longer line shortest, preferring spaces and hyphens, then boundaries next to CJK
/// characters, then any grapheme boundary. `None` when there is nowhere to break.
///
/// Separate from shaping the single line because most names fit on one line. A left-to-right
/// name broken at a space is cut from `single`; otherwise (right-to-left runs, hyphens, CJK
/// or grapheme breaks, where the halves may shape differently) both halves are shaped again.
pub(crate) fn split_two(
    fonts: &FontSet,
    text: &str,
    single: &Line,
    style: Style,
    field: Field,
) -> Result<Option<Lines>, RenderError> {
    let best = break_candidates(text)
        .into_iter()
        .map(|at| {
            let first = text[..at].trim_end().len();
            let w1 = single.prefix_width(first);
            let w2 = single.width - single.prefix_width(at);
            (at, first, w1.max(w2))
        })
        .min_by(|a, b| a.2.total_cmp(&b.2));
    let Some((at, first, _)) = best else {
        return Ok(None);
    };
    let (l1, l2) = match single.split_at_space(first, at) {
        Some(halves) => halves,
        None => (
            shape_line(fonts, &text[..first], style, 0.0, field)?,
            shape_line(fonts, &text[at..], style, 0.0, field)?,
        ),
    };
    let width = l1.width.max(l2.width);
    Ok(Some(Lines {
        lines: vec![l1, l2],
        width,
    }))
}

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}' | '\u{2E80}'..='\u{9FFF}' | '\u{AC00}'..='\u{D7AF}'
        | '\u{F900}'..='\u{FAFF}' | '\u{FF00}'..='\u{FFEF}' | '\u{20000}'..='\u{3FFFF}')
}

/// Byte offsets where a second line may start, best kind only.
fn break_candidates(text: &str) -> Vec<usize> {
    let graphemes: Vec<(usize, &str)> = text.grapheme_indices(true).collect();
    let mut words = Vec::new();
    let mut cjk = Vec::new();
    let mut any = Vec::new();
    for pair in graphemes.windows(2) {
        let (_, prev) = pair[0];
        let (at, next) = pair[1];
        let prev_last = prev.chars().next_back().unwrap_or(' ');
        let next_first = next.chars().next().unwrap_or(' ');
        if next_first.is_whitespace() {
            continue;
        }
        if prev_last.is_whitespace() || matches!(prev_last, '-' | '\u{2010}' | '/') {
            words.push(at);
        } else if is_cjk(prev_last) || is_cjk(next_first) {
            cjk.push(at);
        } else {
            any.push(at);
        }
    }
    [words, cjk, any]
        .into_iter()
        .find(|v| !v.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fonts() -> &'static FontSet {
        FontSet::get().unwrap()
    }

    #[test]
    fn clean_normalises_and_validates() {
        assert_eq!(
            clean(Field::Name, "  Jose\u{301}   Núñez ", 10, true).unwrap(),
            "José Núñez"
        );
        assert_eq!(
            clean(Field::Name, " \u{3000} ", 10, true),
            Err(RenderError::Empty { field: Field::Name })
        );
        assert_eq!(clean(Field::Company, "", 10, false).unwrap(), "");
        assert_eq!(
            clean(Field::Name, "Ada\nLovelace", 100, true),
            Err(RenderError::ControlCharacter {
                field: Field::Name,
                ch: '\n'
            })
        );
        assert_eq!(
            clean(Field::Name, "abcdef", 5, true),
            Err(RenderError::TooLong {
                field: Field::Name,
                len: 6,
                max: 5
            })
        );
    }

    #[test]
    fn arabic_is_shaped_right_to_left() {
        let line = shape_line(fonts(), "محمد", Style::Bold, 0.0, Field::Name).unwrap();
        // Joined forms: four letters, four glyphs, none of them the isolated forms.
        assert_eq!(line.glyphs.len(), 4);
        // Visual order: the last letter (logical) is drawn leftmost, the first rightmost.
        assert_eq!(line.glyphs[0].text.as_deref(), Some("د"));
        assert_eq!(line.glyphs[3].text.as_deref(), Some("م"));
        assert!(line.glyphs.windows(2).all(|w| w[0].x < w[1].x));
        let isolated_meem = fonts().face(3).face.glyph_index('م').unwrap().0;
        assert!(line.glyphs.iter().all(|g| g.gid != isolated_meem));
    }

    #[test]
    fn mixed_scripts_use_several_faces() {
        let line = shape_line(fonts(), "Ana 山田 🎉", Style::Bold, 0.0, Field::Name).unwrap();
        let faces: std::collections::BTreeSet<_> = line.glyphs.iter().map(|g| g.face).collect();
        assert_eq!(faces.into_iter().collect::<Vec<_>>(), vec![1, 6, 7]);
    }

    #[test]
    fn missing_glyph_is_reported_with_the_character() {
        let err = shape_line(fonts(), "Ana \u{E000}", Style::Bold, 0.0, Field::Name).unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingGlyph {
                field: Field::Name,
                ch: '\u{E000}'
            }
        );
    }

    #[test]
    fn breaks_prefer_spaces_then_cjk_then_graphemes() {
        assert_eq!(break_candidates("Ana María López"), vec![4, 11]);
        assert_eq!(break_candidates("Jean-Luc"), vec![5]);
        assert_eq!(break_candidates("山田太郎"), vec![3, 6, 9]);
        assert_eq!(break_candidates("abc"), vec![1, 2]);
        assert!(break_candidates("a").is_empty());
    }

    #[test]
    fn cutting_a_left_to_right_line_at_a_space_matches_shaping_the_halves() {
        let names = [
            "Maximilian Alexander von Hohenzollern-Sigmaringen",
            "Zoë Müller-Lüdenscheidt Åsa Øvergård",
            "Αλέξανδρος Παπαδόπουλος",
            "Александра Владимировна Кузнецова",
            "AVA TOWNSEND-WYATT Yvonne LaTour",
        ];
        for name in names {
            let single = shape_line(fonts(), name, Style::Bold, 0.0, Field::Name).unwrap();
            for at in break_candidates(name) {
                let first = name[..at].trim_end().len();
                let Some((l1, l2)) = single.split_at_space(first, at) else {
                    assert_eq!(first, at, "{name}: a break after a space is cut");
                    continue;
                };
                let s1 =
                    shape_line(fonts(), &name[..first], Style::Bold, 0.0, Field::Name).unwrap();
                let s2 = shape_line(fonts(), &name[at..], Style::Bold, 0.0, Field::Name).unwrap();
                for (cut, shaped) in [(&l1, &s1), (&l2, &s2)] {
                    let glyphs = |l: &Line| {
                        l.glyphs
                            .iter()
                            .map(|g| (g.face, g.gid, g.text.clone(), g.cluster))
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(glyphs(cut), glyphs(shaped), "{name} at {at}");
                    assert!((cut.width - shaped.width).abs() < 1e-4, "{name} at {at}");
                    for (a, b) in cut.glyphs.iter().zip(&shaped.glyphs) {
                        assert!((a.x - b.x).abs() < 1e-4 && a.y == b.y, "{name} at {at}");
                    }
                    assert_eq!(cut.clusters.len(), shaped.clusters.len());
                }
            }
        }
        let arabic = shape_line(fonts(), "محمد بن سلمان", Style::Bold, 0.0, Field::Name).unwrap();
        assert!(
            arabic.split_at_space(8, 9).is_none(),
            "right-to-left lines are reshaped"
        );
    }

    #[test]
    fn two_line_split_is_balanced() {
        let text = "Maximilian Alexander von Hohenzollern-Sigmaringen";
        let single = shape_line(fonts(), text, Style::Bold, 0.0, Field::Name).unwrap();
        let two = split_two(fonts(), text, &single, Style::Bold, Field::Name)
            .unwrap()
            .unwrap();
        let texts: Vec<String> = two
            .lines
            .iter()
            .map(|l| l.glyphs.iter().filter_map(|g| g.text.as_deref()).collect())
            .collect();
        assert_eq!(
            texts,
            vec!["Maximilian Alexander von", "Hohenzollern-Sigmaringen"]
        );
    }
}
