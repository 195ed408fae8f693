//! The simulated network: where nodes sit, how long a message takes between two of them,
//! and what happens to it on the way. Deterministic from the seed.
//!
//! Bird's eye view: nodes are placed in the scenario's regions by share; a message from one
//! to another is subject, in this order, to partitions, loss, the sender's upload queue,
//! transfer at the slower end's bandwidth, one-way latency drawn from the scenario's
//! distribution, reordering (extra delay) and duplication. [`Network::transmit`] says when
//! each copy arrives; the engine turns that into delivery events. Full nodes gossip over a
//! random topology built here too. Nothing here reads the wall clock.

use tessera_systems::workload::SeedStream;

use super::scenario::{LatencyModel, Network as NetworkSpec, PartitionSpec, Scenario};

fn ns(seconds: f64) -> u64 {
    // Scenario times are validated finite and non-negative; the cast saturates.
    (seconds * 1e9) as u64
}

/// One node's attachment to the network.
#[derive(Clone, Debug)]
struct Link {
    region: usize,
    upload_bps: f64,
    download_bps: f64,
    /// When the node's upload queue is next free.
    upload_free_at: u64,
    /// A slowed node's upload bandwidth is divided by this.
    slow: u64,
}

/// What became of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmission {
    /// Sender and receiver were on different sides of a partition.
    Partitioned,
    /// Lost on the way.
    Lost,
    /// Arrives at `at`, and once more at `duplicate_at` if the network duplicated it.
    Arrives {
        /// Arrival of the first copy.
        at: u64,
        /// Arrival of the duplicate, if any.
        duplicate_at: Option<u64>,
    },
}

/// The network model of one simulation.
#[derive(Debug)]
pub struct Network {
    spec: NetworkSpec,
    partitions: Vec<PartitionSpec>,
    links: Vec<Link>,
    stream: SeedStream,
}

impl Network {
    /// Places the scenario's nodes in its regions (the first ⌊share·n⌉ in region 0 and so on,
    /// then shuffled from the seed).
    pub fn new(scenario: &Scenario, seed: u64) -> Network {
        let mut stream = SeedStream::new("tessera sim network", seed);
        let nodes = scenario.node_count();
        let regions = &scenario.network.regions;
        let total_share: f64 = regions.iter().map(|r| r.share).sum();
        let mut placement: Vec<usize> = Vec::with_capacity(nodes as usize);
        let mut cumulative = 0.0;
        for (index, region) in regions.iter().enumerate() {
            cumulative += region.share / total_share;
            let upto = ((cumulative * f64::from(nodes)).round() as usize).min(nodes as usize);
            while placement.len() < upto {
                placement.push(index);
            }
        }
        while placement.len() < nodes as usize {
            placement.push(regions.len() - 1);
        }
        stream.shuffle(&mut placement);
        let links = placement
            .iter()
            .map(|region| Link {
                region: *region,
                upload_bps: regions[*region].upload_mbps * 1e6,
                download_bps: regions[*region].download_mbps * 1e6,
                upload_free_at: 0,
                slow: 1,
            })
            .collect();
        Network { spec: scenario.network.clone(), partitions: scenario.partitions.clone(), links, stream }
    }

    /// The region of each node.
    pub fn placement(&self) -> Vec<usize> {
        self.links.iter().map(|link| link.region).collect()
    }

    /// Gossip topology: each full node (`validators..nodes`) links to one validator and
    /// `degree − 1` other nodes. Returns each node's neighbours.
    pub fn gossip_topology(&mut self, validators: u32, degree: u32) -> Vec<Vec<u32>> {
        let nodes = self.links.len() as u32;
        let mut neighbours = vec![Vec::new(); nodes as usize];
        for full in validators..nodes {
            let degree = degree.min(nodes - 1);
            let mut picks = vec![self.stream.below(u64::from(validators)) as u32];
            let mut attempts = 0;
            while (picks.len() as u32) < degree && attempts < degree * 8 {
                attempts += 1;
                let other = self.stream.below(u64::from(nodes)) as u32;
                if other != full && !picks.contains(&other) {
                    picks.push(other);
                }
            }
            for other in picks {
                if !neighbours[full as usize].contains(&other) {
                    neighbours[full as usize].push(other);
                    neighbours[other as usize].push(full);
                }
            }
        }
        neighbours
    }

