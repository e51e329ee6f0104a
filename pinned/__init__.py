"""The `pinned` command: plan, pin, releases, history — pyinfra stays the engine."""
