"""`python -m livery_runtime` runs the `livery` command."""

from .cli import main

if __name__ == "__main__":
    main()
