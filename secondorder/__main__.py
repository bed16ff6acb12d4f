"""``python -m secondorder demo | bench | info``."""

import sys

USAGE = """usage: python -m secondorder {demo,bench,info} [options]

  demo   a tour: problems solved, timings against the reference libraries, a plot
  bench  every solver against its anchor, in one process (see --help)
  info   versions, backends found, numba threads and cache folder
"""


def info():
    from . import __version__
    from ._backend import backend_info

    print(f"secondorder {__version__}")
    for key, value in backend_info().items():
        print(f"  {key:<22} {value}")


def _bench_harness():
    """``main`` of the bench harness of the clone this package runs from
    (an editable install), or None when there is none."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "harness.py").is_file():
        return None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.harness import main as bench

    return bench


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "info":
        info()
    elif command == "bench":
        bench = _bench_harness()
        if bench is None:
            print(
                "python -m secondorder bench runs the harness in benchmarks/harness.py of a clone of the repository "
                "(it is not installed with the package): clone it and pip install -e . from there.",
                file=sys.stderr,
            )
            return 2
        bench(rest)
    elif command == "demo":
        from ._demo import main as demo

        demo(rest)
    else:
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
