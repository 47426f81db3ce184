//! The end of the story: each payment as the gateway left it beside what the merchant's app
//! knows, and the verdict the exit code carries. Pure, so a mismatch is tested without running
//! anything.

use payments_consumer::payments::Status;

use super::journal::Tallies;
use super::merchant::PaymentState;
use super::script::Payment;
use super::show::Paint;

/// One payment at the end.
pub struct Row<'a> {
    pub payment: &'a Payment,
    /// The state the gateway gave it last.
    pub gateway: Status,
    /// What the merchant knows, or `None` if it never heard of the payment.
    pub merchant: Option<PaymentState>,
}

/// How the merchant's view of one payment differs from the gateway's; empty when it matches.
/// Besides the status, the business effects must follow it: the membership is active exactly
/// when the payment is captured, and a failed payment raised exactly one alert.
pub fn differences(row: &Row<'_>) -> Vec<String> {
    let id = row.payment.id;
    let Some(merchant) = &row.merchant else {
        return vec![format!(
            "{id}: the gateway says {}, the merchant never heard of it",
            row.gateway.as_str()
        )];
    };
    let mut found = Vec::new();
    if merchant.status != row.gateway.as_str() {
        found.push(format!(
            "{id}: the gateway says {}, the merchant says {}",
            row.gateway.as_str(),
            merchant.status
        ));
    }
    let should_be_active = row.gateway == Status::Captured;
    if (merchant.membership_active == Some(true)) != should_be_active {
        found.push(format!(
            "{id}: the membership should {}be active",
            if should_be_active { "" } else { "not " }
        ));
    }
    let alerts = i64::from(row.gateway == Status::Failed);
    if merchant.alerts != alerts {
        found.push(format!(
            "{id}: {} alert(s) raised, {alerts} expected",
            merchant.alerts
        ));
    }
    found
}

/// The demo's result: `Ok` only if every payment matches. `hookd demo` exits 1 on `Err`.
pub fn verdict(rows: &[Row<'_>]) -> anyhow::Result<()> {
    let found: Vec<String> = rows.iter().flat_map(differences).collect();
    if found.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "the merchant's state differs from the gateway's:\n  {}",
            found.join("\n  ")
        )
    }
}

/// The final table, one line per payment, aligned.
pub fn table(rows: &[Row<'_>], paint: Paint) -> Vec<String> {
    let header = format!(
        "  {:<12} {:>10}  {:<11} {:<11} {:<11} {:<6}",
        "payment", "amount", "gateway", "merchant", "membership", "alerts"
    );
    let mut lines = vec![paint.bold(header.trim_end())];
    for row in rows {
        let (status, membership, alerts) = match &row.merchant {
            Some(m) => (
                m.status.as_str(),
                match m.membership_active {
                    Some(true) => "active",
                    Some(false) => "ended",
                    None => "-",
                },
                m.alerts.to_string(),
            ),
            None => ("unknown", "-", "-".to_string()),
        };
        let mark = if differences(row).is_empty() {
            paint.green("✓ same")
        } else {
            paint.red("✗ differs")
        };
        lines.push(format!(
            "  {:<12} {:>10}  {:<11} {:<11} {:<11} {:<6} {mark}",
            row.payment.id,
            row.payment.amount_text(),
            row.gateway.as_str(),
            status,
            membership,
            alerts,
        ));
    }
    lines
}

/// The counts, in sentences.
pub fn summary(t: &Tallies) -> Vec<String> {
    vec![
        format!(
            "gateway   {} posted, {} resent on purpose; {} sent straight to the merchant",
            count(t.posted, "event", "events"),
            t.resent,
            count(t.forged, "forgery", "forgeries")
        ),
        format!(
            "hookd     {}; {} while the merchant was down, {} by retries",
            count(t.delivered, "delivery", "deliveries"),
            count(t.failed_attempts, "failed attempt", "failed attempts"),
            count(t.recovered, "message delivered", "messages delivered")
        ),
        format!(
            "merchant  {} verified and applied, {} ignored, {} ignored, {} refused",
            t.applied,
            count(t.duplicates, "duplicate", "duplicates"),
            count(t.stale, "stale event", "stale events"),
            count(t.rejected, "forgery", "forgeries")
        ),
    ]
}

/// `1 delivery`, `2 deliveries`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::script::{ADA, LINUS, PAYMENTS};

    fn merchant(status: &str, membership_active: Option<bool>, alerts: i64) -> PaymentState {
        PaymentState {
            status: status.into(),
            updated_at_event: "2027-01-15T08:00:00Z".into(),
            membership_active,
            alerts,
        }
    }

    #[test]
    fn matching_states_pass() {
        let rows = [
            Row {
                payment: &PAYMENTS[ADA],
                gateway: Status::Captured,
                merchant: Some(merchant("captured", Some(true), 0)),
            },
            Row {
                payment: &PAYMENTS[LINUS],
                gateway: Status::Failed,
                merchant: Some(merchant("failed", None, 1)),
            },
        ];
        assert!(verdict(&rows).is_ok());
        let table = table(&rows, Paint::plain());
        assert_eq!(table.len(), 3);
        assert!(table[1].contains("pay_ada") && table[1].ends_with("✓ same"));
    }

    #[test]
    fn a_mismatch_fails_and_says_what_differs() {
        let rows = [Row {
            payment: &PAYMENTS[ADA],
            gateway: Status::Captured,
            merchant: Some(merchant("authorized", None, 0)),
        }];
        let error = verdict(&rows).expect_err("a mismatch").to_string();
        assert!(
            error.contains("pay_ada: the gateway says captured, the merchant says authorized"),
            "{error}"
        );
        assert!(error.contains("membership should be active"), "{error}");
        assert!(table(&rows, Paint::plain())[1].ends_with("✗ differs"));
    }

    #[test]
    fn the_summary_counts_in_english() {
        let tallies = Tallies {
            posted: 21,
            resent: 1,
            forged: 1,
            delivered: 22,
            failed_attempts: 1,
            recovered: 5,
            applied: 19,
            duplicates: 1,
            stale: 2,
            rejected: 1,
        };
        let lines = summary(&tallies);
        assert!(lines[0].contains("21 events posted") && lines[0].contains("1 forgery sent"));
        assert!(lines[1].contains("22 deliveries; 1 failed attempt while"));
        assert!(lines[2].contains("1 duplicate ignored, 2 stale events ignored, 1 forgery refused"));
    }

    #[test]
    fn effects_must_follow_the_status() {
        let doubled_alert = Row {
            payment: &PAYMENTS[LINUS],
            gateway: Status::Failed,
            merchant: Some(merchant("failed", None, 2)),
        };
        assert_eq!(
            differences(&doubled_alert),
            ["pay_linus: 2 alert(s) raised, 1 expected"]
        );
        let unknown = Row {
            payment: &PAYMENTS[ADA],
            gateway: Status::Created,
            merchant: None,
        };
        assert_eq!(
            differences(&unknown),
            ["pay_ada: the gateway says created, the merchant never heard of it"]
        );
        let ended = Row {
            payment: &PAYMENTS[ADA],
            gateway: Status::Refunded,
            merchant: Some(merchant("refunded", Some(false), 0)),
        };
        assert!(differences(&ended).is_empty());
    }
}
