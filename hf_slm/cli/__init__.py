"""`hf-slm`, the command line (`hf_slm.cli.main`), its `evaluate` commands (`hf_slm.cli.evaluate`) and the argparse
types they share (`hf_slm.cli.arguments`). Nothing in the package imports the CLI; it imports everything."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
