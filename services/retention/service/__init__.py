"""Retention's rules, one module per aggregate: holds, the schedule (and its views), and the DSR service's
decisions. Functions take the caller's session and flush, never commit; a refusal is an ApiError."""