    /// Slows `node` by `factor` (its upload bandwidth; the engine also scales its processing).
    pub fn set_slow(&mut self, node: u32, factor: u64) {
        self.links[node as usize].slow = factor;
    }

    /// The slow-down factor of `node` (1: normal speed).
    pub fn slow(&self, node: u32) -> u64 {
        self.links[node as usize].slow
    }

    fn partitioned(&self, t: u64, from: u32, to: u32) -> bool {
        self.partitions.iter().any(|p| {
            t >= ns(p.start_s) && t < ns(p.end_s) && {
                let group = |node: u32| p.groups.iter().position(|g| g.contains(&node)).unwrap_or(0);
                group(from) != group(to)
            }
        })
    }

    fn uniform(&mut self) -> f64 {
        (self.stream.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// One-way latency from `from` to `to` under the scenario's distribution, nanoseconds.
    fn latency(&mut self, from: u32, to: u32) -> u64 {
        let n = &self.spec;
        let mean = n.latency_ms[self.links[from as usize].region][self.links[to as usize].region];
        let (model, jitter, shape, per_ms, offset) =
            (n.latency, n.jitter, n.pareto_shape, n.pareto_shape_per_ms, n.pareto_scale_offset_ms);
        let ms = match model {
            LatencyModel::Constant => mean,
            LatencyModel::Uniform => mean * (1.0 + jitter * (2.0 * self.uniform() - 1.0)),
            LatencyModel::Normal => {
                // Box–Muller with libm, so every machine draws the same numbers.
                let u1 = self.uniform().max(f64::MIN_POSITIVE);
                let u2 = self.uniform();
                let z = libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * std::f64::consts::PI * u2);
                mean * (1.0 + jitter * z)
            }
            LatencyModel::Pareto => {
                let u = self.uniform().max(f64::MIN_POSITIVE);
                let (alpha, scale) = match per_ms {
                    Some(k) => ((k * mean).max(f64::MIN_POSITIVE), (mean - offset).max(0.0)),
                    None => (shape, mean * (shape - 1.0) / shape),
                };
                scale / libm::pow(u, 1.0 / alpha)
            }
        };
        (ms.clamp(0.0, 600_000.0) * 1e6) as u64
    }

    /// Sends `bytes` from `from` to `to` at `now`: partition, loss, upload queueing, transfer
    /// at the slower of the two ends' bandwidth, latency, reordering and duplication.
    pub fn transmit(&mut self, now: u64, from: u32, to: u32, bytes: u64) -> Transmission {
        if self.partitioned(now, from, to) {
            return Transmission::Partitioned;
        }
        let (loss, duplicate, reorder) = (self.spec.loss, self.spec.duplicate, self.spec.reorder);
        if loss > 0.0 && self.uniform() < loss {
            return Transmission::Lost;
        }
        let sender = &self.links[from as usize];
        let up = sender.upload_bps / sender.slow as f64;
        let down = self.links[to as usize].download_bps;
        let bits = (bytes * 8) as f64;
        let depart = now.max(sender.upload_free_at);
        self.links[from as usize].upload_free_at = depart + (bits / up * 1e9) as u64;
        let transfer = (bits / up.min(down) * 1e9) as u64;
        let copies = if duplicate > 0.0 && self.uniform() < duplicate { 2 } else { 1 };
        let mut arrivals = [0u64; 2];
        for arrival in arrivals.iter_mut().take(copies) {
            let mut latency = self.latency(from, to);
            if reorder > 0.0 && self.uniform() < reorder {
                latency += (self.uniform() * latency as f64) as u64;
            }
            *arrival = depart + transfer + latency;
        }
        Transmission::Arrives { at: arrivals[0], duplicate_at: (copies == 2).then_some(arrivals[1]) }
    }
}
