//! Wire: conversions between the gRPC contracts (`pressrun-proto`) and the core's plain
//! data. Only data mapping lives here; the engine stages never see a wire type.

use std::sync::Arc;

use pressrun_proto::v1;

use pressrun_engine::input::{RawData, RawRecord};
use pressrun_engine::run::shard::{
    self, DocumentEntry, ExceptionEntry, OutputFile, OutputParams, ShardOutput, WarningEntry,
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
            max_pages: p.limits.max_pages,
            max_compose_millis: p.limits.max_compose_time.as_millis().min(u64::MAX as u128) as u64,
            spool: p.spool,
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
            spool: p.spool,
            limits: {
                let d = pressrun_engine::run::compose::Limits::default();
                pressrun_engine::run::compose::Limits {
                    max_pages: if p.max_pages == 0 {
                        d.max_pages
                    } else {
                        p.max_pages
                    },
                    max_compose_time: if p.max_compose_millis == 0 {
                        d.max_compose_time
                    } else {
                        std::time::Duration::from_millis(p.max_compose_millis)
                    },
                }
            },
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
            template_sha256: d.template_sha256,
            pdf: d.pdf,
            spool: d.spool,
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
            template_sha256: d.template_sha256,
            pdf: d.pdf,
            spool: d.spool,
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
            template_sha256: e.template_sha256,
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
            template_sha256: e.template_sha256,
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
            preview: false,
        }),
        (None, Some(e)) => v1::render_document_response::Result::Rejected(e.to_wire()),
        (None, None) => v1::render_document_response::Result::Rejected(v1::ExceptionEntry {
            record: 0,
            line: 0,
            field: String::new(),
            reason: "no record".into(),
            template_sha256: String::new(),
        }),
    };
    v1::RenderDocumentResponse {
        result: Some(result),
    }
}

/// The run parameters of a request, checked: required, and valid.
pub fn params(p: Option<&v1::OutputParams>) -> Result<OutputParams, pressrun_proto::ServiceError> {
    use pressrun_proto::ServiceError;
    let params = p
        .map(OutputParams::from_wire)
        .ok_or_else(|| ServiceError::InvalidArgument("params are required".into()))?;
    params.validate().map_err(ServiceError::InvalidArgument)?;
    Ok(params)
}

/// The run parameters of an on-demand request: checked, and one tagged PDF, no print file.
pub fn on_demand_params(
    p: Option<&v1::OutputParams>,
) -> Result<OutputParams, pressrun_proto::ServiceError> {
    let mut params = params(p)?;
    params.print_files = false;
    params.per_document = true;
    Ok(params)
}

/// Largest piece of a file, of the records or of the summary in one stream message.
pub const CHUNK: usize = 1 << 20;

/// Splits bytes into `Chunk` messages (at least one, even when empty).
fn chunks(bytes: prost::bytes::Bytes) -> impl Iterator<Item = v1::Chunk> {
    let n = bytes.len().div_ceil(CHUNK).max(1);
    (0..n).map(move |i| {
        let end = ((i + 1) * CHUNK).min(bytes.len());
        v1::Chunk {
            data: bytes.slice((i * CHUNK).min(end)..end),
            last: i + 1 == n,
        }
    })
}

/// The messages of a `RenderShard` request: the header, then the records as
/// length-delimited `Record` messages in chunks, so a shard of any size fits the stream.
pub fn shard_request(
    run_id: &str,
    shard: u64,
    bundle_hash: &str,
    params: &OutputParams,
    records: &[RawRecord],
) -> Vec<v1::RenderShardRequest> {
    use prost::Message;
    use v1::render_shard_request::Part;
    let mut buf = Vec::new();
    for r in records {
        r.to_wire()
            .encode_length_delimited(&mut buf)
            .expect("a Vec grows");
    }
    let mut msgs = vec![v1::RenderShardRequest {
        part: Some(Part::Header(v1::ShardHeader {
            run_id: run_id.to_string(),
            shard,
            bundle_hash: bundle_hash.to_string(),
            params: Some(params.to_wire()),
            records: records.len() as u64,
            records_bytes: buf.len() as u64,
        })),
    }];
    msgs.extend(chunks(buf.into()).map(|c| v1::RenderShardRequest {
        part: Some(Part::Records(c)),
    }));
    msgs
}

