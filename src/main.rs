//! `terminus`: the service binary. CLI, settings loading, logging, signals.

mod demo;
mod settings;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use log::{error, info};
use terminus_actors::{Proxy, Settings};

use crate::settings::Overrides;

/// Default log filter when RUST_LOG is unset: lifecycle at info, the
/// per-request access log off (enable it with RUST_LOG=info,terminus::access=info).
const DEFAULT_LOG_FILTER: &str = "info,terminus::access=off";

/// Terminus: a TLS-offloading reverse proxy and load balancer.
///
/// With no arguments at all, it starts on an embedded default: 127.0.0.1:8443
/// with a self-signed certificate, in front of two built-in demo backends.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (see config/default.toml for every key).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// TLS listen address (listener.address).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Backend address, repeatable (upstream.backends).
    #[arg(long = "backend", global = true)]
    backends: Vec<String>,
    /// PEM certificate chain (listener.cert).
    #[arg(long, global = true)]
    cert: Option<PathBuf>,
    /// PEM private key (listener.key).
    #[arg(long, global = true)]
    key: Option<PathBuf>,
    /// Worker threads; 0 = one per core (runtime.workers).
    #[arg(long, global = true)]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration (and load the certificate) without starting.
    Check,
}

impl Cli {
    fn is_bare(&self) -> bool {
        self.config.is_none()
            && self.listen.is_none()
            && self.backends.is_empty()
            && self.cert.is_none()
            && self.key.is_none()
            && self.command.is_none()
    }

    fn overrides(&self) -> Overrides {
        let mut o = Overrides::default();
        if let Some(a) = self.listen {
            o.set("listener.address", a.to_string());
        }
        if !self.backends.is_empty() {
            o.set("upstream.backends", self.backends.clone());
        }
        if let Some(p) = &self.cert {
            o.set("listener.cert", p.display().to_string());
        }
        if let Some(p) = &self.key {
            o.set("listener.key", p.display().to_string());
        }
        if let Some(w) = self.workers {
            o.set("runtime.workers", w as u64);
        }
        o
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_LOG_FILTER)).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("terminus: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let demo = cli.is_bare();
    let settings =
        if demo { demo_settings(&env)? } else { settings::load(cli.config.as_deref(), &env, &cli.overrides())? };
    let origin = cli.config.as_ref().map_or_else(|| "command line".to_owned(), |p| p.display().to_string());
    if let Some(Command::Check) = cli.command {
        terminus_actors::tls::listener_config(&settings.listener)
            .map_err(|e| anyhow::anyhow!("{origin}: {}", terminus_actors::StartError::from(e)))?;
        println!(
            "configuration ok: {} backend(s), listener {}",
            settings.upstream.backends.len(),
            settings.listener.address
        );
        return Ok(());
    }
    let reload = Reload { file: cli.config.clone(), overrides: cli.overrides(), demo: demo.then(|| settings.clone()) };
    serve(settings, &origin, demo, reload)
}

/// The embedded default: self-signed certificate, two demo backends.
fn demo_settings(env: &HashMap<String, String>) -> anyhow::Result<Settings> {
    let (cert, key) = demo::self_signed_cert()?;
    let a = demo::start_backend("demo-1").context("starting demo backend 1")?;
    let b = demo::start_backend("demo-2").context("starting demo backend 2")?;
    let mut o = Overrides::default();
    o.set("listener.cert", cert.display().to_string());
    o.set("listener.key", key.display().to_string());
    o.set("upstream.backends", vec![a.to_string(), b.to_string()]);
    let settings = settings::load(None, env, &o)?;
    println!("Terminus demo mode (no configuration given):");
    println!("  self-signed certificate  {}", cert.display());
    println!("  demo backends            {a} (demo-1), {b} (demo-2)");
    Ok(settings)
}

fn demo_banner(addr: SocketAddr) {
    println!("  listening                https://{addr}/");
    println!();
    println!("Try:   curl -k https://{addr}/   (twice: the backends take turns)");
    println!("Next:  terminus --listen ADDR --backend HOST:PORT --cert cert.pem --key key.pem");
    println!("       terminus --config config/example.toml   (every key: config/default.toml)");
    println!("Logs:  RUST_LOG=debug,terminus::access=info terminus");
    println!("Stop:  Ctrl-C");
}

