//! Embedding Terminus in your own actix System.
//!
//! Starts a proxy in front of one backend, then an `Operator` actor of ours
//! adds a second backend at run time and watches the pool's health events.
//! Run with `cargo run -p terminus-actors --example embed [SECONDS]`, then
//! `curl -k https://127.0.0.1:<port>/` a few times while it runs.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix::prelude::*;
use terminus_actors::{
    AddBackend, BackendPool, BackendSettings, Fatal, Hooks, Proxy, Settings, SnapshotPublished, Subscribe,
};

/// Our own actor: adds a backend and logs every change of the pool.
struct Operator {
    pool: Addr<BackendPool>,
    extra: SocketAddr,
}

impl Actor for Operator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Health events: every new pool snapshot (a backend up, down, added...).
        self.pool.do_send(Subscribe(ctx.address().recipient()));
        // Add a backend at run time once the proxy is serving.
        ctx.run_later(Duration::from_millis(500), |op, ctx| {
            let (pool, extra) = (op.pool.clone(), op.extra);
            let add = async move {
                match pool.send(AddBackend { address: extra, weight: 1 }).await {
                    Ok(Ok(())) => println!("operator: added backend {extra}"),
                    other => println!("operator: could not add {extra}: {other:?}"),
                }
            };
            ctx.spawn(add.into_actor(op));
        });
    }
}

impl Handler<SnapshotPublished> for Operator {
    type Result = ();
    fn handle(&mut self, msg: SnapshotPublished, _: &mut Context<Self>) {
        let states: Vec<String> =
            msg.0.backends().iter().map(|b| format!("{}={}", b.addr, if b.eligible { "up" } else { "down" })).collect();
        println!("operator: pool version {}: {}", msg.0.version, states.join(" "));
    }
}

/// Our reaction to a part of the proxy failing for good.
struct Alarm;
impl Actor for Alarm {
    type Context = Context<Self>;
}
impl Handler<Fatal> for Alarm {
    type Result = ();
    fn handle(&mut self, f: Fatal, _: &mut Context<Self>) {
        eprintln!("operator: proxy component failed for good: {f:?}");
        System::current().stop_with_code(1);
    }
}

fn main() -> std::io::Result<()> {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let (first, second) = (demo_backend("one")?, demo_backend("two")?);
    let (cert, key) = self_signed()?;

    let mut settings = Settings::default();
    settings.listener.address = "127.0.0.1:0".parse().expect("literal address");
    (settings.listener.cert, settings.listener.key) = (cert, key);
    settings.upstream.backends = vec![BackendSettings { address: first, weight: 1 }];

    System::new().block_on(async move {
        let hooks = Hooks { on_fatal: Some(Alarm.start().recipient()) };
        let proxy = Proxy::start_with(settings, hooks).expect("proxy starts");
        println!("proxy listening on https://{}/ for {seconds} s", proxy.local_addr());
        Operator { pool: proxy.pool().clone(), extra: second }.start();
        actix_rt::time::sleep(Duration::from_secs(seconds)).await;
        proxy.shutdown().await;
    });
    Ok(())
}

/// A one-line HTTP backend on a thread: answers `hello from NAME`.
fn demo_backend(name: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone()?);
                loop {
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line)? == 0 {
                            return Ok::<_, std::io::Error>(());
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let body = format!("hello from {name}\n");
                    write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len())?;
                }
            });
        }
    });
    Ok(addr)
}

/// A throw-away self-signed certificate for 127.0.0.1.
fn self_signed() -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .map_err(std::io::Error::other)?;
    let dir = std::env::temp_dir().join(format!("terminus-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem())?;
    std::fs::write(&k, cert.key_pair.serialize_pem())?;
    Ok((c, k))
}