/// Decodes the records of a `RenderShard` request: exactly `count` records in exactly
/// `bytes.len()` bytes.
pub fn decode_records(bytes: &[u8], count: u64) -> Result<Vec<RawRecord>, StreamError> {
    use prost::Message;
    let mut rest = bytes;
    let mut records = Vec::with_capacity(count.min(1 << 16) as usize);
    while !rest.is_empty() {
        if records.len() as u64 == count {
            return Err(StreamError(format!(
                "more than the {count} records announced"
            )));
        }
        let r = v1::Record::decode_length_delimited(&mut rest).map_err(|e| {
            StreamError(format!("record {} does not decode: {e}", records.len() + 1))
        })?;
        records.push(r);
    }
    if records.len() as u64 != count {
        return Err(StreamError(format!(
            "{} records for the {count} announced",
            records.len()
        )));
    }
    Ok(raw_records(records))
}

/// Turns a shard's output into the answer messages of a `RenderShard` stream: every file
/// in chunks, then the summary (an encoded `ShardSummary`) in chunks.
pub fn shard_messages(out: ShardOutput) -> Vec<v1::RenderShardResponse> {
    use prost::Message;
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
    let summary = v1::ShardSummary {
        shard: out.shard,
        records: out.records,
        pages: out.pages,
        sheets: out.sheets,
        documents: out.documents.into_iter().map(ToWire::to_wire).collect(),
        exceptions: out.exceptions.into_iter().map(ToWire::to_wire).collect(),
        warnings: out.warnings.into_iter().map(ToWire::to_wire).collect(),
    };
    msgs.extend(
        chunks(summary.encode_to_vec().into()).map(|c| v1::RenderShardResponse {
            part: Some(Part::Summary(c)),
        }),
    );
    msgs
}

/// The progress message a node sends while it renders (and as a heartbeat).
pub fn progress_message(records_done: u64) -> v1::RenderShardResponse {
    v1::RenderShardResponse {
        part: Some(v1::render_shard_response::Part::Progress(
            v1::ShardProgress { records_done },
        )),
    }
}

/// What one answer message brought.
#[derive(Debug, PartialEq)]
pub enum Pushed {
    /// Part of a file or of the summary.
    Partial,
    /// Records rendered so far on the node.
    Progress(u64),
    /// The complete output.
    Done(ShardOutput),
}

/// Reassembles a shard's output from the answer messages of a `RenderShard` stream,
/// refusing more than `limit` bytes in all (a node's answer is not trusted).
pub struct ShardAssembler {
    files: Vec<OutputFile>,
    open: Option<OutputFile>,
    summary: Vec<u8>,
    bytes: u64,
    limit: u64,
}

impl Default for ShardAssembler {
    fn default() -> Self {
        Self::with_limit(u64::MAX)
    }
}

/// A stream that does not follow the contract.
#[derive(Debug, thiserror::Error)]
#[error("malformed shard stream: {0}")]
pub struct StreamError(pub String);

impl ShardAssembler {
    /// An assembler that refuses answers larger than `limit` bytes.
    pub fn with_limit(limit: u64) -> Self {
        Self {
            files: Vec::new(),
            open: None,
            summary: Vec::new(),
            bytes: 0,
            limit,
        }
    }

    fn count(&mut self, n: usize) -> Result<(), StreamError> {
        self.bytes += n as u64;
        if self.bytes > self.limit {
            return Err(StreamError(format!(
                "the answer exceeds {} bytes",
                self.limit
            )));
        }
        Ok(())
    }

