//! The IPP operations the agent uses, over the `ipp` crate's async client: Print-Job,
//! Get-Job-Attributes, Get-Printer-Attributes and Cancel-Job. Every answer is read
//! defensively: a missing or ill-typed attribute is an error, not a default.

use std::time::Duration;

use ipp::attribute::IppAttributeName;
use ipp::prelude::*;

use super::watch::{JobPoll, JobState, Reason};

/// A print file to send.
#[derive(Clone, Debug)]
pub struct Document {
    /// The print file: streamed from the disk to the printer, never read into memory.
    pub pdf: std::path::PathBuf,
    /// `job-name`.
    pub name: String,
    pub duplex: bool,
    /// PWG media name, if the job asks for one.
    pub media: Option<String>,
    pub copies: u32,
}

/// Why an operation did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum IppFailure {
    /// `server-error-busy`: the printer prints another job; try again later.
    #[error("the printer is busy: {0}")]
    Busy(String),
    /// The printer refused the request with this status.
    #[error("the printer refused the request: {status:?} {message}")]
    Refused { status: StatusCode, message: String },
    /// No answer: connection refused, timed out, or not IPP.
    #[error("no answer from the printer: {0}")]
    Transport(String),
    /// An answer without what it must hold.
    #[error("the printer's answer is malformed: {0}")]
    Malformed(String),
    /// The print file cannot be read.
    #[error("cannot read the print file: {0}")]
    File(String),
    /// Print-Job failed after its request went out (a timeout, a connection lost while
    /// the document was sent or before the answer): the printer may hold the job, so it
    /// must not be sent again blindly.
    #[error("the Print-Job request failed once sent, the printer may hold the job: {0}")]
    Lost(String),
}

impl From<IppError> for IppFailure {
    fn from(e: IppError) -> Self {
        IppFailure::Transport(e.to_string())
    }
}

impl From<ipp::parser::IppParseError> for IppFailure {
    fn from(e: ipp::parser::IppParseError) -> Self {
        IppFailure::Malformed(e.to_string())
    }
}

/// The printer's state from Get-Printer-Attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterPoll {
    /// `printer-state`: 3 idle, 4 processing, 5 stopped.
    pub state: i32,
    pub reasons: Vec<Reason>,
    pub message: String,
    /// `marker-names` with `marker-levels` (percent; negative = unknown).
    pub markers: Vec<(String, i32)>,
}

/// One IPP printer.
#[derive(Clone, Debug)]
pub struct IppPrinter {
    uri: Uri,
    timeout: Duration,
}

const USER: &str = "pressrun";

fn status_message(resp: &IppRequestResponse) -> String {
    resp.attributes()
        .groups_of(DelimiterTag::OperationAttributes)
        .find_map(|g| g.get("status-message"))
        .map(|a| a.value().to_string())
        .unwrap_or_default()
}

fn check(resp: &IppRequestResponse) -> Result<(), IppFailure> {
    let status = resp.header().status_code();
    if status.is_success() {
        return Ok(());
    }
    let message = status_message(resp);
    Err(match status {
        StatusCode::ServerErrorBusy => IppFailure::Busy(message),
        status => IppFailure::Refused { status, message },
    })
}

fn keywords(v: Option<&IppAttribute>) -> Vec<String> {
    v.map(|a| a.value().into_iter().map(|v| v.to_string()).collect())
        .unwrap_or_default()
}

impl IppPrinter {
    /// A printer at `uri` (`ipp://host[:port]/path`); every request waits at most
    /// `timeout`.
    pub fn new(uri: &str, timeout: Duration) -> Result<Self, IppFailure> {
        let uri: Uri = uri
            .parse()
            .map_err(|e| IppFailure::Malformed(format!("{uri}: {e}")))?;
        Ok(Self { uri, timeout })
    }

    fn client(&self) -> AsyncIppClient {
        self.client_for(self.timeout)
    }

    fn client_for(&self, timeout: Duration) -> AsyncIppClient {
        AsyncIppClient::builder(self.uri.clone())
            .request_timeout(timeout)
            .build()
    }

