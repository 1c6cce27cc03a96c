//! The composites' own counts: a split's and a bandit's choices (and a bandit's rewards), a
//! shadow's mirroring and its agreement with the primary.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::Scrape;
use crate::composite::Composite;
use crate::composite::bandit::ArmCounts;
use crate::metrics::{Labels, counters, gauges};

/// `ferroserve_split_requests`, `_bandit_choices`, `_bandit_feedback`, `_bandit_reward`,
/// `_shadow_mirrored`, `_shadow_skipped`, `_shadow_comparisons`, `_shadow_failures` and
/// `_shadow_agreement_ratio`.
pub(super) fn encode(e: &mut DescriptorEncoder, scrape: &Scrape<'_>) -> fmt::Result {
    let composites: Vec<(&str, &Composite)> = scrape
        .observed
        .iter()
        .filter_map(|o| {
            Some((
                o.version.model_name.as_str(),
                o.version.executor.composite()?.as_ref(),
            ))
        })
        .collect();
    let splits = composites.iter().filter_map(|(m, c)| match c {
        Composite::Split(s) => Some((*m, s)),
        _ => None,
    });
    counters(
        e,
        "ferroserve_split_requests",
        "Requests a split composite sent to each variant.",
        splits.flat_map(|(m, s)| s.served().into_iter().map(move |(v, n)| (variant(m, v), n))),
    )?;

    let bandits: Vec<_> = composites
        .iter()
        .filter_map(|(m, c)| match c {
            Composite::Bandit(b) => Some((*m, b.arm_counts())),
            _ => None,
        })
        .collect();
    counters(
        e,
        "ferroserve_bandit_choices",
        "Requests a bandit composite sent to each variant (restored with its state file).",
        per_arm(&bandits, |a| a.chosen),
    )?;
    counters(
        e,
        "ferroserve_bandit_feedback",
        "Rewards a bandit composite received per variant.",
        per_arm(&bandits, |a| a.rewarded),
    )?;
    counters(
        e,
        "ferroserve_bandit_reward",
        "Sum of the rewards (each in [0, 1]) a bandit composite received per variant; \
         divided by the feedback count, the mean reward.",
        per_arm(&bandits, |a| a.reward_sum),
    )?;

    let shadows: Vec<_> = composites
        .iter()
        .filter_map(|(m, c)| match c {
            Composite::Shadow(s) => Some((*m, s.mirrored_and_skipped(), s.counts())),
            _ => None,
        })
        .collect();
    counters(
        e,
        "ferroserve_shadow_mirrored",
        "Requests a shadow composite mirrored to its shadows.",
        shadows
            .iter()
            .map(|(m, (mirrored, _), _)| (vec![("model", (*m).to_owned())], *mirrored)),
    )?;
    counters(
        e,
        "ferroserve_shadow_skipped",
        "Requests drawn for mirroring but skipped because max_in_flight mirrors were running.",
        shadows
            .iter()
            .map(|(m, (_, skipped), _)| (vec![("model", (*m).to_owned())], *skipped)),
    )?;
    let per_shadow =
        |m: &str, shadow: &str| vec![("model", m.to_owned()), ("shadow", shadow.to_owned())];
    counters(
        e,
        "ferroserve_shadow_comparisons",
        "Shadow answers compared with the primary's, by result (agree, disagree).",
        shadows.iter().flat_map(|(m, _, counts)| {
            counts.iter().flat_map(move |c| {
                [("agree", c.agreed), ("disagree", c.compared - c.agreed)]
                    .into_iter()
                    .map(move |(result, n)| {
                        let mut labels = per_shadow(m, &c.target);
                        labels.push(("result", result.to_owned()));
                        (labels, n)
                    })
            })
        }),
    )?;
    counters(
        e,
        "ferroserve_shadow_failures",
        "Mirrored requests a shadow failed.",
        shadows.iter().flat_map(|(m, _, counts)| {
            counts
                .iter()
                .map(move |c| (per_shadow(m, &c.target), c.failed))
        }),
    )?;
    gauges(
        e,
        "ferroserve_shadow_agreement_ratio",
        "Share of a shadow's compared answers that agreed with the primary's, since load.",
        false,
        shadows.iter().flat_map(|(m, _, counts)| {
            counts.iter().filter(|c| c.compared > 0).map(move |c| {
                (
                    per_shadow(m, &c.target),
                    c.agreed as f64 / c.compared as f64,
                )
            })
        }),
    )
}

/// The `model` and `variant` labels of a composite's variant.
fn variant(model: &str, variant: String) -> Labels {
    vec![("model", model.to_owned()), ("variant", variant)]
}

/// One sample per variant of every bandit, `pick`ed from its counts.
fn per_arm<'a, V>(
    bandits: &'a [(&str, Vec<ArmCounts>)],
    pick: impl Fn(&ArmCounts) -> V + Copy + 'a,
) -> impl Iterator<Item = (Labels, V)> + 'a {
    bandits.iter().flat_map(move |(m, arms)| {
        arms.iter()
            .map(move |a| (variant(m, a.target.clone()), pick(a)))
    })
}
