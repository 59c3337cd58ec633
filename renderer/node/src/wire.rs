//! Wire: conversions between the gRPC contracts (`pressrun-proto`) and the core's plain
//! data. Only data mapping lives here; the engine stages never see a wire type.

use std::sync::Arc;

use pressrun_proto::v1;

use pressrun_engine::input::{RawData, RawRecord};
use pressrun_engine::run::shard::{
    self, DocumentEntry, ExceptionEntry, OutputFile, ShardOutput, WarningEntry,
};

/// Converts an engine value into its wire message.
pub trait ToWire {
    /// The wire message.
    type Wire;
    /// Returns the wire message for this value.
    fn to_wire(self) -> Self::Wire;
}

/// Builds an engine value from its wire message.
pub trait FromWire<W>: Sized {
    /// Returns the engine value for the wire message `w`.
    fn from_wire(w: W) -> Self;
}

impl ToWire for &shard::OutputParams {
    type Wire = v1::OutputParams;
    fn to_wire(self) -> v1::OutputParams {
        let p = self;
        v1::OutputParams {
            run_date: p.run_date.clone(),
            duplex: p.duplex,
            batch_sheets: p.batch_sheets,
            batch_documents: p.batch_documents,
            print_files: p.print_files,
            per_document: p.per_document,
            tagged_print: p.tagged_print,
            compression: p.compression as u32,
        }
    }
}

impl FromWire<&v1::OutputParams> for shard::OutputParams {
    fn from_wire(p: &v1::OutputParams) -> Self {
        shard::OutputParams {
            run_date: p.run_date.clone(),
            duplex: p.duplex,
            batch_sheets: p.batch_sheets,
            batch_documents: p.batch_documents,
            print_files: p.print_files,
            per_document: p.per_document,
            tagged_print: p.tagged_print,
            compression: p.compression.clamp(1, 9) as u8,
        }
    }
}

impl ToWire for &RawRecord {
    type Wire = v1::Record;
    fn to_wire(self) -> v1::Record {
        let r = self;
        let data = match &r.data {
            RawData::Json(s) => v1::record::Data::Json(s.clone()),
            RawData::Csv { headers, row } => v1::record::Data::Csv(v1::CsvRow {
                headers: headers.as_ref().clone(),
                cells: row.clone(),
            }),
            RawData::Unreadable(why) => v1::record::Data::Unreadable(why.clone()),
        };
        v1::Record {
            number: r.number,
            line: r.line,
            data: Some(data),
        }
    }
}

/// Converts wire records back to raw records; CSV headers are shared between rows that
/// carry the same header.
pub fn raw_records(records: Vec<v1::Record>) -> Vec<RawRecord> {
    let mut last: Option<Arc<Vec<String>>> = None;
    records
        .into_iter()
        .map(|r| {
            let data = match r.data {
                Some(v1::record::Data::Json(s)) => RawData::Json(s),
                Some(v1::record::Data::Csv(row)) => {
                    let headers = match &last {
                        Some(h) if **h == row.headers => h.clone(),
                        _ => {
                            let h = Arc::new(row.headers);
                            last = Some(h.clone());
                            h
                        }
                    };
                    RawData::Csv {
                        headers,
                        row: row.cells,
                    }
                }
                Some(v1::record::Data::Unreadable(why)) => RawData::Unreadable(why),
                None => RawData::Unreadable("record without data".into()),
            };
            RawRecord {
                number: r.number,
                line: r.line,
                data,
            }
        })
        .collect()
}

impl ToWire for DocumentEntry {
    type Wire = v1::DocumentEntry;
    fn to_wire(self) -> v1::DocumentEntry {
        let d = self;
        v1::DocumentEntry {
            record: d.record,
            document_id: d.document_id,
            print_file: d.print_file,
            first_page: d.first_page,
            pages: d.pages,
            sheets: d.sheets,
            sha256: d.sha256,
            pdf: d.pdf,
        }
    }
}

