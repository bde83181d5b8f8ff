//! `badge-forge render`: one badge to a file, no database.

use std::path::{Path, PathBuf};

use anyhow::Context;
use badge_forge::badge_args::badge_from_args;
use badge_forge::output::{FileMode, OutputDir};
use badge_forge::render::{Badge, BadgeType};

use super::EventArgs;

#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// The whole job args as JSON, read as the worker reads them (any field the layout
    /// prints, e.g. `{"id":"a1","name":"Ada","company":"","type":"press","pronouns":"she/her"}`),
    /// instead of --name, --company, --type and --id.
    #[arg(long, conflicts_with_all = ["name", "company", "badge_type", "id"])]
    pub args: Option<String>,
    /// The attendee's name.
    #[arg(long, required_unless_present = "args")]
    pub name: Option<String>,
    /// The attendee's company.
    #[arg(long, default_value = "")]
    pub company: String,
    /// Badge type.
    #[arg(long = "type", value_parser = parse_type, default_value = "attendee")]
    pub badge_type: BadgeType,
    /// Badge id, encoded in the QR code.
    #[arg(long, default_value = "preview")]
    pub id: String,
    #[command(flatten)]
    pub pdf: PdfFile,
    #[command(flatten)]
    pub event: EventArgs,
}

/// Where a command writes its PDF, and with which permissions.
#[derive(clap::Args, Debug)]
pub struct PdfFile {
    /// Where to write the PDF.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Permission bits of the PDF, in octal (0640: owner and group may read it).
    #[arg(long, env = "BADGE_FORGE_FILE_MODE", default_value_t = FileMode::DEFAULT)]
    pub file_mode: FileMode,
}

fn parse_type(text: &str) -> Result<BadgeType, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not one of attendee, speaker, sponsor, organizer"))
}

pub fn render(args: RenderArgs) -> anyhow::Result<()> {
    let renderer = args.event.renderer()?;
    let badge = match &args.args {
        Some(json) => {
            let value: serde_json::Value =
                serde_json::from_str(json).context("--args is not JSON")?;
            badge_from_args(&value, renderer.design().fields())?
        }
        None => Badge {
            id: args.id,
            name: args.name.unwrap_or_default(),
            company: args.company,
            badge_type: args.badge_type,
            fields: Default::default(),
        },
    };
    let pdf = renderer.render(&badge)?;
    args.pdf.write(&pdf)?;
    println!("wrote {} ({} bytes)", args.pdf.output.display(), pdf.len());
    Ok(())
}

impl PdfFile {
    /// Writes `pdf` as the worker writes badges: whole or not at all, with the mode exactly,
    /// creating its directory (with [`FileMode::directory_bits`]) if needed.
    pub fn write(&self, pdf: &[u8]) -> anyhow::Result<()> {
        let path = &self.output;
        let write = || {
            let name = path.file_name().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name")
            })?;
            let parent = path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty());
            let dir = OutputDir::create_with_mode(
                parent.unwrap_or(Path::new(".")),
                false,
                self.file_mode,
            )?;
            dir.write_atomically(&dir.path().join(name), pdf)
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }
}