/// Why the daemon stops.
enum Stop {
    /// SIGINT or SIGTERM: drain, exit 0.
    Signal,
    /// A supervised actor exhausted its restart budget: exit 1.
    Fatal(terminus_actors::Fatal),
}

/// Forwards [`terminus_actors::Fatal`] to the main loop.
struct FatalInbox(async_channel::Sender<terminus_actors::Fatal>);

impl actix::Actor for FatalInbox {
    type Context = actix::Context<Self>;
}

impl actix::Handler<terminus_actors::Fatal> for FatalInbox {
    type Result = ();
    fn handle(&mut self, f: terminus_actors::Fatal, _: &mut actix::Context<Self>) {
        let _ = self.0.try_send(f);
    }
}

fn serve(settings: Settings, origin: &str, demo: bool, reload: Reload) -> anyhow::Result<()> {
    use actix::Actor;
    use tokio::signal::unix::{SignalKind, signal};

    let system = actix::System::new();
    system.block_on(async move {
        let (fatal_tx, fatal_rx) = async_channel::bounded(4);
        let inbox = FatalInbox(fatal_tx).start().recipient();
        let hooks = terminus_actors::Hooks { on_fatal: Some(inbox) };
        let proxy = Proxy::start_with(settings, hooks).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        if demo {
            demo_banner(proxy.local_addr());
        }
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        let stop = loop {
            tokio::select! {
                _ = term.recv() => break Stop::Signal,
                _ = int.recv() => break Stop::Signal,
                Ok(f) = fatal_rx.recv() => break Stop::Fatal(f),
                _ = hup.recv() => reload.apply(proxy.control()).await,
            }
        };
        match stop {
            Stop::Fatal(f) => {
                error!("fatal: restart budget exhausted actor={} restarts={} reason={}", f.actor, f.restarts, f.reason);
                Err(anyhow::anyhow!("{} failed {} times: {}", f.actor, f.restarts + 1, f.reason))
            }
            Stop::Signal => {
                info!("shutting down; draining in-flight requests (a second signal exits at once)");
                tokio::select! {
                    _ = proxy.shutdown() => Ok(()),
                    _ = term.recv() => second_signal(),
                    _ = int.recv() => second_signal(),
                }
            }
        }
    })
}

/// A second SIGINT/SIGTERM during the drain: leave at once.
fn second_signal() -> anyhow::Result<()> {
    info!("second signal; exiting without waiting for the drain");
    std::process::exit(EXIT_SECOND_SIGNAL);
}

/// Exit code after a second signal (128 + SIGINT, like a shell).
const EXIT_SECOND_SIGNAL: i32 = 130;

/// What a SIGHUP reloads: the same layers as at start.
struct Reload {
    file: Option<PathBuf>,
    overrides: Overrides,
    demo: Option<Settings>,
}

impl Reload {
    /// Loads and applies the configuration; a bad one is logged and the old
    /// one keeps serving.
    async fn apply(&self, control: &actix::Addr<terminus_actors::Control>) {
        info!("reload requested signal=SIGHUP");
        let env: HashMap<String, String> = std::env::vars().collect();
        let loaded = match &self.demo {
            Some(s) => Ok(s.clone()),
            None => settings::load(self.file.as_deref(), &env, &self.overrides).map_err(anyhow::Error::from),
        };
        let new = match loaded {
            Ok(s) => s,
            Err(e) => {
                error!("reload rejected, keeping the running configuration reason={e:#}");
                return;
            }
        };
        match control.send(terminus_actors::ApplySettings(new)).await {
            Ok(Ok(report)) => info!(
                "reload done added={} removed={} reweighted={} restart_required={:?}",
                report.added.len(),
                report.removed.len(),
                report.reweighted.len(),
                report.restart_required
            ),
            Ok(Err(e)) => error!("reload rejected, keeping the running configuration reason={e}"),
            Err(e) => error!("reload failed reason={e}"),
        }
    }
}
