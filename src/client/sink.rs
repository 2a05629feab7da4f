//! An export's file: rows to `FILE.part`, synced after each chunk, with
//! `FILE.resume` saying how far it got; `FILE` itself once complete.

use std::{
    collections::HashMap,
    fs::{self, File, OpenOptions},
    io::{BufWriter, IsTerminal, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use consentd::api::proto::{ConsentRecord, PreferenceEvent};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tonic::Streaming;

use super::{
    export::{Common, Format},
    failed,
    rows::{Row, consent_row, event_row},
};

/// What FILE.resume holds.
#[derive(Serialize, Deserialize)]
pub struct Saved {
    kind: String,
    format: Format,
    /// The length of FILE.part up to the last whole chunk.
    bytes: u64,
    records: u64,
    /// Continues after the last whole chunk.
    pub token: String,
    /// CSV category columns, in the order first seen.
    categories: Vec<String>,
}

struct Paths {
    out: PathBuf,
    part: PathBuf,
    resume: PathBuf,
}

impl Paths {
    fn of(out: &Path) -> Self {
        let beside = |suffix: &str| {
            let mut name = out.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self {
            out: out.to_path_buf(),
            part: beside(".part"),
            resume: beside(".resume"),
        }
    }
}

/// An error of reading or writing `path`, worded with it.
fn io<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Where rows go, and what a resume needs.
pub struct Sink {
    paths: Paths,
    format: Format,
    consents: bool,
    receipts: bool,
    file: BufWriter<File>,
    pub saved: Saved,
    column_of: HashMap<String, usize>,
    stop_after: Option<u64>,
    bar: ProgressBar,
}

impl Sink {
    /// Opens FILE.part, fresh or cut back to the last whole chunk; `None`
    /// when `--resume` finds the export already complete.
    pub fn open(c: &Common, kind: &str, receipts: bool) -> Result<Option<Self>, String> {
        let paths = Paths::of(&c.out);
        let saved = match (c.resume, fs::read(&paths.resume)) {
            (true, Ok(bytes)) => {
                let saved: Saved = serde_json::from_slice(&bytes).map_err(io(&paths.resume))?;
                if saved.kind != kind || saved.format != c.format {
                    return Err(format!(
                        "{} is an export of {} as {}: resume it with the same command",
                        paths.resume.display(),
                        saved.kind,
                        format_name(saved.format)
                    ));
                }
                Some(saved)
            }
            (true, Err(_)) if c.out.exists() => {
                eprintln!(
                    "consentd: {} is complete; nothing to resume",
                    c.out.display()
                );
                return Ok(None);
            }
            (false, Ok(_)) => {
                return Err(format!(
                    "{} holds an interrupted export: add --resume to continue it, or delete it to start over",
                    paths.resume.display()
                ));
            }
            _ => None,
        };
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(saved.is_none())
            .open(&paths.part)
            .map_err(io(&paths.part))?;
        let saved = saved.unwrap_or(Saved {
            kind: kind.into(),
            format: c.format,
            bytes: 0,
            records: 0,
            token: String::new(),
            categories: Vec::new(),
        });
        // A chunk written after the last save is written again.
        file.set_len(saved.bytes).map_err(io(&paths.part))?;
        let mut file = BufWriter::new(file);
        file.seek(SeekFrom::End(0)).map_err(io(&paths.part))?;
        let bar = progress_bar(saved.records);
        Ok(Some(Self {
            column_of: saved
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i))
                .collect(),
            consents: kind == "consents",
            receipts,
            format: c.format,
            stop_after: c.stop_after,
            file,
            saved,
            paths,
            bar,
        }))
    }

    /// Writes every message of an export call, saving its resume token
    /// after each, then completes the file.
    pub async fn drain<M>(
        mut self,
        call: Result<tonic::Response<Streaming<M>>, tonic::Status>,
        split: impl Fn(M) -> (Vec<Row>, String),
    ) -> Result<(), String> {
        let mut stream = call.map_err(failed)?.into_inner();
        while let Some(message) = stream.message().await.map_err(failed)? {
            let (rows, token) = split(message);
            for row in rows {
                self.write(row)?;
            }
            self.save(token)?;
        }
        self.finish()
    }

    fn write(&mut self, row: Row) -> Result<(), String> {
        let part = &self.paths.part;
        match self.format {
            Format::Ndjson => {
                serde_json::to_writer(&mut self.file, &row.json(self.consents))
                    .map_err(io(part))?;
                self.file.write_all(b"\n").map_err(io(part))?;
            }
            Format::Csv => {
                let mut cells: Vec<String> = row.cells.iter().map(|(_, c)| c.csv()).collect();
                let fixed = cells.len();
                for (category, granted) in &row.categories {
                    let next = self.column_of.len();
                    let column = *self.column_of.entry(category.clone()).or_insert_with(|| {
                        self.saved.categories.push(category.clone());
                        next
                    });
                    if cells.len() <= fixed + column {
                        cells.resize(fixed + column + 1, String::new());
                    }
                    cells[fixed + column] = if *granted { "granted" } else { "denied" }.into();
                }
                // Rows are ragged until `finish` pads them under the header.
                let mut writer = csv::WriterBuilder::new()
                    .flexible(true)
                    .buffer_capacity(1024)
                    .from_writer(&mut self.file);
                writer
                    .write_record(&cells)
                    .and_then(|()| writer.flush().map_err(Into::into))
                    .map_err(io(part))?;
            }
        }
        self.saved.records += 1;
        self.bar.inc(1);
        if self.stop_after.is_some_and(|n| self.saved.records >= n) {
            self.file.flush().map_err(io(part))?;
            return Err(format!(
                "stopped after {} records, as --stop-after asked",
                self.saved.records
            ));
        }
        Ok(())
    }

    /// Makes the chunk durable, then records where a resume starts.
    fn save(&mut self, token: String) -> Result<(), String> {
        let part = &self.paths.part;
        self.file.flush().map_err(io(part))?;
        self.file.get_ref().sync_data().map_err(io(part))?;
        self.saved.bytes = self.file.get_ref().metadata().map_err(io(part))?.len();
        self.saved.token = token;
        let resume = &self.paths.resume;
        let mut staged = resume.clone().into_os_string();
        staged.push(".new");
        let staged = PathBuf::from(staged);
        let json = serde_json::to_vec(&self.saved).expect("plain data serializes");
        fs::write(&staged, json).map_err(io(&staged))?;
        fs::rename(&staged, resume).map_err(io(resume))
    }

    pub fn finish(mut self) -> Result<(), String> {
        let part = self.paths.part.clone();
        self.file.flush().map_err(io(&part))?;
        match self.format {
            Format::Ndjson => fs::rename(&part, &self.paths.out).map_err(io(&self.paths.out))?,
            Format::Csv => self.assemble_csv()?,
        }
        let _ = fs::remove_file(&part);
        fs::remove_file(&self.paths.resume).map_err(io(&self.paths.resume))?;
        self.bar.finish_and_clear();
        if std::io::stderr().is_terminal() {
            eprintln!(
                "exported {} records to {}",
                self.saved.records,
                self.paths.out.display()
            );
        }
        Ok(())
    }

    /// Writes FILE: the header, then every row of FILE.part padded to it,
    /// with the category columns in name order.
    fn assemble_csv(&self) -> Result<(), String> {
        let empty = if self.consents {
            consent_row(ConsentRecord {
                receipt: self.receipts.then(Default::default),
                ..Default::default()
            })
        } else {
            event_row(PreferenceEvent::default())
        };
        let fixed: Vec<String> = empty.cells.iter().map(|(n, _)| n.to_string()).collect();
        let mut order: Vec<(usize, &String)> = self.saved.categories.iter().enumerate().collect();
        order.sort_by_key(|(_, name)| *name);
        let header = fixed
            .iter()
            .cloned()
            .chain(order.iter().map(|(_, name)| format!("category:{name}")));
        let (part, out) = (&self.paths.part, &self.paths.out);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(part)
            .map_err(io(part))?;
        let mut writer = csv::Writer::from_path(out).map_err(io(out))?;
        writer.write_record(header).map_err(io(out))?;
        for record in reader.records() {
            let record = record.map_err(io(part))?;
            let cell = |i: usize| record.get(i).unwrap_or_default();
            let row = (0..fixed.len())
                .map(cell)
                .chain(order.iter().map(|(seen, _)| cell(fixed.len() + seen)));
            writer.write_record(row).map_err(io(out))?;
        }
        writer.flush().map_err(io(out))?;
        writer
            .into_inner()
            .map_err(io(out))?
            .sync_all()
            .map_err(io(out))
    }
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::Csv => "csv",
        Format::Ndjson => "ndjson",
    }
}

/// Records so far and the rate on a terminal; nothing otherwise. The
/// server gives no count up front (that would be a second scan), so there
/// is no total.
fn progress_bar(done: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {human_pos} records  {per_sec}  {elapsed}")
            .expect("a valid template"),
    );
    bar.set_position(done);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