impl FromWire<v1::DocumentEntry> for DocumentEntry {
    fn from_wire(d: v1::DocumentEntry) -> Self {
        DocumentEntry {
            record: d.record,
            document_id: d.document_id,
            print_file: d.print_file,
            first_page: d.first_page,
            pages: d.pages,
            sheets: d.sheets,
            sha256: d.sha256,
            pdf: d.pdf,
        }
    }
}

impl ToWire for ExceptionEntry {
    type Wire = v1::ExceptionEntry;
    fn to_wire(self) -> v1::ExceptionEntry {
        let e = self;
        v1::ExceptionEntry {
            record: e.record,
            line: e.line,
            field: e.field,
            reason: e.reason,
        }
    }
}

impl FromWire<v1::ExceptionEntry> for ExceptionEntry {
    fn from_wire(e: v1::ExceptionEntry) -> Self {
        ExceptionEntry {
            record: e.record,
            line: e.line,
            field: e.field,
            reason: e.reason,
        }
    }
}

impl ToWire for WarningEntry {
    type Wire = v1::WarningEntry;
    fn to_wire(self) -> v1::WarningEntry {
        let w = self;
        v1::WarningEntry {
            record: w.record,
            document_id: w.document_id,
            message: w.message,
        }
    }
}

impl FromWire<v1::WarningEntry> for WarningEntry {
    fn from_wire(w: v1::WarningEntry) -> Self {
        WarningEntry {
            record: w.record,
            document_id: w.document_id,
            message: w.message,
        }
    }
}

/// Turns a one-record shard into an on-demand answer.
pub fn document_response(mut out: ShardOutput) -> v1::RenderDocumentResponse {
    let result = match (out.documents.pop(), out.exceptions.pop()) {
        (Some(entry), _) => v1::render_document_response::Result::Document(v1::RenderedDocument {
            entry: Some(entry.to_wire()),
            pdf: out.files.pop().map(|f| f.bytes.into()).unwrap_or_default(),
            warnings: out.warnings.into_iter().map(ToWire::to_wire).collect(),
        }),
        (None, Some(e)) => v1::render_document_response::Result::Rejected(e.to_wire()),
        (None, None) => v1::render_document_response::Result::Rejected(v1::ExceptionEntry {
            record: 0,
            line: 0,
            field: String::new(),
            reason: "no record".into(),
        }),
    };
    v1::RenderDocumentResponse {
        result: Some(result),
    }
}

/// Serves the Renderer service and gRPC health on `listen` until SIGINT/SIGTERM, then
/// reports NOT_SERVING, drains in-flight requests for up to `drain`, and stops.
/// Largest piece of a file in one stream message.
pub const CHUNK: usize = 1 << 20;

/// Turns a shard's output into the messages of a `RenderShard` stream: every file in
/// chunks, then the summary.
pub fn shard_messages(out: ShardOutput) -> Vec<v1::RenderShardResponse> {
    use v1::render_shard_response::Part;
    let mut msgs = Vec::new();
    for f in out.files {
        let bytes = prost::bytes::Bytes::from(f.bytes);
        let mut offset = 0;
        loop {
            let end = (offset + CHUNK).min(bytes.len());
            let last = end == bytes.len();
            msgs.push(v1::RenderShardResponse {
                part: Some(Part::File(v1::FileChunk {
                    name: f.name.clone(),
                    data: bytes.slice(offset..end),
                    last,
                })),
            });
            if last {
                break;
            }
            offset = end;
        }
    }
    msgs.push(v1::RenderShardResponse {
        part: Some(Part::Summary(v1::ShardSummary {
            shard: out.shard,
            records: out.records,
            pages: out.pages,
            sheets: out.sheets,
            documents: out.documents.into_iter().map(ToWire::to_wire).collect(),
            exceptions: out.exceptions.into_iter().map(ToWire::to_wire).collect(),
            warnings: out.warnings.into_iter().map(ToWire::to_wire).collect(),
        })),
    });
    msgs
}

