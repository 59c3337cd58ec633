//! Command-line options of a run, shared by `renderer render` and `dispatcher run`, so
//! both accept the same flags with the same meaning and `--help` text.

use std::path::PathBuf;

use pressrun_engine::input::InputFormat;
use pressrun_engine::run::RunSpec;
use pressrun_engine::run::shard::OutputParams;

/// What to render, where, and how the output is cut and tagged.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Template folder (contains template.toml and body.xml).
    #[arg(long)]
    pub template: PathBuf,
    /// Fragment library folder (overrides the template's `fragments` setting).
    #[arg(long)]
    pub fragments: Option<PathBuf>,
    /// Input records: JSON Lines (.jsonl) or CSV (.csv); `-` reads standard input (with --format).
    #[arg(long)]
    pub data: PathBuf,
    /// Input format when the file name does not tell.
    #[arg(long, value_parser = clap::builder::TypedValueParser::map(
        clap::builder::PossibleValuesParser::new(InputFormat::NAMES),
        |s| s.parse::<InputFormat>().expect("a listed name")))]
    pub format: Option<InputFormat>,
    /// Output folder: print files, documents.jsonl, exceptions.jsonl, warnings.jsonl, summary.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Records per batch: one print file per batch of consecutive input records
    /// (rejected records leave a batch short; a batch is what a farm renders as one shard).
    #[arg(long, default_value_t = 1000)]
    pub batch_records: u64,
    /// Also cut a batch's print file after the document that reaches this many sheets.
    #[arg(long)]
    pub batch_sheets: Option<u32>,
    /// Also cut a batch's print file after this many documents.
    #[arg(long)]
    pub batch_documents: Option<u32>,
    /// Duplex: every document starts on a new sheet (a blank back is added after odd page counts).
    #[arg(long)]
    pub duplex: bool,
    /// Write one tagged PDF per document under OUT/documents/.
    #[arg(long)]
    pub per_document: bool,
    /// Do not write print files (use with --per-document).
    #[arg(long)]
    pub no_print_files: bool,
    /// Tag print files as well (per-document PDFs are always tagged).
    #[arg(long)]
    pub tagged_print: bool,
    /// Render threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Stop after this many records.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Run date YYYY-MM-DD, visible to templates as run.date (default: today, UTC; pass it
    /// for reproducible output and for resuming a run on another day).
    #[arg(long, value_parser = parse_run_date)]
    pub run_date: Option<String>,
    /// Per-record page limit: a record whose document would have more pages is rejected
    /// (named in exceptions.jsonl) instead of stalling its shard.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pages: u32,
    /// Per-record composition time limit in seconds (measured on the machine that
    /// composes the record): a record that takes longer is rejected.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_record_seconds: u64,
    /// Largest input record in bytes: a longer record is rejected as unreadable (with its
    /// line number) and the run goes on.
    #[arg(long, default_value_t = pressrun_engine::input::MAX_RECORD_BYTES, value_parser = clap::value_parser!(usize))]
    pub max_record_bytes: usize,
    /// Deflate level for page content, 1 (fast) to 9 (small).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub compression: u8,
    /// No progress line even on a terminal.
    #[arg(long)]
    pub quiet: bool,
    /// Reuse an output folder that holds another (or a finished) run: its outputs are
    /// removed first. Without it such a folder is refused; an interrupted attempt of the
    /// same run (same inputs, template and options) is always resumed.
    #[arg(long)]
    pub replace: bool,
    /// Shards that may be rendered ahead of the commit point (0 = twice the render
    /// slots): bounds memory when one renderer hangs on the oldest shard.
    #[arg(long, default_value_t = 0)]
    pub window_shards: usize,
    /// Print production: a production profile (TOML, see docs/production.md). The run's
    /// documents are assembled into print jobs of mail pieces — presort, householding,
    /// envelopes, feeders, Data Matrix and OMR marks — written as OUT/jobs/J….pdf beside
    /// a manifest each, instead of print files per batch. Its duplex setting decides.
    #[arg(long, value_name = "PROFILE")]
    pub production: Option<PathBuf>,
}

/// Makes `spec` a print-production run with `profile`: documents are spooled by the
/// shards and assembled into print jobs; the profile decides simplex or duplex.
pub fn with_production(spec: &mut RunSpec, profile: Option<pressrun_engine::production::Profile>) {
    if let Some(p) = profile {
        spec.output.spool = true;
        spec.output.duplex = p.duplex;
        spec.production = Some(std::sync::Arc::new(p));
    }
}

/// Accepts only real calendar dates, `YYYY-MM-DD`.
fn parse_run_date(s: &str) -> Result<String, String> {
    pressrun_engine::template::parse_date(s)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("{s:?} is not a calendar date YYYY-MM-DD"))
}

impl RunArgs {
    /// The run date: the flag, else today's UTC date.
    pub fn run_date(&self) -> String {
        self.run_date.clone().unwrap_or_else(today_utc)
    }

    /// Compiles the template (printing its warnings); `None` after printing the
    /// diagnostics of a template that does not compile (exit code 4).
    pub fn compile_template(&self) -> Option<pressrun_engine::template::Template> {
        match pressrun_engine::template::compile(
            &self.template,
            &pressrun_engine::template::CompileOptions {
                fragments: self.fragments.clone(),
            },
        ) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("{w}");
                }
                Some(c.template)
            }
            Err(diags) => {
                eprintln!("{diags}");
                None
            }
        }
    }

    /// Reads and checks the production profile, if one is named; the error says what is
    /// wrong with it, at file:line:column (exit code 4, like a template that does not compile).
    pub fn load_profile(&self) -> Result<Option<pressrun_engine::production::Profile>, String> {
        let Some(path) = &self.production else {
            return Ok(None);
        };
        pressrun_engine::production::Profile::read(path).map(Some)
    }

    /// The typed run specification for `run_date`, run by `runner`.
    pub fn run_spec(&self, run_date: String, runner: &str) -> RunSpec {
        RunSpec {
            data: self.data.clone(),
            format: self.format,
            out: self.out.clone(),
            batch_records: self.batch_records.max(1),
            limit: self.limit,
            replace: self.replace,
            window: self.window_shards,
            max_attempts: 8,
            runner: runner.to_string(),
            max_record_bytes: self.max_record_bytes.max(1),
            unavailable: std::time::Duration::from_secs(600),
            production: None,
            assemble_threads: self.threads,
            output: OutputParams {
                run_date,
                duplex: self.duplex,
                batch_sheets: self.batch_sheets,
                batch_documents: self.batch_documents,
                print_files: !self.no_print_files,
                per_document: self.per_document,
                tagged_print: self.tagged_print,
                compression: self.compression,
                spool: false,
                limits: pressrun_engine::run::compose::Limits {
                    max_pages: self.max_pages,
                    max_compose_time: std::time::Duration::from_secs(self.max_record_seconds),
                },
            },
        }
    }
}

/// Today's date in UTC, `YYYY-MM-DD`: the default run date, recorded in `summary.json`.
#[expect(
    clippy::disallowed_methods,
    reason = "the default run date is the only use of the clock; it is a run parameter, recorded"
)]
pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    pressrun_engine::example_data::civil_date((secs / 86_400) as i64)
}
