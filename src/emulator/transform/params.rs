//! The `k:v,k:v` part of a task, with aliases, duplicate detection and typed
//! readers that turn bad input into [`TransformError::BadParam`].

use std::ops::RangeInclusive;

use super::TransformError;
use super::syntax::{Value, split_top};

/// Most parameters a single task may carry.
const MAX_PARAMS: usize = 32;

/// The parameters of one task, consumed by the task's parser.
#[derive(Debug)]
pub(crate) struct Params {
    task: &'static str,
    entries: Vec<(String, Value)>,
}

impl Params {
    /// Splits `raw` (what follows `name=`, or `None` for a bare task).
    pub(crate) fn parse(task: &'static str, raw: Option<&str>) -> Result<Params, TransformError> {
        let mut entries = Vec::new();
        for item in raw.map(|r| split_top(r, ',')).unwrap_or_default() {
            if item.trim().is_empty() {
                continue;
            }
            let Some((key, value)) = item.split_once(':') else {
                return Err(bad(task, item.trim(), "expected key:value"));
            };
            entries.push((key.trim().to_ascii_lowercase(), Value::parse(value)));
        }
        if entries.len() > MAX_PARAMS {
            return Err(bad(task, "*", "too many parameters"));
        }
        Ok(Params { task, entries })
    }

    /// Removes the parameter called `names[0]` or any alias in `names[1..]`.
    pub(crate) fn take(&mut self, names: &[&'static str]) -> Result<Option<Value>, TransformError> {
        let canonical = canonical(names);
        let mut found = None;
        let mut i = 0;
        while i < self.entries.len() {
            if names.contains(&self.entries[i].0.as_str()) {
                let (_, value) = self.entries.remove(i);
                if found.replace(value).is_some() {
                    return Err(self.bad(canonical, "given more than once"));
                }
            } else {
                i += 1;
            }
        }
        Ok(found)
    }

    /// A scalar parameter as text.
    pub(crate) fn text(
        &mut self,
        names: &[&'static str],
    ) -> Result<Option<String>, TransformError> {
        match self.take(names)? {
            None => Ok(None),
            Some(Value::Scalar(s)) => Ok(Some(s)),
            Some(Value::List(_)) => {
                Err(self.bad(canonical(names), "expected a single value, not a list"))
            }
        }
    }

    /// An integer parameter within `range`.
    pub(crate) fn int(
        &mut self,
        names: &[&'static str],
        range: RangeInclusive<u32>,
    ) -> Result<Option<u32>, TransformError> {
        match self.text(names)? {
            None => Ok(None),
            Some(s) => self.int_value(canonical(names), &s, range).map(Some),
        }
    }

    /// A boolean parameter (`true`/`false`).
    pub(crate) fn boolean(
        &mut self,
        names: &[&'static str],
    ) -> Result<Option<bool>, TransformError> {
        match self.text(names)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(self.bad(canonical(names), "expected true or false")),
        }
    }

    /// Parses `s` as an integer within `range`, blaming `param`.
    pub(crate) fn int_value(
        &self,
        param: &str,
        s: &str,
        range: RangeInclusive<u32>,
    ) -> Result<u32, TransformError> {
        let reason = || {
            format!(
                "expected a whole number from {} to {}, got {s:?}",
                range.start(),
                range.end()
            )
        };
        let n: u32 = s.trim().parse().map_err(|_| self.bad(param, &reason()))?;
        if range.contains(&n) {
            Ok(n)
        } else {
            Err(self.bad(param, &reason()))
        }
    }

    /// Drops parameters that are valid for Filestack but make no difference here.
    pub(crate) fn ignore(&mut self, names: &[&'static str]) {
        self.entries.retain(|(k, _)| !names.contains(&k.as_str()));
    }

    /// Fails on any parameter no reader asked for; `expected` lists the valid ones.
    pub(crate) fn finish(self, expected: &str) -> Result<(), TransformError> {
        match self.entries.first() {
            None => Ok(()),
            Some((key, _)) => Err(self.bad(
                key,
                &format!("unknown parameter; {} takes {expected}", self.task),
            )),
        }
    }

    /// A `BadParam` error for this task.
    pub(crate) fn bad(&self, param: &str, reason: &str) -> TransformError {
        bad(self.task, param, reason)
    }
}

/// The full name of a parameter: the first of its names.
fn canonical<'a>(names: &[&'a str]) -> &'a str {
    names.first().copied().unwrap_or_default()
}

/// A `BadParam` error.
pub(crate) fn bad(task: &str, param: &str, reason: &str) -> TransformError {
    TransformError::BadParam {
        task: task.to_owned(),
        param: param.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::Params;
    use crate::emulator::transform::TransformError;

    fn param_of(err: TransformError) -> String {
        match err {
            TransformError::BadParam { param, .. } => param,
            other => panic!("expected BadParam, got {other:?}"),
        }
    }

    #[test]
    fn an_alias_reads_the_same_parameter() {
        let mut p = Params::parse("resize", Some("w:10")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.int(&["width", "w"], 1..=10).ok().flatten(), Some(10));
        assert!(p.finish("width").is_ok());
    }

    #[test]
    fn a_parameter_given_twice_under_two_aliases_is_refused() {
        let mut p =
            Params::parse("resize", Some("w:10,width:20")).unwrap_or_else(|e| panic!("{e}"));
        let err = p.int(&["width", "w"], 1..=100).err();
        assert_eq!(err.map(param_of).as_deref(), Some("width"));
    }

    #[test]
    fn an_out_of_range_number_names_the_parameter_and_the_range() {
        let mut p = Params::parse("quality", Some("value:0")).unwrap_or_else(|e| panic!("{e}"));
        let err = p.int(&["value"], 1..=100).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid parameter value for quality: expected a whole number from 1 to 100, got \"0\""
            )
        );
    }

    #[test]
    fn a_leftover_parameter_is_unknown() {
        let p = Params::parse("flip", Some("x:1")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.finish("no parameters").err().map(param_of).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn a_parameter_without_a_colon_is_refused() {
        let err = Params::parse("blur", Some("amount")).err();
        assert_eq!(err.map(param_of).as_deref(), Some("amount"));
    }
}
