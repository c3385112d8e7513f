//! What the emulator answers when `/multipart/complete` is sent again for an
//! upload it already stored (a client whose first answer was lost does).
//! Filestack does not document it, so the emulator plays both answers a
//! client must be ready for: 404 `unknown upload_id` (the default: a
//! completed upload is forgotten) or the same file again. Switched at run
//! time with `PUT /_emulator/settings {"repeated_complete": "same_file"}`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Completed uploads remembered for a repeated `complete`.
const REMEMBERED: usize = 10_000;

/// The answer to a repeated `complete`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepeatedComplete {
    /// 404, as for any unknown upload id.
    #[default]
    NotFound,
    /// 200 with the file stored by the first `complete`.
    SameFile,
}

/// The settings of `/_emulator/settings`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub repeated_complete: RepeatedComplete,
}

/// The answers of the most recent completed uploads, by upload id.
#[derive(Debug, Default)]
pub struct Completed {
    settings: Mutex<Settings>,
    answers: Mutex<Answers>,
}

#[derive(Debug, Default)]
struct Answers {
    by_id: HashMap<String, Value>,
    order: VecDeque<String>,
}

impl Completed {
    pub fn settings(&self) -> Settings {
        self.settings.lock().map(|s| *s).unwrap_or_default()
    }

    pub fn set(&self, settings: Settings) {
        if let Ok(mut current) = self.settings.lock() {
            *current = settings;
        }
    }

    /// Keeps the answer `complete` gave for `upload_id`.
    pub fn remember(&self, upload_id: &str, answer: &Value) {
        let Ok(mut answers) = self.answers.lock() else {
            return;
        };
        if answers
            .by_id
            .insert(upload_id.to_owned(), answer.clone())
            .is_none()
        {
            answers.order.push_back(upload_id.to_owned());
        }
        while answers.order.len() > REMEMBERED {
            if let Some(oldest) = answers.order.pop_front() {
                answers.by_id.remove(&oldest);
            }
        }
    }

    /// The first answer again, when the settings say so.
    pub fn replay(&self, upload_id: &str) -> Option<Value> {
        if self.settings().repeated_complete != RepeatedComplete::SameFile {
            return None;
        }
        self.answers.lock().ok()?.by_id.get(upload_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Completed, RepeatedComplete, Settings};

    #[test]
    fn a_repeated_complete_is_replayed_only_in_same_file_mode() {
        let completed = Completed::default();
        completed.remember("u1", &json!({"handle": "H"}));
        assert_eq!(completed.replay("u1"), None);
        completed.set(Settings {
            repeated_complete: RepeatedComplete::SameFile,
        });
        assert_eq!(completed.replay("u1"), Some(json!({"handle": "H"})));
        assert_eq!(completed.replay("u2"), None);
    }

    #[test]
    fn only_the_most_recent_answers_are_kept() {
        let completed = Completed::default();
        completed.set(Settings {
            repeated_complete: RepeatedComplete::SameFile,
        });
        for i in 0..=super::REMEMBERED {
            completed.remember(&format!("u{i}"), &json!(i));
        }
        assert_eq!(completed.replay("u0"), None);
        assert_eq!(completed.replay("u1"), Some(json!(1)));
    }
}
