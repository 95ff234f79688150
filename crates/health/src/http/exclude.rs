//! `?exclude=NAME` (repeatable) on the scope endpoints, as the Kubernetes API server has it: the
//! answer ignores the named components and says so; a name that matches no component in the
//! scope is listed as not excluded, never silently accepted.

use std::collections::BTreeMap;

use crate::Report;

/// Why a name given to `exclude` was not excluded.
pub(crate) const NOT_IN_SCOPE: &str = "not in this scope";
/// Why a name given to `exclude` was not excluded.
pub(crate) const NO_SUCH_COMPONENT: &str = "no such component";

/// What `?exclude=` did to an answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Exclusions {
    /// Components left out of the answer, sorted.
    pub(crate) excluded: Vec<String>,
    /// Names that matched no component of the scope, with why.
    pub(crate) not_excluded: BTreeMap<String, &'static str>,
}

/// The names given as `exclude` in a query string, decoded; `None` when there are none, so
/// that the common probe without a query takes the cached path.
pub(crate) fn names(query: Option<&str>) -> Option<Vec<String>> {
    let query = query?;
    // A cheap test first: most queries a probe sends (if any) have nothing to exclude.
    if !query.contains("exclude") {
        return None;
    }
    let names: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == "exclude")
        .map(|(_, value)| value.into_owned())
        .collect();
    (!names.is_empty()).then_some(names)
}

/// The report without the named components, re-aggregated. `known` says whether a name is a
/// component at all (of any scope), to tell "not in this scope" from "no such component".
pub(crate) fn apply(
    report: Report,
    names: Vec<String>,
    known: impl Fn(&str) -> bool,
) -> (Report, Exclusions) {
    let scope = report.scope;
    let mut components = report.components;
    let mut exclusions = Exclusions::default();
    for name in names {
        if components.remove(&name).is_some() {
            exclusions.excluded.push(name);
        } else if !exclusions.excluded.contains(&name) {
            let why = if known(&name) {
                NOT_IN_SCOPE
            } else {
                NO_SUCH_COMPONENT
            };
            exclusions.not_excluded.insert(name, why);
        }
    }
    exclusions.excluded.sort();
    (Report::for_scope(scope, components), exclusions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exclude_parameters_are_taken_decoded_and_repeated() {
        assert_eq!(names(None), None);
        assert_eq!(names(Some("verbose=1")), None);
        assert_eq!(names(Some("excluded=x")), None);
        assert_eq!(
            names(Some(
                "exclude=cache&verbose&exclude=disk%20space&exclude=a+b"
            )),
            Some(vec![
                "cache".to_owned(),
                "disk space".to_owned(),
                "a b".to_owned()
            ])
        );
        assert_eq!(names(Some("exclude=")), Some(vec![String::new()]));
    }
}
