//! The human rendering of a [`Checklist`]: one line per step with ✓ / ✗ / –, the evidence under it,
//! the first broken link marked, and its fix. (JSON is the checklist's serde form.)

use std::fmt::Write;

use super::{Checklist, StepStatus};

/// Renders the checklist; `color` adds ANSI colours (green pass, red fail, dim skip).
///
/// ```
/// use netcheck::diagnose::{Checklist, Step, StepStatus, render};
/// let steps = vec![Step::new("service", StepStatus::Fail, "no Service named web in namespace shop")];
/// let checklist = Checklist::from_steps("shop", "web", false, steps);
/// assert_eq!(checklist.first_broken.as_deref(), Some("service"));
/// assert!(render::human(&checklist, false).contains("← first broken link"));
/// ```
pub fn human(checklist: &Checklist, color: bool) -> String {
    let paint = |code: &str, text: &str| if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() };
    let mut out = String::new();
    let _ = writeln!(out, "netcheck diagnose service/{} -n {}", checklist.service, checklist.namespace);
    let _ = writeln!(out);
    let width = checklist.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
    for step in &checklist.steps {
        let first = checklist.first_broken.as_deref() == Some(step.id.as_str());
        let mark = match step.status {
            StepStatus::Pass => paint("32", step.status.mark()),
            StepStatus::Fail => paint("31;1", step.status.mark()),
            StepStatus::Skip => paint("2", step.status.mark()),
        };
        let tail = if first { paint("31;1", "   ← first broken link") } else { String::new() };
        let summary = if step.status == StepStatus::Skip { paint("2", &step.summary) } else { step.summary.clone() };
        let _ = writeln!(out, "  {mark} {:<width$}  {summary}{tail}", step.id);
        if step.status == StepStatus::Skip {
            continue;
        }
        for line in &step.evidence {
            let _ = writeln!(out, "    {:<width$}  · {line}", "");
        }
        if let Some(fix) = &step.fix {
            let _ = writeln!(out, "    {:<width$}  {} {fix}", "", paint("33", "→ fix:"));
        }
    }
    let _ = writeln!(out);
    match &checklist.first_broken {
        Some(id) => {
            let _ = writeln!(out, "{}", paint("31;1", &format!("The first broken link is `{id}`.")));
        }
        None if checklist.read_only => {
            let _ = writeln!(
                out,
                "{}",
                paint("32", "No broken link in the read-only steps (--read-only: nothing was probed).")
            );
        }
        None => {
            let _ = writeln!(out, "{}", paint("32", "No broken link: every step passed or did not apply."));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::{DNS, SELECTOR, SERVICE, Step};

    #[test]
    fn the_first_broken_link_is_marked_with_its_evidence_and_fix() {
        let steps = vec![
            Step::new(SERVICE, StepStatus::Pass, "service/web: ClusterIP 10.96.0.7, ports 80→8080/TCP"),
            Step::new(SELECTOR, StepStatus::Fail, "selector app=wbe matches no running pod in shop")
                .with_evidence(["nearest pod web-1: has app=web, the selector wants app=wbe".to_string()])
                .with_fix("make them agree"),
        ];
        let text = human(&Checklist::from_steps("shop", "web", false, steps), false);
        let expected_head = "\
netcheck diagnose service/web -n shop

  ✓ service        service/web: ClusterIP 10.96.0.7, ports 80→8080/TCP
  ✗ selector       selector app=wbe matches no running pod in shop   ← first broken link
                   · nearest pod web-1: has app=web, the selector wants app=wbe
                   → fix: make them agree
  – pods-ready     not checked: the selector link is broken
";
        assert!(text.starts_with(expected_head), "{text}");
        assert!(text.trim_end().ends_with("The first broken link is `selector`."), "{text}");
        assert!(!text.contains('\x1b'));
        let colored =
            human(&Checklist::from_steps("shop", "web", false, vec![Step::new(DNS, StepStatus::Pass, "ok")]), true);
        assert!(colored.contains("\x1b[32m✓\x1b[0m"));
    }
}
