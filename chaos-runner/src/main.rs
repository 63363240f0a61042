//! `chaos-runner`: Jepsen-style testing of replicated systems.

mod bench;
mod check_cmd;
mod cluster;
mod console;
mod exit;
mod fabric;
mod links;
mod nemesis;
mod netns;
mod proxy;
mod run_lock;
mod shrink;
mod ssh;
mod store;
mod test_cmd;
mod tls;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Finds consistency bugs in distributed systems.
///
/// Exit codes: 0 valid, 1 invalid (an anomaly was found), 2 unknown (no verdict: budget
/// ran out or too little happened), 3 error (bad input or a harness failure).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Test(Box<test_cmd::TestArgs>),
    Check(check_cmd::CheckArgs),
    Bench(Box<bench::BenchArgs>),
    Report(ReportArgs),
    Shrink(shrink::ShrinkArgs),
    Adapter(AdapterArgs),
    /// Remove what runs killed mid-way (SIGKILL) left behind on this machine.
    ///
    /// With --net netns: network namespaces named chaos-<run>-n<N>, and any process still
    /// inside them; with --hosts: the run's lock and ssh control sockets (what it left on
    /// the hosts is cleared by the next run that reaches them); with disk faults: the
    /// FUSE mounts of chaos-lazyfs whose process died (they normally go by themselves,
    /// through fusermount3's auto_unmount). Whatever belongs to live runs, or to other
    /// tools, is left alone. Runs clear namespaces and hosts themselves at start.
    ///
    /// With --store and --keep or --older-than: also prunes old runs from that store
    /// (each a folder with a test.json) and rebuilds its index. The run `latest` points
    /// at, and a run that is still writing its history, are never removed.
    ///
    /// Exit codes: 0 done (also when there was nothing to remove), 3 error.
    Clean(store::PruneArgs),
}

/// A client adapter over the built-in HTTP client (docs/client-protocol.md): reads the
/// handshake and operations as JSON lines on stdin, answers on stdout.
///
/// The reference adapter, and the yardstick of what the protocol costs: `--client-cmd
/// 'chaos-runner adapter'` against the built-in client adds only the pipes and the JSON.
///
/// Exit codes: 0 when its input ends, 3 on a line that breaks the protocol.
#[derive(clap::Args, Debug)]
struct AdapterArgs {
    /// The HTTP dialect the servers speak.
    #[arg(long, value_parser = ["raft-node", "seed", "etcd"], default_value = "raft-node")]
    api: String,
}

/// Rebuild a run's report.html and plots from its history.jsonl and results.json (and
/// the index of its store).
///
/// Exit codes: 0 written, 3 error (no such run folder, or a damaged record, named).
#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// The run folder, e.g. store/latest or store/register/20261126T142034.770Z.
    run_dir: std::path::PathBuf,
}

fn report(args: ReportArgs) -> anyhow::Result<u8> {
    use anyhow::Context;
    let dir = std::fs::canonicalize(&args.run_dir)
        .with_context(|| format!("no run folder at {}", args.run_dir.display()))?;
    let written = reports::build(&dir)?;
    crate::console::tell!("report: {}", written.report.display());
    // store/<name>/<run>: the index lives two levels up.
    if let Some(root) = dir.parent().and_then(|p| p.parent()) {
        if root.join("latest").exists() {
            let index = reports::index::build(root)?;
            crate::console::tell!("index:  {}", index.display());
        }
    }
    Ok(exit::VALID)
}

fn clean(args: store::PruneArgs) -> anyhow::Result<u8> {
    if let Some(pruned) = store::prune(&args)? {
        crate::console::tell!(
            "pruned {} of {} runs from {} ({} kept){}",
            pruned.removed.len(),
            pruned.removed.len() + pruned.kept,
            args.store.display(),
            pruned.kept,
            match &pruned.index {
                Some(i) => format!("; index: {}", i.display()),
                None => String::new(),
            }
        );
    }
    let removed = netns::clean_dead_runs()?;
    let mounts = cluster::disk::clean_dead_mounts()?;
    if removed.is_empty() && mounts.is_empty() {
        crate::console::tell!("nothing to clean: no namespace or disk layer of a dead run");
    }
    for name in removed {
        crate::console::tell!("removed namespace {name}");
    }
    for m in mounts {
        crate::console::tell!("unmounted the dead disk layer on {}", m.display());
    }
    Ok(exit::VALID)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Usage errors must not look like a verdict: clap's own code 2 means "unknown".
            let code = if e.use_stderr() {
                exit::ERROR
            } else {
                exit::VALID
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // A panic must not leave nodes behind, nor exit with Rust's 101, which is not in the
    // exit table: a panic of the main thread (or one a scoped worker hands it) is an
    // error, 3. Other threads' panics are theirs to report.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        cluster::kill_all_children();
        default_hook(info);
        if std::thread::current().name() == Some("main") {
            std::process::exit(i32::from(exit::ERROR));
        }
    }));
    let result = match cli.command {
        Command::Test(args) => test_cmd::run(*args),
        Command::Check(args) => check_cmd::run(args),
        Command::Bench(args) => bench::run(*args),
        Command::Report(args) => report(args),
        Command::Shrink(args) => shrink::run(args),
        Command::Adapter(args) => adapter(args),
        Command::Clean(args) => clean(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            crate::console::say!("chaos-runner: error: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn adapter(args: AdapterArgs) -> anyhow::Result<u8> {
    use workloads::client::Dialect;
    let dialect = match args.api.as_str() {
        "seed" => Dialect::Seed,
        "etcd" => Dialect::Etcd,
        _ => Dialect::RaftNode,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // On pipes (as the runner starts it) read and write them directly, woken by
        // epoll: tokio's stdin and stdout go through a blocking thread, a hand-off each
        // way on every operation.
        use std::os::fd::AsFd;
        let pipes = || -> std::io::Result<_> {
            let fd =
                |f: std::os::fd::BorrowedFd<'_>| f.try_clone_to_owned().map(std::fs::File::from);
            let input = tokio::net::unix::pipe::Receiver::from_file(fd(std::io::stdin().as_fd())?)?;
            let output = tokio::net::unix::pipe::Sender::from_file(fd(std::io::stdout().as_fd())?)?;
            Ok((input, output))
        };
        match pipes() {
            Ok((input, output)) => {
                let input = tokio::io::BufReader::new(input);
                workloads::adapter::serve::serve(dialect, input, output).await
            }
            Err(_) => {
                let input = tokio::io::BufReader::new(tokio::io::stdin());
                workloads::adapter::serve::serve(dialect, input, tokio::io::stdout()).await
            }
        }
    })?;
    Ok(exit::VALID)
}
