//! Where the search service keeps its place in the messages stream: one durable consumer per
//! instance (each instance holds an index of its own), named here once.

/// The durable pull consumer of search instance `instance` on
/// [`crate::layout::MESSAGES_STREAM`] (`search-<instance>`; the instance is a checked id).
pub fn consumer(instance: &str) -> String {
    format!("{CONSUMER_PREFIX}{instance}")
}

/// What every search instance's consumer name starts with (its NATS permissions name these).
pub const CONSUMER_PREFIX: &str = "search-";

/// The name of the index's commit payload field holding the highest stream sequence applied.
pub const APPLIED_KEY: &str = "applied";

#[cfg(test)]
mod tests {
    #[test]
    fn each_instance_has_its_own_consumer() {
        assert_eq!(super::consumer("0"), "search-0");
        assert_ne!(super::consumer("a"), super::consumer("b"));
    }
}
