"""`python -m livery_runtime` runs the `livery` command; the runtime starts tenant apps this way."""

from .cli import main

main()
