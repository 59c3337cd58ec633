//! `printer-agent serve`: every device of `agent.toml` driven at once — per printer a
//! worker ([`crate::printing`]) and a state watcher, per inserter a PIL/1 driver
//! ([`crate::inserting`]) — and the session with the dispatcher ([`crate::link`]),
//! around one durable store ([`crate::store`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pressrun_proto::v1::PrinterInfo;
use tokio::sync::{Notify, mpsc};

use crate::config::Config;
use crate::inserting::{Address, Declare, Driver};
use crate::ipp::client::IppPrinter;
use crate::ipp::driver::Pacing;
use crate::link::{Dispatcher, Link};
use crate::printing::{Worker, watch_printer, watch_snmp};
use crate::status::Statuses;
use crate::store::Store;

/// How `serve` runs besides the configuration.
#[derive(Clone, Debug)]
pub struct Options {
    pub dispatcher: Dispatcher,
    pub pacing: Pacing,
    /// Between two Get-Printer-Attributes of each printer.
    pub printer_poll: Duration,
}

/// Why `serve` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("printer {printer}: {msg}")]
    Printer { printer: String, msg: String },
    #[error("the dispatcher link stopped: {0}")]
    Link(String),
}

/// Starts every driver and the link; returns when the link task ends (never, unless it
/// panics).
pub async fn serve(config: Config, options: Options) -> Result<(), ServeError> {
    let store = Arc::new(Store::open(&config.agent.state_dir)?);
    let outbox = Arc::new(Notify::new());
    let statuses = Arc::new(Statuses::default());
    let mut inserter_tx: BTreeMap<String, mpsc::Sender<Declare>> = BTreeMap::new();
    for ins in &config.inserters {
        let (tx, rx) = mpsc::channel(1024);
        let driver = Driver::new(
            ins.name.clone(),
            config.agent.name.clone(),
            Address::from(ins.link()),
            store.clone(),
            outbox.clone(),
            statuses.clone(),
        )?;
        tokio::spawn(driver.run(rx));
        inserter_tx.insert(ins.name.clone(), tx);
    }
    let mut printer_jobs = BTreeMap::new();
    let mut infos = Vec::new();
    for p in &config.printers {
        let ipp =
            IppPrinter::new(&p.uri, Duration::from_secs(30)).map_err(|e| ServeError::Printer {
                printer: p.name.clone(),
                msg: e.to_string(),
            })?;
        let jobs = Arc::new(Notify::new());
        printer_jobs.insert(p.name.clone(), jobs.clone());
        infos.push(PrinterInfo {
            name: p.name.clone(),
            duplex: p.duplex,
            colour: p.colour,
            media: p.media.clone(),
            speed_ppm: p.speed_ppm.unwrap_or(0),
            inserter: p.inserter.clone().unwrap_or_default(),
        });
        tokio::spawn(watch_printer(
            p.name.clone(),
            ipp.clone(),
            statuses.clone(),
            options.printer_poll,
        ));
        let snmp = match &p.snmp {
            Some(cfg) => Some(Arc::new(
                crate::snmp::SnmpPrinter::new(cfg, Duration::from_secs(2)).map_err(|e| {
                    ServeError::Printer {
                        printer: p.name.clone(),
                        msg: format!("SNMP: {e}"),
                    }
                })?,
            )),
            None => None,
        };
        if let Some(snmp) = &snmp {
            tokio::spawn(watch_snmp(p.name.clone(), snmp.clone(), statuses.clone()));
        }
        let worker = Worker {
            snmp,
            seen: std::sync::atomic::AtomicU64::new(0),
            name: p.name.clone(),
            ipp,
            pacing: options.pacing.clone(),
            store: store.clone(),
            outbox: outbox.clone(),
            jobs,
            statuses: statuses.clone(),
            inserter: p
                .inserter
                .as_ref()
                .and_then(|i| inserter_tx.get(i).cloned()),
        };
        tokio::spawn(worker.run());
    }
    let link = Link {
        dispatcher: options.dispatcher,
        agent: config.agent.name.clone(),
        printers: infos,
        inserters: config.inserters.iter().map(|i| i.name.clone()).collect(),
        store,
        outbox,
        statuses,
        printer_jobs,
    };
    tokio::spawn(link.run())
        .await
        .map_err(|e| ServeError::Link(e.to_string()))
}
