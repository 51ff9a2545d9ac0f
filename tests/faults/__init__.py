"""The fault, scale-out and soak harness: `make faults`, `make scale`, `make soak` (see README, Operations)."""