    /// Print-Job: returns the printer's job id. The print file is streamed from its
    /// file; the request may take its usual timeout plus a second per MiB (a printer that
    /// takes data at its own pace is not cut off by a timeout meant for a status poll).
    /// Only a connection that could not be made is [`IppFailure::Transport`] (safe to
    /// try again); any other failure once the request went out is [`IppFailure::Lost`].
    pub async fn print(&self, doc: &Document) -> Result<i32, IppFailure> {
        use tokio_util::compat::TokioAsyncReadCompatExt;
        let file = tokio::fs::File::open(&doc.pdf)
            .await
            .map_err(|e| IppFailure::File(format!("{}: {e}", doc.pdf.display())))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| IppFailure::File(format!("{}: {e}", doc.pdf.display())))?
            .len();
        let payload = IppPayload::new_async(file.compat());
        let timeout = self.timeout + Duration::from_secs(size >> 20);
        let sides = if doc.duplex {
            "two-sided-long-edge"
        } else {
            "one-sided"
        };
        let copies = i32::try_from(doc.copies.max(1))
            .map_err(|_| IppFailure::Malformed("too many copies".into()))?;
        let mut op = IppOperationBuilder::print_job(self.uri.clone(), payload)
            .user_name(USER)
            .job_title(&doc.name)
            .document_format("application/pdf")
            .attribute(IppAttribute::new(
                IppAttributeName::SIDES,
                IppValue::new_keyword(sides)?,
            ))
            .attribute(IppAttribute::new(
                IppAttributeName::COPIES,
                IppValue::Integer(copies),
            ));
        if let Some(m) = &doc.media {
            op = op.attribute(IppAttribute::new(
                IppAttributeName::MEDIA,
                IppValue::new_keyword(m)?,
            ));
        }
        let resp = match self.client_for(timeout).send(op.build()?).await {
            Ok(r) => r,
            Err(IppError::AsyncClientError(e)) if e.is_connect() => {
                return Err(IppFailure::Transport(e.to_string()));
            }
            Err(e) => return Err(IppFailure::Lost(e.to_string())),
        };
        check(&resp)?;
        resp.attributes()
            .groups_of(DelimiterTag::JobAttributes)
            .find_map(|g| g.get("job-id"))
            .and_then(|a| a.value().as_integer().copied())
            .filter(|&id| id > 0)
            .ok_or_else(|| IppFailure::Malformed("Print-Job answer without a job-id".into()))
    }

    /// Get-Job-Attributes: `None` when the printer does not know the job
    /// (`client-error-not-found`: finished jobs vanish).
    pub async fn job(&self, job_id: i32) -> Result<Option<JobPoll>, IppFailure> {
        let op = IppOperationBuilder::get_job_attributes(self.uri.clone(), job_id)
            .user_name(USER)
            .build()?;
        let mut req: IppRequestResponse = op.into();
        let wanted = [
            "job-state",
            "job-state-reasons",
            "job-state-message",
            "job-impressions-completed",
        ]
        .into_iter()
        .map(IppValue::new_keyword)
        .collect::<Result<Vec<_>, _>>()?;
        req.attributes_mut().add(
            DelimiterTag::OperationAttributes,
            IppAttribute::new(
                IppAttributeName::REQUESTED_ATTRIBUTES,
                IppValue::Array(wanted),
            ),
        );
        let resp = self.client().send(req).await?;
        if resp.header().status_code() == StatusCode::ClientErrorNotFound {
            return Ok(None);
        }
        check(&resp)?;
        let group = resp
            .attributes()
            .groups_of(DelimiterTag::JobAttributes)
            .next()
            .ok_or_else(|| IppFailure::Malformed("no job attributes".into()))?;
        let a = group;
        let state = a
            .get("job-state")
            .and_then(|v| v.value().as_enum().copied())
            .and_then(JobState::from_ipp)
            .ok_or_else(|| IppFailure::Malformed("job-state missing or unknown".into()))?;
        let completed = match a.get("job-impressions-completed") {
            None => 0,
            Some(v) => v
                .value()
                .as_integer()
                .copied()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| {
                    IppFailure::Malformed("job-impressions-completed is not a count".into())
                })?,
        };
        Ok(Some(JobPoll {
            state,
            reasons: keywords(a.get("job-state-reasons")),
            message: a
                .get("job-state-message")
                .map(|v| v.value().to_string())
                .unwrap_or_default(),
            completed,
        }))
    }

    /// Get-Printer-Attributes: state, reasons and marker levels.
    pub async fn printer(&self) -> Result<PrinterPoll, IppFailure> {
        let op = IppOperationBuilder::get_printer_attributes(self.uri.clone())
            .attributes([
                "printer-state",
                "printer-state-reasons",
                "printer-state-message",
                "marker-names",
                "marker-levels",
            ])
            .build()?;
        let resp = self.client().send(op).await?;
        check(&resp)?;
        let group = resp
            .attributes()
            .groups_of(DelimiterTag::PrinterAttributes)
            .next()
            .ok_or_else(|| IppFailure::Malformed("no printer attributes".into()))?;
        let a = group;
        let state = a
            .get("printer-state")
            .and_then(|v| v.value().as_enum().copied())
            .ok_or_else(|| IppFailure::Malformed("printer-state missing".into()))?;
        let names = keywords(a.get("marker-names"));
        let levels: Vec<i32> = a
            .get("marker-levels")
            .map(|v| {
                v.value()
                    .into_iter()
                    .filter_map(|x| x.as_integer().copied())
                    .collect()
            })
            .unwrap_or_default();
        Ok(PrinterPoll {
            state,
            reasons: keywords(a.get("printer-state-reasons"))
                .iter()
                .filter_map(|k| Reason::parse(k))
                .collect(),
            message: a
                .get("printer-state-message")
                .map(|v| v.value().to_string())
                .unwrap_or_default(),
            markers: names.into_iter().zip(levels).collect(),
        })
    }

    /// Cancel-Job (the printer may still finish what it is doing: decide from the count).
    pub async fn cancel(&self, job_id: i32) -> Result<(), IppFailure> {
        let op = IppOperationBuilder::cancel_job(self.uri.clone(), job_id)
            .user_name(USER)
            .build()?;
        let resp = self.client().send(op).await?;
        check(&resp)
    }
}
