//! Field-level validation errors with stable codes, in the shape FusionAuth clients
//! parse: the code is `[kind]field`, e.g. `[blank]user.email`.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    pub fields: BTreeMap<String, Vec<Problem>>,
    pub general: Vec<Problem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub code: String,
    pub message: String,
}

impl ValidationErrors {
    pub fn field(field: &str, kind: &str, message: impl Into<String>) -> Self {
        let mut e = ValidationErrors::default();
        e.add(field, kind, message);
        e
    }

    pub fn add(&mut self, field: &str, kind: &str, message: impl Into<String>) {
        self.fields
            .entry(field.to_owned())
            .or_default()
            .push(Problem { code: format!("[{kind}]{field}"), message: message.into() });
    }

    pub fn add_general(&mut self, code: &str, message: impl Into<String>) {
        self.general.push(Problem { code: code.to_owned(), message: message.into() });
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    /// `Ok(value)` when nothing was recorded, otherwise the collected errors.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        if self.is_empty() { Ok(value()) } else { Err(self) }
    }
}
