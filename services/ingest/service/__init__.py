"""Ingest's rules: intake (validate, seal, publish), folding events into contacts, reading contacts and their
recordings. Each module takes a session (or opens the transactions its protocol needs, where it says so), flushes
and never commits, and refuses with shared.platform.errors.ApiError."""
