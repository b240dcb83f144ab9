"""python -m sluice: the SDK's commands.

python -m sluice describe --import-path MODULE:ATTR [--app-dir DIR] [--name N] [--json]
    prints the manifest of the application (platform/bundle's format).
    Exit status 2: the application cannot be described (an import that
    fails, an object that is no application, an option Sluice refuses),
    with the exception and the last frame of the user's code on stderr."""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import traceback

from sluice.serve.describe import manifest

EXIT_INVALID = 2
"""The user's application is at fault (as `sluice deploy` exits 2 for an invalid spec)."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sluice")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("describe", help="print the manifest of an application")
    d.add_argument("--import-path", required=True, help="MODULE:ATTR of the application (a deployment's .bind())")
    d.add_argument("--app-dir", default=".", help="directory to import MODULE from (default: the current one)")
    d.add_argument("--name", default=None, help="the application's name (default: ATTR, '_' as '-')")
    d.add_argument("--json", action="store_true", help="print JSON (the only output there is)")
    a = p.parse_args(argv)
    try:
        m = manifest(a.import_path, a.app_dir, a.name)
    except Exception as exc:  # an import that fails: its last frame, as a deploy shows it
        # The last frame of the user's code (not the SDK's, nor importlib's).
        sdk = os.path.dirname(os.path.abspath(__file__))
        stdlib = sysconfig.get_paths()["stdlib"]
        skip = (sdk, stdlib, "<frozen")
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(skip)]
        where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        if isinstance(exc, SyntaxError) and exc.filename:  # the user's file did not compile: where it fails
            where = f" ({exc.filename}:{exc.lineno}: {(exc.text or '').strip()})"
        print(f"describe {a.import_path}: {type(exc).__name__}: {exc}{where}", file=sys.stderr)
        return EXIT_INVALID
    json.dump(m, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
