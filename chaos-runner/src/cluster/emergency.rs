//! The emergency path, for Ctrl-C, SIGTERM and the panic hook, which cannot wait for a
//! run to unwind: every node killed, then what the nodes stood on (namespaces, disk
//! layers) removed. It sits above `process` and `disk` so that neither needs the other.

/// SIGKILLs every child of every live run, removes the network namespaces of netns mode
/// and detaches the disk layers this process mounted. Safe to call from anywhere.
pub fn kill_all_children() {
    super::process::kill_live_groups();
    crate::netns::remove_live();
    super::disk::unmount_live();
}

/// On Ctrl-C or SIGTERM, kills every node and exits with the error code.
pub fn die_with_children_on_interrupt() {
    tokio::spawn(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        crate::console::say!("\ninterrupted: stopping every node");
        kill_all_children();
        std::process::exit(crate::exit::ERROR as i32);
    });
}
