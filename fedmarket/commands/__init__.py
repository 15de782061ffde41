"""Command bodies behind the CLI; imported lazily so `fedmarket --help` stays fast."""
