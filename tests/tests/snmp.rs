//! The SNMP driver against a simulated printer: snmpsim on 127.0.0.1 started by
//! `tests/peers/start-snmpsim`, its live values in files that `tests/peers/printer-state`
//! rewrites (docs/peers/snmp.md). Polled over v2c (community `printer`) and v3 (user
//! `pressrun`, SHA/AES, context `printer`, and snmpsim's own MD5/DES user): an idle
//! printer, a jam, the life count as a witness of IPP's impressions (a Counter32 wrap
//! included), a missing object, a torn table row, answers that do not fit (extra
//! recordings in the same data folder), a late reply after the agent was stopped,
//! credentials that get no answer or a refusal, and a port nobody answers.

use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use pressrun_tests::peers::{Snmpsim, printer_state};
use pressrun_tests::root;
use printer_agent::config::{AuthProtocol, PrivProtocol, Snmp, SnmpVersion};
use printer_agent::snmp::{
    Alert, AlertSeverity, Amount, Condition, DeviceStatus, InputTray, LifeCountWitness,
    PrinterState, PrinterStatus, SnmpFailure, SnmpPrinter, Supply, Verdict,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn v2c(address: &str, community: &str) -> Snmp {
    Snmp {
        address: address.into(),
        version: SnmpVersion::V2c,
        community: Some(community.into()),
        user: None,
        auth_protocol: None,
        auth_key_file: None,
        priv_protocol: None,
        priv_key_file: None,
        context: String::new(),
        poll_seconds: 5,
    }
}

/// User `pressrun`, SHA and AES, with key files (ending in a newline) in `keys`.
fn v3(address: &str, keys: &Path, auth: &str, context: &str) -> Snmp {
    let user = V3User {
        name: "pressrun",
        auth: (AuthProtocol::Sha, auth),
        privacy: (PrivProtocol::Aes, "pressrun-priv"),
    };
    v3_user(address, keys, &user, context)
}

/// An SNMPv3 user with authentication and privacy.
struct V3User<'a> {
    name: &'a str,
    auth: (AuthProtocol, &'a str),
    privacy: (PrivProtocol, &'a str),
}

fn v3_user(address: &str, keys: &Path, user: &V3User<'_>, context: &str) -> Snmp {
    let auth_file = keys.join(format!("{}-{}.auth", user.name, user.auth.1));
    let priv_file = keys.join(format!("{}-{}.priv", user.name, user.privacy.1));
    std::fs::write(&auth_file, format!("{}\n", user.auth.1)).unwrap();
    std::fs::write(&priv_file, format!("{}\n", user.privacy.1)).unwrap();
    Snmp {
        address: address.into(),
        version: SnmpVersion::V3,
        community: None,
        user: Some(user.name.into()),
        auth_protocol: Some(user.auth.0),
        auth_key_file: Some(auth_file),
        priv_protocol: Some(user.privacy.0),
        priv_key_file: Some(priv_file),
        context: context.into(),
        poll_seconds: 5,
    }
}

/// Every request of a poll waits this long: snmpsim forks a process for every live
/// value, so a walk across the alert table takes about half a second.
const PATIENT: Duration = Duration::from_secs(5);

fn printer(cfg: &Snmp, timeout: Duration) -> SnmpPrinter {
    SnmpPrinter::new(cfg, timeout).unwrap()
}

/// Polls `p`, which must answer.
async fn poll(p: &SnmpPrinter) -> PrinterStatus {
    p.poll()
        .await
        .unwrap_or_else(|e| panic!("poll of {p:?}: {e}"))
}

fn toner(level: u32) -> Vec<Supply> {
    vec![Supply {
        index: 1,
        description: Some("Black Toner".into()),
        level: Amount::Value(level),
        max: Amount::Value(100),
    }]
}

fn tray(level: u32) -> Vec<InputTray> {
    vec![InputTray {
        index: 1,
        name: Some("Tray 1".into()),
        level: Amount::Value(level),
        max: Amount::Value(500),
    }]
}

#[test]
fn v2c_and_v3_polls_follow_the_printer_through_a_jam_and_witness_the_life_count() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let sim = Snmpsim::start(dir.path(), |d| {
        printer_state(d, "lifecount", "1234");
        printer_state(d, "tonerLevel", "80");
        printer_state(d, "tray1Level", "250");
    });
    let addr = sim.address();
    let two = printer(&v2c(&addr, "printer"), PATIENT);
    let three = printer(&v3(&addr, keys.path(), "pressrun-auth", "printer"), PATIENT);
    runtime().block_on(async {
        // Idle, as seeded; v3 sees exactly what v2c sees.
        let idle = poll(&two).await;
        assert_eq!(
            (idle.device, idle.printer),
            (DeviceStatus::Running, PrinterState::Idle)
        );
        assert!(idle.errors.is_clear(), "{:?}", idle.errors);
        assert_eq!((idle.life_count, idle.counts_impressions()), (1234, true));
        assert_eq!(idle.supplies, toner(80));
        assert_eq!(idle.inputs, tray(250));
        assert_eq!((idle.alerts.len(), idle.torn_rows), (0, 0));
        assert_eq!(poll(&three).await, idle);
        // snmpsim's default user: MD5 and DES (snmp2 before 0.5.3 could not decrypt DES
        // padded with zeros, as pysnmp pads it).
        let simulator = V3User {
            name: "simulator",
            auth: (AuthProtocol::Md5, "auctoritas"),
            privacy: (PrivProtocol::Des, "privatus"),
        };
        let md5_des = printer(&v3_user(&addr, keys.path(), &simulator, "printer"), PATIENT);
        assert_eq!(poll(&md5_des).await, idle);

        // A jam (RFC 3805): down, other, jammed, and an alert row; later a second row.
        sim.set("hrDeviceStatus", "5");
        sim.set("hrPrinterStatus", "1");
        sim.set("errorState", "0400");
        sim.set("alert.1", "3;4;13;1;0;8;Paper jam;0");
        let jam = poll(&two).await;
        assert_eq!(
            (jam.device, jam.printer, jam.errors.conditions.clone()),
            (
                DeviceStatus::Down,
                PrinterState::Other,
                vec![Condition::Jammed]
            )
        );
        assert_eq!(
            jam.alerts,
            vec![Alert {
                index: 1,
                severity: AlertSeverity::Critical,
                training: Some(4),
                group: 13,
                group_index: Some(1),
                location: Some(0),
                code: 8,
                description: "Paper jam".into(),
                time: Some(0),
            }]
        );
        assert_eq!(poll(&three).await, jam);
        sim.set("errorState", "0404");
        sim.set("tray1Level", "0");
        sim.set("alert.3", "4;4;8;1;0;808;Tray 1 empty;1500");
        let both = poll(&three).await;
        assert_eq!(
            both.errors.conditions,
            vec![Condition::Jammed, Condition::InputTrayEmpty]
        );
        assert_eq!(both.inputs, tray(0));
        let alerts: Vec<_> = both
            .alerts
            .iter()
            .map(|a| {
                (
                    a.index,
                    a.severity,
                    a.group,
                    a.code,
                    a.description.as_str(),
                    a.time,
                )
            })
            .collect();
        assert_eq!(
            alerts,
            [
                (1, AlertSeverity::Critical, 13, 8, "Paper jam", Some(0)),
                (
                    3,
                    AlertSeverity::Warning,
                    8,
                    808,
                    "Tray 1 empty",
                    Some(1500)
                ),
            ]
        );
        assert_eq!(poll(&two).await, both);

        // Cleared: the rows vanish with their files.
        for (name, value) in [
            ("hrDeviceStatus", "2"),
            ("hrPrinterStatus", "3"),
            ("errorState", "0000"),
            ("tray1Level", "250"),
            ("alert.1", "-"),
            ("alert.3", "-"),
        ] {
            sim.set(name, value);
        }
        assert_eq!(poll(&two).await, idle);

        // The life count over a job of 6 impressions, then over one where the Counter32
        // wraps (the test writes the counter as n mod 2^32, as an agent would).
        let start = LifeCountWitness::start(poll(&two).await.life_count);
        sim.set("lifecount", "1240");
        let end = poll(&three).await.life_count;
        assert_eq!(start.judge(end, 6), Verdict::Agree { impressions: 6 });
        assert_eq!(start.judge(end, 5), Verdict::Disagree { ipp: 5, snmp: 6 });
        sim.set("lifecount", "4294967290");
        let start = LifeCountWitness::start(poll(&three).await.life_count);
        sim.set("lifecount", "3");
        let end = poll(&two).await.life_count;
        assert_eq!(end, 3);
        assert_eq!(start.judge(end, 9), Verdict::Agree { impressions: 9 });

        // A missing object (file removed: noSuchInstance) is named, over both versions.
        sim.set("hrPrinterStatus", "-");
        for p in [&two, &three] {
            match p.poll().await {
                Err(SnmpFailure::Missing { object, oid }) => {
                    assert_eq!(
                        (object, oid.as_str()),
                        ("hrPrinterStatus", "1.3.6.1.2.1.25.3.5.1.1.1")
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        sim.set("hrPrinterStatus", "3");
        // A cell a walk skips (the tray's level) tears its row: dropped and counted.
        sim.set("tray1Level", "-");
        let torn = poll(&three).await;
        assert_eq!((torn.inputs.len(), torn.torn_rows), (0, 1));
        assert_eq!(poll(&two).await, torn);
        sim.set("tray1Level", "250");
        assert_eq!(poll(&two).await.inputs, tray(250));
    });
}

/// The recording with `@DIR@` filled in as start-snmpsim does, edited by `edit`.
fn recording(dir: &Path, edit: impl Fn(&str) -> Option<String>) -> String {
    let text = std::fs::read_to_string(root().join("tests/peers/printer.snmprec.in")).unwrap();
    let dir = dir.canonicalize().unwrap();
    text.lines()
        .filter_map(|l| edit(&l.replace("@DIR@", dir.to_str().unwrap())))
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn answers_that_do_not_fit_are_garbled_and_an_empty_last_table_is_empty() {
    const DEVICE_STATUS: &str = "1.3.6.1.2.1.25.3.2.1.5.1|";
    const LIFE_COUNT: &str = "1.3.6.1.2.1.43.10.2.1.4.1.1|";
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    // More recordings in the data folder: each is a community and a v3 context.
    let sim = Snmpsim::start(dir.path(), |d| {
        let data = d.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let write = |name: &str, text: String| {
            std::fs::write(data.join(format!("{name}.snmprec")), text).unwrap();
        };
        // hrDeviceStatus as an OCTET STRING.
        write(
            "wrongtype",
            recording(d, |l| {
                Some(if l.starts_with(DEVICE_STATUS) {
                    format!("{DEVICE_STATUS}4|running")
                } else {
                    l.to_string()
                })
            }),
        );
        // prtMarkerLifeCount as an INTEGER.
        write(
            "counter",
            recording(d, |l| {
                Some(if l.starts_with(LIFE_COUNT) {
                    format!("{LIFE_COUNT}2|1234")
                } else {
                    l.to_string()
                })
            }),
        );
        // No hrDeviceStatus: snmpsim answers its GET with the next object's name and value.
        write(
            "quirk",
            recording(d, |l| {
                (!l.starts_with(DEVICE_STATUS)).then(|| l.to_string())
            }),
        );
        // Nothing after the (empty) alert table: the walk meets the end of the MIB view.
        write(
            "last",
            recording(d, |l| (!l.starts_with("1.3.6.1.6.")).then(|| l.to_string())),
        );
    });
    let addr = sim.address();
    runtime().block_on(async {
        for (community, needle) in [
            (
                "wrongtype",
                "hrDeviceStatus (1.3.6.1.2.1.25.3.2.1.5.1) is OCTET STRING, not INTEGER",
            ),
            (
                "counter",
                "prtMarkerLifeCount (1.3.6.1.2.1.43.10.2.1.4.1.1) is INTEGER, not Counter32",
            ),
            // csnmp keeps one value per name (no hrDeviceStatus left); snmp2 keeps both
            // (hrPrinterStatus twice).
            ("quirk", " (1.3.6.1.2.1.25.3."),
        ] {
            for cfg in [
                v2c(&addr, community),
                v3(&addr, keys.path(), "pressrun-auth", community),
            ] {
                let e = printer(&cfg, PATIENT).poll().await;
                match &e {
                    Err(SnmpFailure::Garbled(m)) if m.contains(needle) => {}
                    other => panic!("{community} over {:?}: {other:?}", cfg.version),
                }
            }
        }
        for cfg in [
            v2c(&addr, "last"),
            v3(&addr, keys.path(), "pressrun-auth", "last"),
        ] {
            let s = poll(&printer(&cfg, PATIENT)).await;
            assert_eq!((s.alerts.len(), s.supplies.len()), (0, 1), "{s:?}");
            // An alert row now is the last object of the view.
            printer_state(dir.path(), "alert.4", "4;4;8;1;0;808;Tray 1 empty;1500");
            let s = poll(&printer(&cfg, PATIENT)).await;
            assert_eq!(s.alerts.len(), 1, "{s:?}");
            assert_eq!((s.alerts[0].index, s.alerts[0].code), (4, 808));
            printer_state(dir.path(), "alert.4", "-");
        }
    });
}

#[test]
fn late_replies_wrong_credentials_and_silent_ports_fail_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let sim = Snmpsim::start(dir.path(), |_| {});
    let addr = sim.address();
    // Walks across the simulator's alert table take about 0.5 s: a second and a half is
    // short for a timeout, long for an answer.
    let short = Duration::from_millis(1500);
    runtime().block_on(async {
        let two = printer(&v2c(&addr, "printer"), PATIENT);
        let three = printer(&v3(&addr, keys.path(), "pressrun-auth", "printer"), PATIENT);
        assert_eq!(poll(&two).await.device, DeviceStatus::Running);
        assert_eq!(poll(&three).await.device, DeviceStatus::Running);

        // The agent stops: both polls time out. It continues and answers what was queued,
        // late; the next polls read fresh values, not those late replies.
        let impatient_two = printer(&v2c(&addr, "printer"), short);
        let impatient_three = printer(&v3(&addr, keys.path(), "pressrun-auth", "printer"), short);
        assert_eq!(poll(&impatient_three).await.device, DeviceStatus::Running);
        sim.signal("STOP");
        for p in [&impatient_two, &impatient_three] {
            assert_eq!(p.poll().await, Err(SnmpFailure::Timeout(short)));
        }
        sim.set("hrDeviceStatus", "3");
        sim.set("lifecount", "77");
        sim.signal("CONT");
        for p in [&two, &three] {
            let s = poll(p).await;
            assert_eq!((s.device, s.life_count), (DeviceStatus::Warning, 77));
        }
        for p in [&impatient_two, &impatient_three] {
            let s = poll(p).await;
            assert_eq!((s.device, s.life_count), (DeviceStatus::Warning, 77));
        }

        // Credentials that snmpsim does not answer at all, or refuses.
        for (what, cfg) in [
            ("a wrong community", v2c(&addr, "public")),
            (
                "a wrong context",
                v3(&addr, keys.path(), "pressrun-auth", "nothing"),
            ),
            ("no context", v3(&addr, keys.path(), "pressrun-auth", "")),
        ] {
            let e = printer(&cfg, short).poll().await;
            assert_eq!(e, Err(SnmpFailure::Timeout(short)), "{what}");
        }
        let wrong_key = v3(&addr, keys.path(), "not-the-auth-key", "printer");
        match printer(&wrong_key, short).poll().await {
            Err(SnmpFailure::Refused(m)) => assert!(m.contains("SNMPv3"), "{m}"),
            other => panic!("a wrong auth key: {other:?}"),
        }
        let mut stranger = v3(&addr, keys.path(), "pressrun-auth", "printer");
        stranger.user = Some("stranger".into());
        match printer(&stranger, short).poll().await {
            Err(SnmpFailure::Refused(_)) => {}
            other => panic!("an unknown user: {other:?}"),
        }

        // A port where a socket is bound but nobody answers: a timeout, over both.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap().to_string();
        for cfg in [
            v2c(&silent_addr, "printer"),
            v3(&silent_addr, keys.path(), "pressrun-auth", "printer"),
        ] {
            let e = printer(&cfg, short).poll().await;
            assert_eq!(e, Err(SnmpFailure::Timeout(short)), "{:?}", cfg.version);
        }
        // A port with no socket at all: csnmp's unconnected socket never hears of it (a
        // timeout); snmp2's connected one gets "connection refused" at once.
        drop(silent);
        let e = printer(&v2c(&silent_addr, "printer"), short).poll().await;
        assert_eq!(e, Err(SnmpFailure::Timeout(short)));
        let cfg = v3(&silent_addr, keys.path(), "pressrun-auth", "printer");
        match printer(&cfg, short).poll().await {
            Err(SnmpFailure::Unavailable(_)) => {}
            other => panic!("v3 to a closed port: {other:?}"),
        }
    });
    drop(sim);
}
