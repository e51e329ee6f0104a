"""pinned's pyinfra facts and operations: the only code that touches hosts."""
