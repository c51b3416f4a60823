//! Revoked tokens: the bounded set, the fall-back to the bucket when the set cannot vouch (and
//! failing closed when the bucket cannot be asked), and the sockets a revocation closes.

use dyschat_protocol::ErrorCode;
use dyschat_runtime::config::DEV_AUTH_SECRET;
use dyschat_runtime::token;

use crate::core::revocation::{RevokedSet, Verdict};
use crate::socket::{SocketHandle, CLOSE_POLICY};
use crate::testing::{fixture, json};

const NOW: i64 = 1_000_000;

#[test]
fn the_set_is_bounded_and_lets_the_soonest_expiry_go_first() {
    let mut set = RevokedSet::new(3);
    set.set_current(true);
    for (id, exp) in [("a", NOW + 100), ("b", NOW + 300), ("c", NOW + 200)] {
        set.insert(id, exp, NOW);
    }
    assert_eq!(set.len(), 3);
    assert_eq!(set.verdict("zz", NOW), Verdict::Valid);

    // Full: the newcomer expires later than "a", so "a" goes, and until "a" would have expired
    // the set cannot vouch for a token it does not hold.
    set.insert("d", NOW + 400, NOW);
    assert_eq!(set.len(), 3);
    assert_eq!(set.verdict("d", NOW), Verdict::Revoked);
    assert_eq!(set.verdict("a", NOW), Verdict::Unknown);
    assert_eq!(set.verdict("zz", NOW + 99), Verdict::Unknown);
    assert_eq!(set.verdict("zz", NOW + 100), Verdict::Valid);

    // A newcomer expiring before everything held is the one let go.
    set.insert("e", NOW + 150, NOW);
    assert_eq!(set.len(), 3);
    assert_eq!(set.verdict("e", NOW + 120), Verdict::Unknown);
    assert_eq!(set.verdict("b", NOW + 120), Verdict::Revoked);
    assert_eq!(set.verdict("zz", NOW + 150), Verdict::Valid);

    // Expired revocations leave on the next insert; an expired one is not held at all.
    set.insert("f", NOW + 1_000, NOW + 250);
    assert_eq!(set.len(), 3, "c (expired) left, f came in: {set:?}");
    assert_eq!(set.verdict("c", NOW + 250), Verdict::Valid);
    set.insert("g", NOW, NOW + 250);
    assert_eq!(set.verdict("g", NOW + 250), Verdict::Valid);

    // Many more than the bound never grow it.
    for i in 0..1_000 {
        set.insert(&format!("x{i}"), NOW + 2_000 + i, NOW + 250);
    }
    assert_eq!(set.len(), 3);
}

#[test]
fn a_set_that_has_not_caught_up_vouches_for_nothing_it_does_not_hold() {
    let mut set = RevokedSet::new(10);
    set.insert("a", NOW + 100, NOW);
    assert_eq!(set.verdict("a", NOW), Verdict::Revoked);
    assert_eq!(set.verdict("b", NOW), Verdict::Unknown);
    set.set_current(true);
    assert_eq!(set.verdict("b", NOW), Verdict::Valid);
    set.set_current(false);
    assert_eq!(set.verdict("b", NOW), Verdict::Unknown);
}

#[tokio::test]
async fn a_token_the_set_cannot_vouch_for_is_looked_up_and_refused_if_the_bucket_is_away() {
    let f = fixture();
    let revocations = &f.core.revocations;
    // Not caught up: the bucket is asked.
    assert!(!revocations.check("t1", NOW + 60, NOW).await.unwrap());
    assert_eq!(f.revoked.calls(), 1);
    f.revoked.revoke("t2");
    assert!(revocations.check("t2", NOW + 60, NOW).await.unwrap());
    // What the bucket said is held from then on.
    assert!(revocations.check("t2", NOW + 60, NOW).await.unwrap());
    assert_eq!(f.revoked.calls(), 2);

    f.revoked.fail(true);
    let err = revocations.check("t3", NOW + 60, NOW).await.unwrap_err();
    assert_eq!(
        dyschat_protocol::ApiError::from(err).code,
        ErrorCode::Unavailable,
        "fails closed"
    );
    // Caught up: no request at all.
    revocations.set_current(true);
    assert!(!revocations.check("t3", NOW + 60, NOW).await.unwrap());
    assert!(revocations.check("t2", NOW + 60, NOW).await.unwrap());
    assert_eq!(f.revoked.calls(), 3);
}

#[tokio::test]
async fn authenticate_refuses_a_revoked_token_and_only_that_one() {
    let f = fixture();
    f.core.revocations.set_current(true);
    let now = chrono::Utc::now().timestamp();
    let (first, claims) = token::issue(DEV_AUTH_SECRET, "u1", "alice", now, 3600).unwrap();
    let (second, _) = token::issue(DEV_AUTH_SECRET, "u1", "alice", now, 3600).unwrap();
    let user = f.core.authenticate(&first).await.unwrap();
    assert_eq!(Some(&user.token_id), claims.jti.as_ref());

    f.core.revocations.revoked(&user.token_id, claims.exp, now);
    let err = dyschat_protocol::ApiError::from(f.core.authenticate(&first).await.unwrap_err());
    assert_eq!(
        (err.code, err.message.as_str()),
        (ErrorCode::Unauthorized, "token revoked")
    );
    assert_eq!(f.core.authenticate(&second).await.unwrap().user_id, "u1");
    assert_eq!(f.revoked.calls(), 0, "the set vouched for both");
}

#[tokio::test]
async fn a_revocation_closes_the_sockets_of_that_token_with_1008() {
    let f = fixture();
    let revocations = &f.core.revocations;
    let (a, mut rx_a) = SocketHandle::new("u1".into(), 8);
    let (b, _rx_b) = SocketHandle::new("u1".into(), 8);
    let attached_a = revocations.attach("t1", a.clone());
    let _attached_b = revocations.attach("t2", b.clone());
    assert_eq!(revocations.attached(), 2);

    revocations.revoked("t1", NOW + 3600, NOW);
    assert_eq!(a.close_code(), Some(CLOSE_POLICY));
    let frame = json(&rx_a.recv().await.unwrap());
    assert_eq!(
        (frame["code"].as_str(), frame["message"].as_str()),
        (Some("unauthorized"), Some("token revoked"))
    );
    assert_eq!(b.close_code(), None, "another token of the same user");

    // A socket listed after its token was revoked (it raced the revocation) closes at once.
    let (late, _rx) = SocketHandle::new("u1".into(), 8);
    let _attached_late = revocations.attach("t1", late.clone());
    assert_eq!(late.close_code(), Some(CLOSE_POLICY));

    drop(attached_a);
    assert_eq!(revocations.attached(), 2);
}
