"""Thin entry so ``python cli.py ...`` works from a source checkout; the app is kneemeasure.cli."""

from kneemeasure.cli import main

if __name__ == "__main__":
    main()
