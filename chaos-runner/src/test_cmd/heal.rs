//! Phase 3: heal everything, read every key once more, stop the nodes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use checker::record::{FaultDetails, FinalReads};
use tokio::time::Instant;
use workloads::runner::final_reads;

use super::start::Testbed;
use super::summary::Tail;
use crate::cluster::wait_for_leader;

/// Phase 3: heal every link, restart and resume every node, wait for a leader, read every
/// key once more (so lost writes show), close the history and stop the nodes.
pub(super) async fn heal_and_read(bed: &Testbed, tail: &mut Tail) -> Result<FinalReads> {
    if let Some(net) = &bed.env.net {
        net.heal();
    }
    let ids: Vec<u64> = bed.env.apis.iter().map(|(i, _)| *i).collect();
    {
        let mut c = bed.env.cluster.lock().await;
        for &i in &ids {
            c.resume(i);
            if !c.is_running(i) {
                c.start(i)?;
            }
        }
    }
    let healed = FaultDetails {
        nodes: ids,
        ..FaultDetails::default()
    };
    bed.recorder
        .nemesis(checker::record::FaultEdge::Heal, &healed);
    let recovered = {
        let mut c = bed.env.cluster.lock().await;
        wait_for_leader(&mut c, Duration::from_secs(30)).await
    };
    tail.mark("recovered");
    if let Err(e) = &recovered {
        bed.live
            .warn(format!("the cluster did not recover after healing: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    // Every key the workload used (the set workload opens new sets as it goes).
    let reads = bed.shared.generator.final_reads();
    let (ok, failed) = final_reads(&bed.shared, &reads, deadline).await;
    tail.mark("final reads");
    bed.shared.stop.store(true, Ordering::Relaxed);
    bed.recorder.finish().context("writing the history")?;
    {
        let mut c = bed.env.cluster.lock().await;
        tokio::task::block_in_place(|| c.stop_all());
    }
    tail.mark("nodes stopped");
    Ok(FinalReads { ok, failed })
}
