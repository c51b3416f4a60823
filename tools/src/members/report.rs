//! The members scenario's lines of the printed table and its targets.

use super::Members;

/// The targets: the big room's median cost at most twice the small room's.
pub fn targets(m: &Members) -> Vec<crate::report::Target> {
    [
        ("join", &m.join),
        ("leave", &m.leave),
        ("membership check", &m.check),
        ("send", &m.send),
    ]
    .into_iter()
    .map(|(op, c)| crate::report::Target {
        name: format!(
            "{op} in a {}-member room / in a {}-member room, p50",
            m.big_members, m.small_members
        ),
        value: c.p50_ratio,
        unit: "ratio".into(),
        target: "<= 2".into(),
        met: c.p50_ratio <= 2.0,
    })
    .collect()
}

/// The scenario's lines of the printed table.
pub fn lines(m: &Members) -> Vec<String> {
    let mut out = vec![format!(
        "members: a {}-member room against a {}-member room, {} samples each; filled at {:.0} joins/s; {} member sockets connected, each received every message",
        m.big_members, m.small_members, m.samples, m.fill_joins_per_sec, m.connected_sockets
    )];
    for (op, c) in [
        ("join", &m.join),
        ("leave", &m.leave),
        ("check", &m.check),
        ("send", &m.send),
        ("page", &m.page),
    ] {
        out.push(format!(
            "  {op:<6} big   {}\n         small {}\n         ratio p50 {:.2} | p99 {:.2}",
            c.big.row(),
            c.small.row(),
            c.p50_ratio,
            c.p99_ratio
        ));
    }
    out.push(format!(
        "  page-through: big {} pages in {:.2}s ({:.1} ms/page), small {} page in at most {:.1} ms",
        m.page_through_big.pages,
        m.page_through_big.total_secs,
        m.page_through_big.total_secs * 1000.0 / m.page_through_big.pages.max(1) as f64,
        m.page_through_small.pages,
        m.page_through_small.total_secs * 1000.0
    ));
    out
}
