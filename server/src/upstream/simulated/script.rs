//! The interview script: the scripted lines and the deterministic "transcription" of user speech.

pub const QUESTIONS: [&str; 5] = [
    "Tell me about yourself and what brought you to this role.",
    "Describe a difficult technical problem you solved recently. What made it hard?",
    "How do you decide what to test when time is short?",
    "Tell me about a time you disagreed with a teammate, and how you resolved it.",
    "What would you like to learn in your first three months here?",
];
/// Spoken before the first question of a new interview.
pub const GREETING: &str = "Hello, I am your interviewer today. Let us begin.";
/// Spoken before the current question when a connection resumes an interview.
pub const WELCOME_BACK: &str = "Welcome back.";
/// Said once the five questions have been asked.
pub const CLOSING: &str = "Thank you, that concludes our interview. Goodbye.";
/// The interviewer's instructions (billed as input text tokens in every response).
pub const INSTRUCTIONS: &str =
    "You are a friendly technical interviewer. Ask the scripted questions one at a time.";

/// The scripted line for question `index` (0-based count of lines already spoken).
pub fn script_line(index: u32, resumed: bool) -> String {
    match index {
        0 if !resumed => format!("{GREETING} {}", QUESTIONS[0]),
        i if (i as usize) < QUESTIONS.len() => {
            let q = QUESTIONS[i as usize];
            if resumed {
                format!("{WELCOME_BACK} {q}")
            } else {
                q.to_string()
            }
        }
        _ => CLOSING.to_string(),
    }
}

/// The deterministic "transcription" of `speech_ms` of user speech.
pub fn transcript_for(speech_ms: u64) -> String {
    format!(
        "({}.{} s of speech)",
        speech_ms / 1000,
        (speech_ms % 1000) / 100
    )
}
