"""Ask: questions in plain language, answered from the metric tables (docs/ask.md).

`periods` reads time phrases, `resolve` turns a question into a `query.Query` (or a clarifying
question, an unsupported notice, a refusal) without an LLM, `query` compiles it to parameterized
SQL over the metrics tables and runs it read-only, and `answer` says what it found with citations.
"""
