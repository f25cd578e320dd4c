"""``python -m x0tta6bl4`` runs the CLI."""

from x0tta6bl4.cli import main

main()
