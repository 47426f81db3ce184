//! `hookd demo --fast` through the real binary: the whole story in a few seconds.

use std::time::Duration;

#[tokio::test]
async fn the_demo_tells_the_outage_the_retries_and_the_final_states_and_exits_0() {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["demo", "--fast"])
        .env_remove("HOOKD_DEMO_FAST")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the fast demo ends within 90 s")
        .expect("run hookd demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    for expected in [
        // Deliveries verified by the merchant, and a forgery refused.
        "verified · now captured · membership activated",
        "refused with 401",
        // The outage, hookd's retries, the recovery.
        "the server is down",
        "attempt 1: connection refused · retrying in",
        "the server is back up",
        "delivered by retries",
        // Duplicates and stale events ignored.
        "duplicate webhook-id: already handled, ignored",
        "stale: older than the captured it knows, ignored",
        // The final states, and the verdict.
        "Final states",
        "pay_grace    120.00 USD  refunded    refunded    ended",
        "pay_ken       75.00 USD  authorized  authorized",
        "every payment ends in the state the gateway gave it",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from\n{stdout}"
        );
    }
    assert!(!stdout.contains("differs"), "{stdout}");
    // Not a terminal: plain text.
    assert!(!stdout.contains('\x1b'), "{stdout}");
    // The temporary directory is gone.
    let dir = stdout
        .split("data in ")
        .nth(1)
        .and_then(|rest| rest.split("/hookd.db").next())
        .expect("the data directory is named");
    assert!(!std::path::Path::new(dir).exists(), "{dir} left behind");
}