    /// Takes one message.
    pub fn push(&mut self, msg: v1::RenderShardResponse) -> Result<Pushed, StreamError> {
        use prost::Message;
        use v1::render_shard_response::Part;
        match msg.part {
            Some(Part::Progress(p)) => Ok(Pushed::Progress(p.records_done)),
            Some(Part::File(chunk)) => {
                if !self.summary.is_empty() {
                    return Err(StreamError("file after the summary began".into()));
                }
                self.count(chunk.data.len() + chunk.name.len())?;
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
                Ok(Pushed::Partial)
            }
            Some(Part::Summary(chunk)) => {
                if let Some(f) = &self.open {
                    return Err(StreamError(format!("summary before the end of {}", f.name)));
                }
                self.count(chunk.data.len())?;
                self.summary.extend_from_slice(&chunk.data);
                if !chunk.last {
                    return Ok(Pushed::Partial);
                }
                let s = v1::ShardSummary::decode(self.summary.as_slice())
                    .map_err(|e| StreamError(format!("the summary does not decode: {e}")))?;
                self.summary = Vec::new();
                Ok(Pushed::Done(ShardOutput {
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

/// A bundle as its wire message (the files copied: the bundle stays usable).
pub fn bundle_to_wire(b: &pressrun_engine::bundle::Bundle) -> v1::TemplateBundle {
    v1::TemplateBundle {
        hash: b.hash.clone(),
        files: b
            .files
            .iter()
            .map(|(path, content)| v1::BundleFile {
                path: path.clone(),
                content: content.clone().into(),
            })
            .collect(),
    }
}

/// A received bundle, checked (paths, size) against the hash it was announced with.
pub fn bundle_from_wire(
    b: v1::TemplateBundle,
) -> Result<pressrun_engine::bundle::Bundle, pressrun_engine::bundle::BundleError> {
    let files = b
        .files
        .into_iter()
        .map(|f| (f.path, f.content.to_vec()))
        .collect();
    pressrun_engine::bundle::Bundle::verify(files, &b.hash)
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
                template_sha256: "11".into(),
                pdf: None,
                spool: Some("spool/00003.spool".into()),
            }],
            exceptions: vec![ExceptionEntry {
                record: 2002,
                line: 2003,
                field: "a.b".into(),
                reason: "bad".into(),
                template_sha256: "11".into(),
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
            if let Pushed::Done(o) = asm.push(m).unwrap() {
                got = Some(o);
            }
        }
        assert_eq!(got.unwrap(), out);
        // An answer larger than the limit is refused.
        let mut small = ShardAssembler::with_limit(CHUNK as u64);
        let refused = shard_messages(out)
            .into_iter()
            .map(|m| small.push(m))
            .any(|r| r.is_err());
        assert!(refused);
    }

    #[test]
    fn a_shard_of_any_size_is_sent_in_chunks() {
        let big = "x".repeat(3 * CHUNK);
        let records: Vec<RawRecord> = (1..=3)
            .map(|n| RawRecord {
                number: n,
                line: n,
                data: RawData::Json(format!("{{\"pad\":\"{big}\"}}")),
            })
            .collect();
        let msgs = shard_request("r", 0, "h", &OutputParams::default(), &records);
        assert!(msgs.len() > 9, "{} messages", msgs.len());
        use prost::Message;
        assert!(msgs.iter().all(|m| m.encoded_len() <= CHUNK + 64));
        let mut bytes = Vec::new();
        let mut count = 0;
        for m in msgs {
            match m.part.unwrap() {
                v1::render_shard_request::Part::Header(h) => count = h.records,
                v1::render_shard_request::Part::Records(c) => bytes.extend_from_slice(&c.data),
            }
        }
        let back = decode_records(&bytes, count).unwrap();
        assert_eq!(format!("{back:?}"), format!("{records:?}"));
        assert!(decode_records(&bytes, count + 1).is_err());
        assert!(decode_records(&bytes[..bytes.len() - 1], count).is_err());
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
