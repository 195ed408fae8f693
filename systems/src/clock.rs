//! Time, as the shell says it is.

use bevy_ecs::resource::Resource;

/// The current time in nanoseconds on the driver's clock: wall time in a real node, virtual
/// time in the simulator, a counter in tests. Written by the shell before each tick; systems
/// never read a clock of their own.
#[derive(Clone, Copy, Debug, Default, Resource)]
pub struct Clock {
    /// Nanoseconds since the driver's epoch.
    pub now_ns: u64,
}
