"""The `ikmo` subcommands, one module per room (each exposes `register(app, groups)`)."""
