//! The [`Plugin`] trait every subsystem implements.

use bevy_ecs::prelude::*;

/// A subsystem: inserts its resources and adds its systems to its set.
pub trait Plugin {
    /// Adds this subsystem to `world` and `schedule`.
    fn build(&self, world: &mut World, schedule: &mut Schedule);
}
