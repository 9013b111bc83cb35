//! Every change of a run accounted for, on top of the comparison of the
//! current state with the source.
//!
//! The comparison alone can pass while changes were lost: a run whose
//! captured changes never loaded still "verified" when every key they
//! touched had been deleted again by the end. So a run also counts, for
//! the changes committed between its first and last WAL marker:
//! - captured = produced (the CDC stage saw every change the producer made);
//! - the changelog holds each of them once: its rows with a commit LSN in
//!   that window are all distinct in (commit LSN, LSN, op), counted in the
//!   warehouse itself, not by the sink's own meters;
//! - changelog rows + dead letters (the CDC stage's by rule, the sink's
//!   undecodable records) = captured.
//!
//! [`account`] decides, purely; [`changelog_between`] counts.

use serde::Serialize;

use crate::RunError;

/// The counts and what they say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// True only when every change is accounted for, once.
    pub ok: bool,
    #[serde(flatten)]
    pub counted: Counted,
    /// What does not add up, in words.
    pub problems: Vec<String>,
}

/// The counts the run took (the stages' since its start, the warehouse's
/// within its WAL window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counted {
    pub produced: u64,
    pub captured: u64,
    pub rejected: u64,
    pub sink_dead_lettered: u64,
    /// Changelog rows committed within the run.
    pub changelog_rows: u64,
    /// Of those, distinct `(commit LSN, LSN, op)`.
    pub changelog_distinct: u64,
}

/// Whether every change of the run is in the changelog once or dead-lettered.
pub fn account(c: Counted) -> Accounting {
    let mut problems = Vec::new();
    if c.captured != c.produced {
        problems.push(format!(
            "the CDC stage captured {} changes, the producer made {}",
            c.captured, c.produced
        ));
    }
    if c.changelog_rows != c.changelog_distinct {
        problems.push(format!(
            "{} changelog rows repeat a change already there",
            c.changelog_rows.saturating_sub(c.changelog_distinct)
        ));
    }
    let dead = c.rejected + c.sink_dead_lettered;
    if c.changelog_distinct + dead != c.captured {
        problems.push(format!(
            "{} changes captured, but {} are in the changelog and {dead} dead-lettered: {} unaccounted for",
            c.captured,
            c.changelog_distinct,
            c.captured as i128 - (c.changelog_distinct + dead) as i128
        ));
    }
    Accounting {
        ok: problems.is_empty(),
        counted: c,
        problems,
    }
}

/// Rows of the changelog `view` committed after `after` and before
/// `before` (commit LSNs), and how many distinct changes they are.
pub async fn changelog_between(
    sf: &snowflake::Client,
    view: &str,
    after: pgoutput::Lsn,
    before: pgoutput::Lsn,
) -> Result<(u64, u64), RunError> {
    let within = format!(
        "FROM {view} WHERE \"_COMMIT_LSN\" > CAST(? AS NUMBER(38,0)) AND \"_COMMIT_LSN\" < CAST(? AS NUMBER(38,0))"
    );
    let binds = [
        snowflake::Bind::Text(after.0.to_string()),
        snowflake::Bind::Text(before.0.to_string()),
    ];
    let count = |sql: String| {
        let binds = binds.clone();
        async move {
            let r = sf.query(&sql, &binds).await?;
            Ok::<u64, RunError>(r.get(0, "N").and_then(|n| n.parse().ok()).unwrap_or(0))
        }
    };
    let rows = count(format!("SELECT COUNT(*) AS N {within}")).await?;
    let distinct = count(format!(
        "SELECT COUNT(*) AS N FROM (SELECT \"_COMMIT_LSN\", \"_LSN\", \"_OP\" {within} GROUP BY 1, 2, 3)"
    ))
    .await?;
    Ok((rows, distinct))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted() -> Counted {
        Counted {
            produced: 1000,
            captured: 1000,
            rejected: 10,
            sink_dead_lettered: 2,
            changelog_rows: 988,
            changelog_distinct: 988,
        }
    }

    #[test]
    fn every_change_once_or_dead_lettered_adds_up() {
        let a = account(counted());
        assert!(a.ok, "{a:?}");
        assert!(a.problems.is_empty());
    }

    #[test]
    fn a_run_that_loaded_nothing_does_not_add_up_whatever_the_current_state_says() {
        let a = account(Counted {
            changelog_rows: 0,
            changelog_distinct: 0,
            ..counted()
        });
        assert!(!a.ok);
        assert_eq!(
            a.problems,
            ["1000 changes captured, but 0 are in the changelog and 12 dead-lettered: 988 unaccounted for"]
        );
    }

    #[test]
    fn duplicates_and_missed_captures_are_named() {
        let a = account(Counted {
            captured: 990,
            changelog_rows: 990,
            changelog_distinct: 978,
            ..counted()
        });
        assert_eq!(
            a.problems,
            [
                "the CDC stage captured 990 changes, the producer made 1000",
                "12 changelog rows repeat a change already there",
            ]
        );
    }
}
