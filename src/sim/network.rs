//! The simulated network: per-message delay, loss, duplication and reordering, and
//! partitions that start and heal on a schedule. Deterministic from the seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use tessera_components::ConsensusMessage;
use tessera_systems::workload::SeedStream;

/// Link behaviour.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Least one-way delay.
    pub delay_min_ns: u64,
    /// Greatest one-way delay (uniform in between, so messages reorder).
    pub delay_max_ns: u64,
    /// Messages lost, per million.
    pub loss_ppm: u64,
    /// Messages delivered twice, per million.
    pub duplicate_ppm: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            delay_min_ns: 1_000_000,
            delay_max_ns: 30_000_000,
            loss_ppm: 20_000,
            duplicate_ppm: 10_000,
        }
    }
}

/// A partition: from `start_ns` to `end_ns`, messages between different groups are lost.
#[derive(Clone, Debug)]
pub struct Partition {
    /// When it starts.
    pub start_ns: u64,
    /// When it heals.
    pub end_ns: u64,
    /// Group of each validator.
    pub group_of: Vec<u8>,
}

/// The network.
#[derive(Debug)]
pub struct Network {
    config: NetworkConfig,
    stream: SeedStream,
    queue: BinaryHeap<Reverse<(u64, u64, u32, u32)>>,
    payloads: std::collections::BTreeMap<u64, ConsensusMessage>,
    sequence: u64,
    partitions: Vec<Partition>,
    /// Messages lost so far (loss and partitions).
    pub lost: u64,
}

impl Network {
    /// A network for `nodes` validators.
    pub fn new(config: NetworkConfig, seed: u64, nodes: usize) -> Network {
        let _ = nodes;
        Network {
            config,
            stream: SeedStream::new("tessera sim network", seed),
            queue: BinaryHeap::new(),
            payloads: std::collections::BTreeMap::new(),
            sequence: 0,
            partitions: Vec::new(),
            lost: 0,
        }
    }

    /// Schedules a partition.
    pub fn add_partition(&mut self, partition: Partition) {
        self.partitions.push(partition);
    }

    fn partitioned(&self, now_ns: u64, from: u32, to: u32) -> bool {
        self.partitions.iter().any(|p| {
            now_ns >= p.start_ns
                && now_ns < p.end_ns
                && p.group_of.get(from as usize) != p.group_of.get(to as usize)
        })
    }

    /// Sends `message` from `from` to `to` at `now_ns`.
    pub fn send(&mut self, now_ns: u64, from: u32, to: u32, message: ConsensusMessage) {
        if self.partitioned(now_ns, from, to) || self.stream.below(1_000_000) < self.config.loss_ppm {
            self.lost += 1;
            return;
        }
        let copies = if self.stream.below(1_000_000) < self.config.duplicate_ppm { 2 } else { 1 };
        for _ in 0..copies {
            let spread = self.config.delay_max_ns.saturating_sub(self.config.delay_min_ns) + 1;
            let at = now_ns + self.config.delay_min_ns + self.stream.below(spread);
            self.sequence += 1;
            self.queue.push(Reverse((at, self.sequence, to, from)));
            self.payloads.insert(self.sequence, message.clone());
        }
    }

    /// Takes every message due by `now_ns`, in delivery order: `(to, from, message)`.
    pub fn due(&mut self, now_ns: u64) -> Vec<(u32, u32, ConsensusMessage)> {
        let mut out = Vec::new();
        while let Some(Reverse((at, sequence, to, from))) = self.queue.peek().copied() {
            if at > now_ns {
                break;
            }
            self.queue.pop();
            let message = self.payloads.remove(&sequence).expect("payload stored with its entry");
            // A partition that started in flight also swallows the message.
            if self.partitioned(now_ns, from, to) {
                self.lost += 1;
                continue;
            }
            out.push((to, from, message));
        }
        out
    }
}