/// Reassembles a shard's output from the messages of a `RenderShard` stream.
#[derive(Default)]
pub struct ShardAssembler {
    files: Vec<OutputFile>,
    open: Option<OutputFile>,
}

/// A stream that does not follow the contract.
#[derive(Debug, thiserror::Error)]
#[error("malformed shard stream: {0}")]
pub struct StreamError(pub String);

impl ShardAssembler {
    /// Takes one message; returns the complete output after the summary.
    pub fn push(
        &mut self,
        msg: v1::RenderShardResponse,
    ) -> Result<Option<ShardOutput>, StreamError> {
        use v1::render_shard_response::Part;
        match msg.part {
            Some(Part::File(chunk)) => {
                let f = match &mut self.open {
                    Some(f) if f.name == chunk.name => f,
                    Some(f) => {
                        return Err(StreamError(format!(
                            "file {} interrupted by {}",
                            f.name, chunk.name
                        )));
                    }
                    None => self.open.insert(OutputFile {
                        name: chunk.name.clone(),
                        bytes: Vec::new(),
                    }),
                };
                f.bytes.extend_from_slice(&chunk.data);
                if chunk.last {
                    self.files.push(self.open.take().expect("open file"));
                }
                Ok(None)
            }
            Some(Part::Summary(s)) => {
                if let Some(f) = &self.open {
                    return Err(StreamError(format!("summary before the end of {}", f.name)));
                }
                Ok(Some(ShardOutput {
                    shard: s.shard,
                    records: s.records,
                    files: std::mem::take(&mut self.files),
                    documents: s
                        .documents
                        .into_iter()
                        .map(DocumentEntry::from_wire)
                        .collect(),
                    exceptions: s
                        .exceptions
                        .into_iter()
                        .map(ExceptionEntry::from_wire)
                        .collect(),
                    warnings: s
                        .warnings
                        .into_iter()
                        .map(WarningEntry::from_wire)
                        .collect(),
                    pages: s.pages,
                    sheets: s.sheets,
                }))
            }
            None => Err(StreamError("message without content".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_output_survives_the_stream() {
        let out = ShardOutput {
            shard: 2,
            records: 3,
            files: vec![
                OutputFile {
                    name: "print-00003.pdf".into(),
                    bytes: (0..(CHUNK * 2 + 10)).map(|i| i as u8).collect(),
                },
                OutputFile {
                    name: "documents/x.pdf".into(),
                    bytes: vec![],
                },
            ],
            documents: vec![DocumentEntry {
                record: 2001,
                document_id: "d".into(),
                print_file: Some("print-00003.pdf".into()),
                first_page: Some(1),
                pages: 2,
                sheets: 2,
                sha256: "00".into(),
                pdf: None,
            }],
            exceptions: vec![ExceptionEntry {
                record: 2002,
                line: 2003,
                field: "a.b".into(),
                reason: "bad".into(),
            }],
            warnings: vec![],
            pages: 2,
            sheets: 2,
        };
        let msgs = shard_messages(out.clone());
        assert_eq!(msgs.len(), 3 + 1 + 1);
        let mut asm = ShardAssembler::default();
        let mut got = None;
        for m in msgs {
            got = asm.push(m).unwrap();
        }
        assert_eq!(got.unwrap(), out);
    }

    #[test]
    fn records_round_trip() {
        let headers = Arc::new(vec!["a".to_string()]);
        let raws = vec![
            RawRecord {
                number: 1,
                line: 2,
                data: RawData::Csv {
                    headers: headers.clone(),
                    row: vec!["x".into()],
                },
            },
            RawRecord {
                number: 2,
                line: 3,
                data: RawData::Json("{}".into()),
            },
            RawRecord {
                number: 3,
                line: 4,
                data: RawData::Unreadable("bad".into()),
            },
        ];
        let wire: Vec<v1::Record> = raws.iter().map(ToWire::to_wire).collect();
        let back = raw_records(wire);
        assert_eq!(format!("{back:?}"), format!("{raws:?}"));
    }
}
