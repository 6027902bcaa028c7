"""``python -m pytest_procthread``: run the installed pack, merge claims reports into one
table, refresh the README.

    python -m pytest_procthread pack [pytest args]   (e.g. --procthread-report=R.json -n 2)
    python -m pytest_procthread matrix REPORT.json ... [--format markdown|html|json] [-o FILE]
    python -m pytest_procthread readme REPORT.json ... [--readme README.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from .claims.shipped import PackMissing, run_pack
from .matrix import FORMATS, MergeError, build_matrix, load_reports, render

README_START = "<!-- claims-table:start -->"
README_END = "<!-- claims-table:end -->"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_procthread")
    commands = parser.add_subparsers(dest="command", required=True)
    # Listed for --help; its arguments go to pytest untouched (see main).
    commands.add_parser(
        "pack", add_help=False,
        help="run the conformance pack installed with this package; every further argument "
        "goes to pytest (pack --help lists pytest's and the pack's options)",
    )
    matrix = commands.add_parser("matrix", help="merge claims reports into one table")
    matrix.add_argument("reports", nargs="+", type=Path, help="JSON reports (--procthread-report)")
    matrix.add_argument("--format", default="markdown", choices=FORMATS)
    matrix.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    matrix.add_argument("--fail-on-unexpected", action="store_true",
                        help="exit 1 if any report has an unexpected verdict")
    readme = commands.add_parser("readme", help="put the merged table into the README")
    readme.add_argument("reports", nargs="+", type=Path)
    readme.add_argument("--readme", type=Path, default=Path("README.md"))
    readme.add_argument("--marker", default="claims-table", metavar="NAME",
                        help="rewrite the section between <!-- NAME:start --> and "
                        "<!-- NAME:end --> (default: claims-table)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pack"]:
        # Not through argparse: pytest's own options ("-k expr", "-n 2") must pass unread.
        try:
            return run_pack(argv[1:])
        except PackMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    args = _parser().parse_args(argv)
    try:
        table = build_matrix(load_reports(args.reports))
    except MergeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "matrix":
        text = render(table, args.format)
        if args.output:
            args.output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return 1 if args.fail_on_unexpected and table["unexpected"] else 0
    readme = args.readme.read_text(encoding="utf-8")
    start, end = f"<!-- {args.marker}:start -->", f"<!-- {args.marker}:end -->"
    if start not in readme or end not in readme:
        print(f"error: {args.readme} has no {start} ... {end} section", file=sys.stderr)
        return 2
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    args.readme.write_text(
        f"{head}{start}\n{render(table, 'markdown')}{end}{tail}", encoding="utf-8"
    )
    print(f"{args.readme}: claims table updated from {len(args.reports)} report(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
